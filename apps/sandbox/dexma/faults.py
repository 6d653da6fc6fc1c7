"""Storms on demand: the fault switches of the simulated IS3 and APIv3, and the record of
every request they saw, so a test can check each wait of the hub against the `Retry-After`
it was given and count its calls against the announced budget."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from functools import wraps

from django.db.models import F
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from apps.sandbox.dexma.models import PlatformFault, PlatformRequest

Target = PlatformFault.Target
_MESSAGES = {500: "Internal Server Error", 503: "Service Unavailable",
             429: "Too Many Requests"}
# Per process: "no switch exists for this target" is remembered for a second (forgotten as
# soon as one is saved here), so the storm-free path costs no query per request.
_quiet_until: dict[str, float] = {}


def switches_changed(**kwargs) -> None:
    _quiet_until.clear()


def token_digest(token: str) -> str:
    """How a request's app token is recorded: never in clear."""
    return hashlib.sha256(token.encode()).hexdigest()[:16] if token else ""


def _switch(target: str) -> tuple[bool, PlatformFault | None]:
    """(record this request?, the switch that decides its answer, if any)."""
    if _quiet_until.get(target, 0.0) > time.monotonic():
        return False, None
    switches = list(PlatformFault.objects.filter(target=target).order_by("pk"))
    if not switches:
        _quiet_until[target] = time.monotonic() + 1.0
        return False, None
    fault = next((s for s in switches if s.enabled and s.status), None)
    if fault is not None:
        PlatformFault.objects.filter(pk=fault.pk).update(hits=F("hits") + 1)
    return True, fault


def _fault_response(target: str, fault: PlatformFault) -> HttpResponse:
    message = _MESSAGES.get(fault.status, "Error")
    if target == Target.API:
        response: HttpResponse = JsonResponse(
            {"status": fault.status, "code": f"E{fault.status}", "message": message,
             "errors": []}, status=fault.status)
    else:
        response = HttpResponse(message, status=fault.status, content_type="text/plain")
    if fault.retry_after is not None and fault.status in (429, 503):
        response["Retry-After"] = str(fault.retry_after)
    return response


def _retry_after(response: HttpResponse) -> int | None:
    value = response.get("Retry-After", "")
    return int(value) if value.isdigit() else None


def storm_aware(target: str, credential: Callable[[HttpRequest], str]) -> Callable:
    """Answer from the target's fault switch when one is on; record the request while any
    switch of the target exists."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            arrived = timezone.now()
            recording, fault = _switch(target)
            if fault is not None:
                response = _fault_response(target, fault)
            else:
                response = view(request, *args, **kwargs)
            if recording:
                PlatformRequest.objects.create(
                    target=target, credential=credential(request)[:128], arrived_at=arrived,
                    status=response.status_code, retry_after=_retry_after(response))
            return response

        return wrapped

    return decorate
