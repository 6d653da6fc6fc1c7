"""Exception reports (the e-mails Django sends OPS_EMAILS on a 500) without credentials.

Django's filter hides settings and headers whose names look secret, and POST values only of
views marked sensitive. DEXMA's `dep_token` and `temp_token` come in the query string,
partners' keys in `X-API-Key` or Basic auth: those are masked here too.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.views import debug
from django.views.debug import SafeExceptionReporterFilter

from apps.core.redact import MASK, is_secret_name, redact


class ExceptionReporterFilter(SafeExceptionReporterFilter):
    def get_safe_request_meta(self, request: HttpRequest) -> dict:
        meta = super().get_safe_request_meta(request)
        for name, value in meta.items():
            if name.startswith("HTTP_") and is_secret_name(name[5:]):
                meta[name] = self.cleansed_substitute
            elif isinstance(value, str):
                meta[name] = redact(value)
        return meta

    def get_post_parameters(self, request: HttpRequest | None) -> dict:
        params = super().get_post_parameters(request)
        if request is None or not params:
            return params
        cleansed = params.copy()
        for name in cleansed:
            if is_secret_name(name):
                cleansed[name] = MASK
        return cleansed


class ExceptionReporter(debug.ExceptionReporter):
    """The report's query parameters, URL and local variables (a request's repr holds its
    query string) are shown unfiltered by Django: masked here."""

    def get_traceback_data(self) -> dict:
        data = super().get_traceback_data()
        for frame in data.get("frames", []):
            frame["vars"] = [(name, redact(str(value))) for name, value in frame.get("vars", [])]
        if self.request is not None:
            data["request_GET_items"] = [
                (name, MASK if is_secret_name(name) else value)
                for name, value in self.request.GET.items()
            ]
            if "request_insecure_uri" in data:
                data["request_insecure_uri"] = redact(str(data["request_insecure_uri"]))
        return data
