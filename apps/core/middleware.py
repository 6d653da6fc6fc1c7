"""Bounds every request meets before any view, parser or database connection sees it."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


def _refusal(status: int, code: str, message: str) -> JsonResponse:
    # The partner API's error shape; the other endpoints' clients read the status and text.
    return JsonResponse({"error": {"status": status, "code": code, "message": message}},
                        status=status)


class BodyTimeout(Exception):
    """The body was not in within REQUEST_BODY_TIMEOUT seconds."""


@contextlib.contextmanager
def _read_deadline(seconds: float) -> Iterator[None]:
    """Raise BodyTimeout in this greenlet once `seconds` have passed.

    Under gunicorn's gevent workers (config/gunicorn.conf.py) every socket read yields to the
    hub, so a gevent.Timeout interrupts a read that waits for bytes that come slowly. Other
    servers (runserver, the test client) read without a deadline, as before.
    """
    try:
        from gevent import Timeout, monkey
    except ImportError:  # pragma: no cover - gevent is a dependency of the web process
        yield
        return
    if not monkey.is_module_patched("socket"):
        yield
        return
    with Timeout(seconds, BodyTimeout):
        yield


def _stop_reading(request: HttpRequest) -> None:
    """Make the rest of the body an end of stream, so the server closes this connection after
    the answer instead of reading on for the next request (gunicorn drains what is left of
    a body before it parses another request, with no deadline of its own)."""
    sock = request.META.get("gunicorn.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RD)


class RequestBodyMiddleware:
    """One body-size rule for the whole service (MAX_REQUEST_BODY_BYTES), checked on the
    declared length before anything is read, and the body then read in full up front, within
    REQUEST_BODY_TIMEOUT seconds (a 408 after it, and the connection closed).

    Reading it here, before authentication, means a client that sends its body slowly holds
    only its own connection's greenlet, never one of the worker's pooled database
    connections while the view waits for the rest; and the deadline bounds how long it holds
    even that.
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
            seconds = settings.REQUEST_BODY_TIMEOUT
            try:
                with _read_deadline(seconds):
                    request.body  # noqa: B018  (read now; see the class docstring)
            except BodyTimeout:
                _stop_reading(request)
                return _refusal(408, "body_timeout", f"the body ({length:,} bytes announced) "
                                f"did not arrive within {seconds:g} seconds; send it at once, "
                                "or in smaller batches")
        return self.get_response(request)
