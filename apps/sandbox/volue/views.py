"""Simulated Volue Energy Coordination: OAuth2 token, 2023 registration endpoints, webhooks
with signed notifications, /events and /reports — including the traps (short-lived tokens,
conflicts on repeated creates, webhooks dropped after three failed tries)."""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import json
import math
import time
import uuid
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from apps.sandbox.volue.models import (
    SbEvent,
    SbMeter,
    SbReport,
    SbResource,
    SbUser,
    SbWebhook,
)
from apps.sandbox.volue.platform import (
    TYPES,
    auto_event_later,
    event_create,
    notify,
    report_errors,
)

TOKEN_SALT = "sandbox-volue-token"  # noqa: S105 (a signing salt, not a secret)
LIFETIME_KEY = "sandbox:volue:token_lifetime"
NOT_BEFORE_KEY = "sandbox:volue:tokens_not_before"
FAIL_REPORTS_KEY = "sandbox:volue:fail_reports"
TOKENS_ISSUED_KEY = "sandbox:volue:tokens_issued"
REFUSED_KEY = "sandbox:volue:refused_tokens"
LOCATION_TYPES = ("Unknown", "Residential", "Commercial", "Other")


def _iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).isoformat()


def _problem(status: int, detail: str) -> HttpResponse:
    # The platform answers 400s on these endpoints with a plain JSON string.
    return HttpResponse(json.dumps(detail), status=status, content_type="application/json")


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


def api(view):
    """A platform endpoint: bearer token required, no CSRF."""

    @csrf_exempt
    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not _authorised(request):
            _count(REFUSED_KEY)
            return JsonResponse({"title": "Unauthorized", "status": 401}, status=401)
        return view(request, *args, **kwargs)

    return wrapped


# --- registration (the 2023 quickstart) -------------------------------------------------


@api
@require_http_methods(["POST"])
def users(request: HttpRequest) -> HttpResponse:
    body = _body(request) or {}
    if not isinstance(body, dict):
        return _problem(400, "The request body must be a JSON object.")
    user_id = str(body.get("userId") or uuid.uuid4())
    try:
        with transaction.atomic():
            SbUser.objects.create(user_id=user_id)
    except IntegrityError:
        return _problem(409, f"User {user_id} already exists.")
    return JsonResponse({"userId": user_id}, status=201)


def _user(user_id: str) -> SbUser | None:
    return SbUser.objects.filter(user_id=user_id).first()


@api
@require_http_methods(["GET", "DELETE"])
def user(request: HttpRequest, user_id: str) -> HttpResponse:
    found = _user(user_id)
    if found is None:
        return _problem(404, f"User {user_id} not found.")
    if request.method == "DELETE":
        found.delete()
        return HttpResponse(status=204)
    return JsonResponse({"userId": found.user_id})


def _meter_errors(body: Any) -> str:
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    if not isinstance(body.get("meterPointId"), str) or not body["meterPointId"]:
        return "meterPointId is required."
    if body.get("locationType") not in LOCATION_TYPES:
        return f"locationType must be one of {', '.join(LOCATION_TYPES)}."
    address = body.get("address")
    if address is not None and not isinstance(address, dict):
        return "address must be an object with street, city and zipCode."
    location = body.get("location")
    if location is not None:
        if not isinstance(location, dict):
            return "location must be an object with latitude and longitude."
        for key, bound in (("latitude", 90), ("longitude", 180)):
            value = location.get(key)
            if not isinstance(value, int | float) or abs(value) > bound:
                return f"location.{key} must be a number within ±{bound}."
    return ""


@api
@require_http_methods(["GET", "POST"])
def meters(request: HttpRequest, user_id: str) -> HttpResponse:
    owner = _user(user_id)
    if owner is None:
        return _problem(404, f"User {user_id} not found.")
    if request.method == "GET":
        rows = [{"meterId": m.meter_id, **m.body} for m in owner.meters.all()]
        return JsonResponse({"meters": rows})
    body = _body(request)
    error = _meter_errors(body)
    if error:
        return _problem(400, error)
    meter_id = str(uuid.uuid4())
    try:
        with transaction.atomic():
            SbMeter.objects.create(meter_id=meter_id, user=owner,
                                   meter_point_id=body["meterPointId"], body=body)
    except IntegrityError:
        return _problem(409, f"Meter point {body['meterPointId']} is already registered.")
    if settings.SANDBOX_VOLUE_AUTO_EVENT:
        auto_event_later()
    return JsonResponse({"meterId": meter_id}, status=201)


@api
@require_http_methods(["PUT", "DELETE"])
def meter(request: HttpRequest, user_id: str, meter_id: str) -> HttpResponse:
    found = SbMeter.objects.filter(user__user_id=user_id, meter_id=meter_id).first()
    if found is None:
        return _problem(404, f"Meter {meter_id} of user {user_id} not found.")
    if request.method == "DELETE":
        found.delete()
        return HttpResponse(status=204)
    body = _body(request)
    error = _meter_errors(body)
    if error:
        return _problem(400, error)
    found.body, found.meter_point_id = body, body["meterPointId"]
    try:
        found.save()
    except IntegrityError:
        return _problem(409, f"Meter point {body['meterPointId']} is already registered.")
    return JsonResponse({"meterId": found.meter_id, **body})


