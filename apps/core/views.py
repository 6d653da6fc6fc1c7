"""Process health for load balancers and orchestrators."""

import time

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.core import selectors


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving; touches nothing else."""
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready to take traffic: the database and the broker answer."""
    started = time.monotonic()
    checks = {"database": selectors.database_check(), "broker": selectors.broker_check()}
    ready = all(c.ok for c in checks.values())
    body = {
        "status": "ok" if ready else "unavailable",
        "checks": {name: {"ok": c.ok, "detail": c.detail} for name, c in checks.items()},
        "duration_ms": round((time.monotonic() - started) * 1000, 1),
    }
    return JsonResponse(body, status=200 if ready else 503)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """`handler400`: a body over DATA_UPLOAD_MAX_MEMORY_SIZE is 413 with the limit, not a bare
    "Bad Request"; every other 400 is Django's own page."""
    if isinstance(exception, RequestDataTooBig):
        return HttpResponse(
            f"the request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes; "
            "send a smaller one", status=413, content_type="text/plain; charset=utf-8")
    return defaults.bad_request(request, exception)
