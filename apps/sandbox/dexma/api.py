"""The simulated APIv3 under /sandbox/dexma/v3/: handshake, datasources, tokens, devices,
sessions. Faithful to the traps: per-token hour/day budgets reported in X-Ratelimit-*
headers on every answer and 429 past them, 422 for `limit` above 500, error bodies as
`{"status", "code", "message", "errors": [...]}`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from apps.sandbox.dexma.faults import Target, storm_aware, token_digest
from apps.sandbox.dexma.models import (
    AppToken,
    PlatformDatasource,
    PlatformDevice,
    PlatformSession,
    TempToken,
    new_token,
)

HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
MAX_LIMIT = 500


def error(status: int, message: str, errors: list[dict] | None = None) -> JsonResponse:
    return JsonResponse({"status": status, "code": f"E{status}", "message": message,
                         "errors": errors or []}, status=status)


def _charge(token_value: str) -> tuple[AppToken | None, dict[str, str], bool]:
    """Count one call against the token's budgets: (token, headers, over budget)."""
    now = timezone.now()
    with transaction.atomic():
        token = AppToken.objects.select_for_update().filter(token=token_value).first()
        if token is None:
            return None, {}, False
        if token.hour_started is None or now - token.hour_started >= HOUR:
            token.hour_started, token.hour_used = now, 0
        if token.day_started is None or now - token.day_started >= DAY:
            token.day_started, token.day_used = now, 0
        over = token.hour_used >= token.hour_limit or token.day_used >= token.day_limit
        if not over:
            token.hour_used += 1
            token.day_used += 1
        token.save()
    hour_reset = max(0, int((token.hour_started + HOUR - now).total_seconds()))
    day_reset = max(0, int((token.day_started + DAY - now).total_seconds()))
    headers = {
        "X-Ratelimit-Day-Limit": str(token.day_limit),
        "X-Ratelimit-Day-Remaining": str(max(0, token.day_limit - token.day_used)),
        "X-Ratelimit-Day-Reset": str(day_reset),
        "X-Ratelimit-Hour-Limit": str(token.hour_limit),
        "X-Ratelimit-Hour-Remaining": str(max(0, token.hour_limit - token.hour_used)),
        "X-Ratelimit-Hour-Reset": str(hour_reset),
    }
    return token, headers, over


def _token_of(request: HttpRequest) -> str:
    return token_digest(request.headers.get("x-dexcell-token", ""))


def authenticated(view: Callable) -> Callable:
    @csrf_exempt
    @wraps(view)
    @storm_aware(Target.API, _token_of)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        token, headers, over = _charge(request.headers.get("x-dexcell-token", ""))
        if token is None:
            return error(401, "Invalid or missing x-dexcell-token")
        if over:
            response = error(429, "Too Many Requests: rate limit exceeded for this token")
        else:
            request.app_token = token
            response = view(request, *args, **kwargs)
        for name, value in headers.items():
            response[name] = value
        return response

    return wrapped


def _page(request: HttpRequest) -> tuple[int, int] | JsonResponse:
    try:
        start = int(request.GET.get("start", 0))
        limit = int(request.GET.get("limit", 20))
    except ValueError:
        return error(422, "Entity validation error",
                     [{"message": "must be a number", "field": "start/limit"}])
    if limit > MAX_LIMIT:
        return error(422, "Entity validation error",
                     [{"message": f"must be less than or equal to {MAX_LIMIT}", "field": "limit"}])
    if limit < 1 or start < 0:
        return error(422, "Entity validation error",
                     [{"message": "must be positive", "field": "limit"}])
    return start, limit


def _body(request: HttpRequest) -> dict | JsonResponse:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        return error(400, "Malformed JSON body")
    return data if isinstance(data, dict) else error(400, "The body must be a JSON object")


@csrf_exempt
def access_token(request: HttpRequest) -> HttpResponse:
    """Handshake step 2: 201 with the permanent token as the plain-text body."""
    if request.method != "POST":
        return error(405, "Method not allowed")
    app_id, secret = request.GET.get("app_id", ""), request.GET.get("secret", "")
    # The app registered in this simulated platform: by default the hub's own credentials.
    registered_id = getattr(settings, "SANDBOX_DEXMA_APP_ID", "") or settings.DEXMA_APP_ID
    registered_secret = (
        getattr(settings, "SANDBOX_DEXMA_APP_SECRET", "") or settings.DEXMA_APP_SECRET
    )
    if app_id != registered_id or secret != registered_secret:
        return error(401, "Unknown app_id or wrong secret")
    with transaction.atomic():
        temp = TempToken.objects.select_for_update().filter(
            token=request.GET.get("temp_token", ""), app_id=app_id, used=False,
            created_at__gte=timezone.now() - dt.timedelta(minutes=10),
        ).first()
        if temp is None:
            return error(400, "Invalid, used or expired temp_token",
                         [{"message": "invalid", "field": "temp_token"}])
        temp.used = True
        temp.save(update_fields=["used"])
        # Tokens are per app-deployment pair: a reinstall replaces the old one.
        AppToken.objects.filter(deployment=temp.deployment, app_id=app_id).delete()
        token = AppToken.objects.create(deployment=temp.deployment, app_id=app_id)
    return HttpResponse(token.token, status=201, content_type="text/plain")