def _resource_create(request: HttpRequest, user_id: str, *, vehicle: bool) -> HttpResponse:
    owner = _user(user_id)
    if owner is None:
        return _problem(404, f"User {user_id} not found.")
    body = _body(request)
    id_field = "vehicleId" if vehicle else "resourceId"
    if not isinstance(body, dict) or not isinstance(body.get(id_field), str):
        return _problem(400, f"{id_field} is required.")
    metadata = body.get("metadata")
    if not isinstance(metadata, dict) or not metadata.get("resourceType"):
        return _problem(400, "metadata.resourceType is required.")
    try:
        with transaction.atomic():
            SbResource.objects.create(resource_id=body[id_field], user=owner, vehicle=vehicle,
                                      body=body)
    except IntegrityError:
        return _problem(409, f"Resource {body[id_field]} already exists.")
    return JsonResponse({id_field: body[id_field]}, status=201)


@api
@require_http_methods(["POST"])
def vehicles(request: HttpRequest, user_id: str) -> HttpResponse:
    return _resource_create(request, user_id, vehicle=True)


@api
@require_http_methods(["POST"])
def resources(request: HttpRequest, user_id: str) -> HttpResponse:
    return _resource_create(request, user_id, vehicle=False)


@api
@require_http_methods(["DELETE"])
def resource(request: HttpRequest, user_id: str, resource_id: str, kind: str) -> HttpResponse:
    found = SbResource.objects.filter(
        user__user_id=user_id, resource_id=resource_id, vehicle=kind == "vehicles"
    ).first()
    if found is None:
        return _problem(404, f"Resource {resource_id} of user {user_id} not found.")
    found.delete()
    return HttpResponse(status=204)


# --- webhooks ---------------------------------------------------------------------------


def _webhook_json(hook: SbWebhook) -> dict:
    return {"webhookId": hook.webhook_id, "webhookUrl": hook.url, "name": hook.name,
            "notificationTypes": hook.notification_types, "enabled": hook.enabled,
            "status": "Healthy", "modifiedDate": _iso(hook.modified_at),
            "createdDate": _iso(hook.created_at)}


def _webhook_errors(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("webhookUrl"), str):
        return "webhookUrl is required."
    types = body.get("notificationTypes") or []
    unknown = [t for t in types if t not in TYPES]
    return f"Unknown notificationTypes: {unknown}" if unknown else ""


@api
@require_http_methods(["GET", "POST"])
def webhooks(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return JsonResponse({"webhooks": [_webhook_json(h) for h in SbWebhook.objects.all()]})
    body = _body(request)
    error = _webhook_errors(body)
    if error:
        return _problem(400, error)
    hook = SbWebhook.objects.create(
        webhook_id=str(uuid.uuid4()), name=body.get("name") or "", url=body["webhookUrl"],
        secret=body.get("webhookSecret") or "", notification_types=body.get("notificationTypes")
        or list(TYPES),
    )
    return JsonResponse(_webhook_json(hook), status=201)


@api
@require_http_methods(["GET", "PUT", "DELETE"])
def webhook(request: HttpRequest, webhook_id: str) -> HttpResponse:
    hook = SbWebhook.objects.filter(webhook_id=webhook_id).first()
    if hook is None:
        return _problem(404, f"Webhook {webhook_id} not found.")
    if request.method == "DELETE":
        hook.delete()
        return HttpResponse(status=204)
    if request.method == "PUT":
        body = _body(request)
        error = _webhook_errors(body)
        if error:
            return _problem(400, error)
        hook.url, hook.name = body["webhookUrl"], body.get("name") or hook.name
        hook.secret = body.get("webhookSecret") or hook.secret
        hook.notification_types = body.get("notificationTypes") or hook.notification_types
        hook.save()
    return JsonResponse(_webhook_json(hook))


# --- events -----------------------------------------------------------------------------


def _event_json(event: SbEvent) -> dict:
    return {"id": event.event_id, "createdAt": _iso(event.created_at), "payload": event.payload}


@api
@require_http_methods(["GET"])
def events(request: HttpRequest) -> HttpResponse:
    try:
        page = max(1, int(request.GET.get("page", 1)))
        size = min(1000, max(1, int(request.GET.get("pageSize", 100))))
    except ValueError:
        return _problem(400, "page and pageSize must be integers.")
    total = SbEvent.objects.count()
    pages = max(1, math.ceil(total / size))
    rows = SbEvent.objects.all()[(page - 1) * size: page * size]
    return JsonResponse({
        "events": [_event_json(e) for e in rows],
        "pagination": {"totalRecords": total, "pageSize": size, "currentPage": page,
                       "totalPages": pages, "nextPage": page + 1 if page < pages else None,
                       "previousPage": page - 1 if page > 1 else None},
    })


@api
@require_http_methods(["GET"])
def event(request: HttpRequest, event_id: str) -> HttpResponse:
    found = SbEvent.objects.filter(event_id=event_id).first()
    if found is None:
        return _problem(404, f"Event {event_id} not found.")
    return JsonResponse(_event_json(found))


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


# --- reports ----------------------------------------------------------------------------


@api
@require_http_methods(["POST"])
def reports(request: HttpRequest) -> HttpResponse:
    failures = cache.get(FAIL_REPORTS_KEY) or 0
    if failures > 0:
        cache.set(FAIL_REPORTS_KEY, failures - 1, timeout=3600)
        return JsonResponse({"title": "Service Unavailable", "status": 503}, status=503)
    body = _body(request)
    error = report_errors(body)
    if error:
        return _problem(400, error)
    saved = SbReport.objects.create(report_id=str(uuid.uuid4()),
                                    event_id=body.get("eventId") or "", body=body)
    return JsonResponse({"id": saved.report_id, "eventId": saved.event_id,
                         "createdAt": _iso(saved.received_at)})


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
        "users": SbUser.objects.prefetch_related("meters", "resources"),
        "webhooks": SbWebhook.objects.all(),
        "events": SbEvent.objects.prefetch_related("deliveries")[:20],
        "reports": SbReport.objects.all()[:20],
        "types": list(TYPES),
    })
