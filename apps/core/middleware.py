"""Bounds every request meets before any view, parser or database connection sees it."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


def _refusal(status: int, code: str, message: str) -> JsonResponse:
    # The partner API's error shape; the other endpoints' clients read the status and text.
    return JsonResponse({"error": {"status": status, "code": code, "message": message}},
                        status=status)


class RequestBodyMiddleware:
    """One body-size rule for the whole service (MAX_REQUEST_BODY_BYTES), checked on the
    declared length before anything is read, and the body then read in full up front.

    Reading it here, before authentication, means a client that sends its body slowly holds
    only its own connection's greenlet, never one of the worker's pooled database
    connections while the view waits for the rest.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.MAX_REQUEST_BODY_BYTES
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(declared)
        except ValueError:
            length = -1
        if length < 0:
            return _refusal(400, "invalid", f"Content-Length {declared[:40]!r} is not a "
                            "number of bytes")
        if length > limit:
            return _refusal(413, "too_large", f"the body has {length:,} bytes, more than the "
                            f"{limit:,} bytes this service accepts; send smaller batches")
        if not length and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            return _refusal(411, "length_required", "send the body with a Content-Length "
                            f"header (at most {limit:,} bytes), not chunked")
        if length:
            request.body  # noqa: B018  (read now; see the class docstring)
        return self.get_response(request)
