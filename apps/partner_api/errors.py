"""One error body for every partner API answer that is not a success.

    {"error": {"status": 400, "code": "invalid_range", "message": "…", "fields": {…}}}

`fields` appears on validation errors only: field name → list of messages.

This is the HTTP layer: parameter parsing, selectors and services raise `ApiError`
(`exceptions.py`, no web framework in it) and `PartnerApiView` hands every exception to
`exception_handler` here, which maps it to that body.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from apps.partner_api.exceptions import ApiError

__all__ = ("ApiError", "error_body", "exception_handler", "not_found")

logger = logging.getLogger(__name__)


_CODES = {
    400: "invalid", 401: "not_authenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 413: "too_large",
    415: "unsupported_media_type", 422: "unprocessable", 429: "throttled",
    500: "server_error", 503: "unavailable",
}
# Seconds a partner is asked to wait when the database is unreachable (a restart, a failover).
DATABASE_RETRY_AFTER = 5


def error_body(status_code: int, message: str, code: str | None = None,
               fields: dict | None = None) -> dict:
    body = {"status": status_code, "code": code or _CODES.get(status_code, "error"),
            "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def _flatten(detail) -> dict:
    if isinstance(detail, dict):
        return {str(k): [str(m) for m in (v if isinstance(v, list) else [v])]
                if not isinstance(v, dict) else _flatten(v) for k, v in detail.items()}
    return {"non_field_errors": [str(m) for m in detail]}


def exception_handler(exc, context):
    """The partner API views' exception handler (`PartnerApiView.get_exception_handler`)."""
    if isinstance(exc, ApiError):
        set_rollback()
        return Response(error_body(exc.status_code, exc.message, exc.code, exc.fields),
                        status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("no such record in this deployment")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, OperationalError | InterfaceError):
        # The database is restarting or failing over: a temporary state the partner can wait
        # out, and with an Idempotency-Key the retry is safe whether or not this one committed.
        logger.warning("partner API: database unavailable: %s", exc)
        set_rollback()
        return Response(
            error_body(503, "the database is unavailable for a moment; retry after "
                       f"{DATABASE_RETRY_AFTER} seconds with the same Idempotency-Key"),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
        )
    if not isinstance(exc, exceptions.APIException):
        logger.exception("partner API failure", exc_info=exc)
        set_rollback()
        return Response(
            error_body(500, "internal error; retry later, and tell the hub operator if it "
                       "persists"),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
    fields = None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        code, message = "invalid", "the request is invalid; see 'fields' for what to fix"
    elif isinstance(exc, exceptions.Throttled):
        code = "throttled"
        message = (f"rate limit exceeded; retry after {headers.get('Retry-After', '1')} "
                   "seconds")
    elif isinstance(exc, exceptions.NotAuthenticated):
        code = "not_authenticated"
        message = ("no API key: send it in the X-API-Key header, or with HTTP Basic (user "
                   "name: the key's prefix, password: the key)")
    else:
        code = _CODES.get(exc.status_code)
        message = str(exc.detail)
    set_rollback()
    return Response(error_body(exc.status_code, message, code, fields),
                    status=exc.status_code, headers=headers)


def not_found(request, *args, **kwargs) -> JsonResponse:
    """Unknown paths under /api/v1/ answer in the same shape, not Django's HTML page."""
    return JsonResponse(
        error_body(404, f"no endpoint at {request.path}; see /api/v1/docs/"), status=404
    )