def _mine(request: HttpRequest):
    token = request.app_token
    return PlatformDatasource.objects.filter(deployment=token.deployment, app_id=token.app_id)


def _validated_status(value, errors: list[dict]) -> str | None:
    if value is not None and value not in ("ENABLED", "DISABLED"):
        errors.append({"message": "must be ENABLED or DISABLED", "field": "status"})
    return value


@authenticated
def datasources(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        page = _page(request)
        if isinstance(page, JsonResponse):
            return page
        start, limit = page
        return JsonResponse([d.as_json() for d in _mine(request)[start:start + limit]],
                            safe=False)
    if request.method != "POST":
        return error(405, "Method not allowed")
    data = _body(request)
    if isinstance(data, JsonResponse):
        return data
    errors: list[dict] = []
    status = _validated_status(data.get("status"), errors)
    if "id" in data:  # a merge of an existing datasource: only name and status change
        found = _mine(request).filter(pk=data["id"]).first() if str(data["id"]).isdigit() else None
        if found is None:
            return error(404, f"Datasource {data['id']} not found")
        if "name" in data and not str(data["name"]).strip():
            errors.append({"message": "must not be blank", "field": "name"})
        if errors:
            return error(422, "Entity validation error", errors)
        found.name = str(data.get("name", found.name))
        found.status = status or found.status
        found.save()
        return JsonResponse(found.as_json())
    name = str(data.get("name", "")).strip()
    if not name:
        errors.append({"message": "must not be blank", "field": "name"})
    if errors:
        return error(422, "Entity validation error", errors)
    prefix = settings.DEXMA_DATASOURCE_TYPE_KEY
    key = str(data.get("key") or "") or f"{prefix}-{new_token(8)}"
    if not key.startswith(prefix):
        key = f"{prefix}-{key}"  # every key of a type starts with the type's key
    if PlatformDatasource.objects.filter(key=key).exists():
        return error(422, "Entity validation error",
                     [{"message": "already exists", "field": "key"}])
    created = PlatformDatasource.objects.create(
        deployment=request.app_token.deployment, app_id=request.app_token.app_id, key=key,
        name=name, type=str(data.get("type") or "VIRTUAL"),
        timezone=str(data.get("timezone") or "UTC"), status=status or "ENABLED",
    )
    return JsonResponse(created.as_json(), status=201)


@authenticated
def datasource(request: HttpRequest, datasource_id: int) -> HttpResponse:
    found = _mine(request).filter(pk=datasource_id).first()
    if found is None:
        return error(404, f"Datasource {datasource_id} not found")
    if request.method == "GET":
        return JsonResponse(found.as_json())
    if request.method == "DELETE":
        found.delete()
        return HttpResponse(status=204)
    return error(405, "Method not allowed")


@authenticated
def datasource_token(request: HttpRequest, datasource_id: int) -> HttpResponse:
    found = _mine(request).filter(pk=datasource_id).first()
    if found is None:
        return error(404, f"Datasource {datasource_id} not found")
    return JsonResponse({"token": found.source_token})


@authenticated
def devices(request: HttpRequest) -> HttpResponse:
    token = request.app_token
    if request.method == "POST":
        data = _body(request)
        if isinstance(data, JsonResponse):
            return data
        ds_id = (data.get("datasource") or {}).get("id")
        found = _mine(request).filter(pk=ds_id).first() if str(ds_id).isdigit() else None
        local_id = str(data.get("local_id", ""))
        errors = []
        if found is None:
            errors.append({"message": "unknown datasource", "field": "datasource.id"})
        if not local_id or len(local_id) > 25:
            errors.append({"message": "1 to 25 characters", "field": "local_id"})
        if errors:
            return error(422, "Entity validation error", errors)
        device, _ = PlatformDevice.objects.get_or_create(
            datasource=found, local_id=local_id,
            defaults={"name": str(data.get("name", local_id)),
                      "description": str(data.get("description", ""))},
        )
        return JsonResponse(device.as_json(), status=201)
    page = _page(request)
    if isinstance(page, JsonResponse):
        return page
    start, limit = page
    queryset = PlatformDevice.objects.filter(datasource__deployment=token.deployment)
    if request.GET.get("datasource_id"):
        queryset = queryset.filter(datasource_id=request.GET["datasource_id"])
    return JsonResponse([d.as_json() for d in queryset[start:start + limit]], safe=False)


@authenticated
def session(request: HttpRequest, session_id: str) -> HttpResponse:
    found = PlatformSession.objects.filter(
        session_id=session_id, deployment=request.app_token.deployment
    ).first()
    if found is None:
        return error(403, "Invalid session")
    return JsonResponse({"id": found.session_id,
                         "deployment": {"id": found.deployment.dep_id},
                         "user": {"name": found.user_name, "email": found.user_email}})
