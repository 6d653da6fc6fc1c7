"""Simulated Volue Energy Coordination: OAuth2 token, the Partner API (v1) exactly as its
OpenAPI document defines it, signed webhook notifications — including the traps (short-lived
tokens, conflicts on repeated creates, webhooks dropped after three failed tries)."""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import time
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from apps.sandbox.volue.api import FAIL_REPORTS_KEY, OPERATIONS, Answer
from apps.sandbox.volue.models import SbCall, SbEvent, SbReport, SbUser, SbWebhook
from apps.sandbox.volue.platform import TYPES, event_create, notify
from apps.volue import openapi

logger = logging.getLogger(__name__)

TOKEN_SALT = "sandbox-volue-token"  # noqa: S105 (a signing salt, not a secret)
LIFETIME_KEY = "sandbox:volue:token_lifetime"
NOT_BEFORE_KEY = "sandbox:volue:tokens_not_before"
TOKENS_ISSUED_KEY = "sandbox:volue:tokens_issued"
REFUSED_KEY = "sandbox:volue:refused_tokens"


def _iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).isoformat()


def _body(request: HttpRequest) -> Any:
    try:
        return json.loads(request.body or b"null")
    except ValueError:
        return None


# --- OAuth2 ----------------------------------------------------------------------------


def _count(key: str) -> None:
    if not cache.add(key, 1, timeout=None):
        cache.incr(key)


def _lifetime() -> int:
    return int(cache.get(LIFETIME_KEY) or settings.SANDBOX_VOLUE_TOKEN_LIFETIME)


@csrf_exempt
@require_http_methods(["POST"])
def token(request: HttpRequest) -> JsonResponse:
    form = request.POST
    if form.get("grant_type") != "client_credentials":
        return JsonResponse({"error": "unsupported_grant_type"}, status=400)
    client_ok = hmac.compare_digest(form.get("client_id", ""), settings.VOLUE_CLIENT_ID)
    secret_ok = hmac.compare_digest(form.get("client_secret", ""), settings.VOLUE_CLIENT_SECRET)
    if not (client_ok and secret_ok):
        return JsonResponse({"error": "invalid_client"}, status=401)
    lifetime = _lifetime()
    _count(TOKENS_ISSUED_KEY)
    access = signing.dumps(
        {"c": form["client_id"], "iat": time.time(), "exp": time.time() + lifetime},
        salt=TOKEN_SALT,
    )
    return JsonResponse({"access_token": access, "expires_in": lifetime,
                         "token_type": "Bearer", "scope": "energy-coordination"})


def _authorised(request: HttpRequest) -> bool:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return False
    try:
        claims = signing.loads(header[7:], salt=TOKEN_SALT)
    except signing.BadSignature:
        return False
    return claims["exp"] > time.time() and claims["iat"] >= float(cache.get(NOT_BEFORE_KEY) or 0)


# --- the Partner API: exactly the document's paths -------------------------------------


def _refusal(operation_id: str, reasons: list[str]) -> Answer:
    """A 400 in the shape the operation's document declares for it."""
    responses = openapi.operation_get(operation_id).get("responses", {})
    declared = responses.get("400", {}).get("content", {})
    if "application/problem+json" in declared:
        errors: dict[str, list[str]] = {}
        for reason in reasons:
            where, _, message = reason.partition(": ")
            errors.setdefault(where if message else "$", []).append(message or reason)
        return Answer(400, {"title": "One or more validation errors occurred.", "status": 400,
                            "errors": errors}, problem=True)
    return Answer(400, "; ".join(reasons))


def _respond(answer: Answer) -> HttpResponse:
    if answer.payload is None:
        return HttpResponse(status=answer.status)
    content_type = "application/problem+json" if answer.problem else "application/json"
    return HttpResponse(json.dumps(answer.payload), status=answer.status,
                        content_type=content_type)


# Answers the document does not describe but a real service gives: a sandbox fault knob
# (503) and the operations this simulator leaves out (501).
_UNCHECKED = {501, 503}


@csrf_exempt
def partner_api(request: HttpRequest, path: str) -> HttpResponse:
    path = "/" + path.strip("/")
    if not _authorised(request):
        _count(REFUSED_KEY)
        response = JsonResponse({"title": "Unauthorized", "status": 401}, status=401)
        return _journal(request, path, "", response)
    found = openapi.operation_find(request.method, path)
    if isinstance(found, int):
        return _journal(request, path, "", HttpResponse(status=found))
    wire = openapi.WireRequest(
        method=request.method, path=path, query=list(request.GET.items()),
        body=request.body or None, content_type=request.content_type or "",
        headers={"Authorization": request.headers.get("Authorization", "")},
    )
    violation = openapi.request_check(wire)
    if violation is not None:
        answer = _refusal(found.operation_id, violation.reasons)
    elif found.operation_id not in OPERATIONS:
        answer = Answer(501, f"{found.operation_id} is not simulated by the sandbox.")
    else:
        answer = OPERATIONS[found.operation_id](request, _body(request), **found.path_params)
    response = _respond(answer)
    if answer.status not in _UNCHECKED:
        broken = openapi.response_check(wire, status=response.status_code,
                                        body=response.content,
                                        content_type=response.get("Content-Type", ""))
        if broken:  # a sandbox bug: say so loudly instead of teaching the hub a wrong shape
            logger.error("sandbox volue: %s %s answer breaks the document: %s",
                         request.method, path, broken)
            response = HttpResponse(f"sandbox answer breaks the Partner API: {broken}",
                                    status=500, content_type="text/plain")
    return _journal(request, path, found.operation_id, response)


def _journal(request: HttpRequest, path: str, operation_id: str,
             response: HttpResponse) -> HttpResponse:
    SbCall.objects.create(method=request.method, path=path, operation_id=operation_id,
                          status=response.status_code, body=_body(request),
                          answer=response.content.decode(errors="replace")[:2000])
    return response


@csrf_exempt
@require_http_methods(["POST"])
def trigger(request: HttpRequest) -> HttpResponse:
    """Raise events (`?type=` one notification type, default all) and notify the webhooks.

    `start` (ISO, default four hours ago) and `hours` (default 3) place the event's hours;
    `deliver=0` stores the event without notifying, as if every delivery had failed.
    """
    wanted = request.GET.getlist("type") or list(TYPES)
    unknown = [t for t in wanted if t not in TYPES]
    if unknown:
        return JsonResponse({"error": f"unknown type(s) {unknown}; one of {list(TYPES)}"},
                            status=400)
    try:
        default = timezone.now().replace(minute=0, second=0, microsecond=0)
        start = (dt.datetime.fromisoformat(request.GET["start"]) if "start" in request.GET
                 else default - dt.timedelta(hours=4))
        hours = int(request.GET.get("hours", 3))
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    if start.tzinfo is None:
        return JsonResponse({"error": "start needs an offset or Z"}, status=400)
    deliver = request.GET.get("deliver", "1") != "0"
    out = []
    for notification_type in wanted:
        created = event_create(notification_type, start, hours)
        out.append({"eventId": created.event_id, "type": notification_type,
                    "deliveries": notify(created) if deliver else []})
    if "text/html" in request.headers.get("Accept", ""):  # a button on the sandbox page
        return redirect("sandbox:sandbox_volue:index")
    return JsonResponse({"events": out})


# --- control and overview ---------------------------------------------------------------


@csrf_exempt
@require_http_methods(["POST"])
def control(request: HttpRequest) -> JsonResponse:
    """Test knobs: `tokenLifetime` (s), `revokeTokens`, `failReports` (next N answer 503).

    The answer also counts the tokens issued and the calls refused for a bad or expired
    token since the cache was last cleared."""
    body = _body(request)
    if not isinstance(body, dict):
        return JsonResponse({"error": "a JSON object is expected"}, status=400)
    if "tokenLifetime" in body:
        cache.set(LIFETIME_KEY, int(body["tokenLifetime"]), timeout=None)
    if body.get("revokeTokens"):
        cache.set(NOT_BEFORE_KEY, time.time(), timeout=None)
    if "failReports" in body:
        cache.set(FAIL_REPORTS_KEY, int(body["failReports"]), timeout=3600)
    return JsonResponse({"tokenLifetime": _lifetime(),
                         "failReports": cache.get(FAIL_REPORTS_KEY) or 0,
                         "tokensIssued": cache.get(TOKENS_ISSUED_KEY) or 0,
                         "refusedTokens": cache.get(REFUSED_KEY) or 0})


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "volue/sandbox_index.html", {
        "users": SbUser.objects.prefetch_related("locations__meter_points", "resources"),
        "calls": SbCall.objects.order_by("-pk")[:30],
        "webhooks": SbWebhook.objects.all(),
        "events": SbEvent.objects.prefetch_related("deliveries")[:20],
        "reports": SbReport.objects.all()[:20],
        "types": list(TYPES),
    })
