"""A configurable upstream provider API, the kind Scaler pulls from (seed 002): assets,
meters and usage behind one of five auth kinds and four pagination styles, with the traps
real providers have — a maximum date range, bursts of 429 with Retry-After in both forms,
occasional 5xx, invalid records, timestamps without offset, meters that vanish.

Everything is computed from the profile and the request: record k of a usage range is a
pure function of (slot, meter), so pages are cheap and every sync sees the same data.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
import zoneinfo
from email.utils import format_datetime
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from apps.sandbox.upstream.models import Profile

UTC = dt.UTC
MAX_PAGE = 1000
METER_KINDS = (
    ("electricity", "kWh", 2.5),
    ("water", "m3", 0.04),
    ("natural_gas", "m³", 0.3),
    ("district_heating", "MWh", 0.002),
)
CITIES = ("Madrid", "Valencia", "Sevilla", "Bilbao", "Zaragoza")


def _error(status: int, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _sign(text: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), text.encode(), hashlib.sha256).hexdigest()[:32]


def _counter(key: str) -> int:
    key = f"sandbox:upstream:{key}"
    cache.add(key, 0, timeout=None)
    try:
        return cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=None)
        return 1


# --- auth ----------------------------------------------------------------------------------

def _basic(request: HttpRequest) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def _authorised(profile: Profile, request: HttpRequest) -> bool:
    kind = profile.auth_kind
    if kind == Profile.Auth.API_KEY_HEADER:
        return hmac.compare_digest(request.headers.get("X-Api-Key", ""), profile.api_key)
    if kind == Profile.Auth.API_KEY_QUERY:
        return hmac.compare_digest(request.GET.get("api_key", ""), profile.api_key)
    if kind == Profile.Auth.BASIC:
        return _basic(request) == (profile.username, profile.password)
    if kind == Profile.Auth.BEARER:
        expected = profile.bearer_format.format(token=profile.api_key)
        return hmac.compare_digest(request.headers.get("Authorization", ""), expected)
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return False
    parts = header[7:].split(".")
    if len(parts) != 5 or parts[0] != "a" or parts[1] != profile.slug:
        return False
    if not hmac.compare_digest(parts[4], _sign(".".join(parts[:4]))):
        return False
    return int(parts[2]) > time.time()


def _issue(profile: Profile) -> JsonResponse:
    generation = _counter(f"{profile.slug}:refresh-generation")
    access = f"a.{profile.slug}.{int(time.time()) + profile.token_lifetime}.{secrets.token_hex(4)}"
    refresh = f"r.{profile.slug}.{generation}"
    return JsonResponse({
        "access_token": f"{access}.{_sign(access)}",
        "token_type": "Bearer",
        "expires_in": profile.token_lifetime,
        # Rotated on every use: only the newest refresh token is accepted.
        "refresh_token": f"{refresh}.{_sign(refresh)}",
    })


@csrf_exempt
@require_POST
def token(request: HttpRequest, slug: str) -> HttpResponse:
    profile = get_object_or_404(Profile, slug=slug)
    if profile.auth_kind not in (Profile.Auth.CLIENT_CREDENTIALS, Profile.Auth.PASSWORD):
        return _error(400, "unsupported_grant_type: this provider does not use OAuth2")
    client = _basic(request) or (request.POST.get("client_id"), request.POST.get("client_secret"))
    if client != (profile.client_id, profile.client_secret):
        return _error(401, "invalid_client")
    grant = request.POST.get("grant_type")
    if grant == "refresh_token":
        parts = request.POST.get("refresh_token", "").split(".")
        current = cache.get(f"sandbox:upstream:{slug}:refresh-generation")
        if (
            len(parts) != 4
            or not hmac.compare_digest(parts[3], _sign(".".join(parts[:3])))
            or str(current) != parts[2]
        ):
            return _error(400, "invalid_grant: refresh token unknown, expired or already used")
        return _issue(profile)
    if grant == "client_credentials" and profile.auth_kind == Profile.Auth.CLIENT_CREDENTIALS:
        return _issue(profile)
    if grant == "password" and profile.auth_kind == Profile.Auth.PASSWORD:
        owner = (request.POST.get("username"), request.POST.get("password"))
        if owner != (profile.username, profile.password):
            return _error(400, "invalid_grant: wrong username or password")
        return _issue(profile)
    return _error(400, f"unsupported_grant_type: {grant}")


# --- paging --------------------------------------------------------------------------------

def _window(profile: Profile, request: HttpRequest) -> tuple[int, int]:
    """(offset, limit) the request asks for, whatever the pagination style."""
    try:
        limit = min(MAX_PAGE, int(request.GET.get("limit") or request.GET.get("per_page")
                                  or profile.page_size))
        style = profile.pagination
        if style == Profile.Paging.OFFSET:
            offset = int(request.GET.get("offset", 0))
        elif style == Profile.Paging.PAGE:
            offset = (int(request.GET.get("page", 1)) - 1) * limit
        elif style == Profile.Paging.CURSOR:
            cursor = request.GET.get("cursor")
            offset = int(base64.urlsafe_b64decode(cursor).decode()) if cursor else 0
        else:
            offset = int(request.GET.get("after", 0))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"bad paging parameter: {exc}") from None
    if limit < 1 or offset < 0:
        raise ValueError("limit must be positive and offset not negative")
    return offset, limit


def _page(
    profile: Profile, request: HttpRequest, total: int, offset: int, limit: int, items: list
) -> HttpResponse:
    end = offset + len(items)
    following = end if end < total else None
    if profile.loop_cursor and following is not None and offset == 2 * limit:
        following = limit  # points back at page 2: a client without a loop guard never ends
    style = profile.pagination
    body: dict = {"data": items}
    link = None
    if style == Profile.Paging.OFFSET:
        body["total"] = total
    elif style == Profile.Paging.PAGE:
        body["page"] = offset // limit + 1
        body["pages"] = -(-total // limit)
    elif style == Profile.Paging.CURSOR:
        body["paging"] = {
            "next": base64.urlsafe_b64encode(str(following).encode()).decode()
            if following is not None else None
        }
    elif following is not None:
        params = {k: v for k, v in request.GET.items() if k != "after"}
        params.update(after=str(following), limit=str(limit))
        link = f'<{request.build_absolute_uri(request.path)}?{urlencode(params)}>; rel="next"'
    response = HttpResponse(json.dumps(body, separators=(",", ":")),
                            content_type="application/json")
    if link:
        response["Link"] = link
    return response


def _guard(profile: Profile, request: HttpRequest) -> HttpResponse | None:
    """Auth first, then the provider's bad moods: 429 bursts and the odd 503."""
    if not _authorised(profile, request):
        return _error(401, "missing or invalid credentials")
    if not (profile.burst_every or profile.error_every):
        return None
    number = _counter(f"{profile.slug}:requests")
    if profile.burst_every and number >= profile.burst_every:
        burst, position = divmod(number, profile.burst_every)
        if position < profile.burst_length:
            wait = profile.retry_after_seconds
            if burst % 2:
                when = dt.datetime.now(UTC) + dt.timedelta(seconds=wait)
                value = format_datetime(when, usegmt=True)
            else:
                value = str(wait)
            return _error(429, "too many requests", Retry_After=value)
    if profile.error_every and number % profile.error_every == 0:
        return _error(503, "service temporarily unavailable")
    return None


# --- entities ------------------------------------------------------------------------------

def _asset(i: int) -> dict:
    return {
        "assetId": f"A-{i:02d}",
        "name": f"Building {i}",
        "address": {"street": f"Calle Mayor {i}", "city": CITIES[i % len(CITIES)],
                    "zip": f"28{i:03d}", "country": "ES"},
        "region": "North" if i % 2 else "South",
    }


def _meter(profile: Profile, j: int) -> dict:
    kind, unit, _ = METER_KINDS[(j - 1) % len(METER_KINDS)]
    asset = (j - 1) % max(1, profile.asset_count) + 1
    return {
        "id": f"M-{j:04d}",
        "asset": {"id": f"A-{asset:02d}", "name": f"Building {asset}"},
        "label": f"{kind.replace('_', ' ').title()} meter {j}",
        "kind": kind,
        "unit": unit,
        "serial": f"SN{j * 7919:08d}",
    }


def _meter_numbers(profile: Profile, first_page: bool) -> list[int]:
    hidden = set(profile.hidden_meters or [])
    numbers = [j for j in range(1, profile.meter_count + 1) if f"M-{j:04d}" not in hidden]
    if profile.flapping_meters:
        generation = (
            _counter(f"{profile.slug}:listings") if first_page
            else cache.get(f"sandbox:upstream:{profile.slug}:listings", 0)
        )
        if generation % 2 == 0:
            numbers = numbers[: max(0, len(numbers) - profile.flapping_meters)]
    return numbers


@require_GET
def assets(request: HttpRequest, slug: str) -> HttpResponse:
    profile = get_object_or_404(Profile, slug=slug)
    if refused := _guard(profile, request):
        return refused
    try:
        offset, limit = _window(profile, request)
    except ValueError as exc:
        return _error(400, str(exc))
    total = profile.asset_count
    items = [_asset(i) for i in range(offset + 1, min(total, offset + limit) + 1)]
    return _page(profile, request, total, offset, limit, items)


@require_GET
def meters(request: HttpRequest, slug: str) -> HttpResponse:
    profile = get_object_or_404(Profile, slug=slug)
    if refused := _guard(profile, request):
        return refused
    try:
        offset, limit = _window(profile, request)
    except ValueError as exc:
        return _error(400, str(exc))
    numbers = _meter_numbers(profile, first_page=offset == 0)
    items = [_meter(profile, j) for j in numbers[offset: offset + limit]]
    return _page(profile, request, len(numbers), offset, limit, items)


# --- usage ---------------------------------------------------------------------------------

def _instant(text: str | None, name: str) -> dt.datetime:
    if not text:
        raise ValueError(f"'{name}' is required (YYYY-MM-DD or ISO 8601)")
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{name}' is not a date (YYYY-MM-DD or ISO 8601): {text}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _usage_range(profile: Profile, request: HttpRequest) -> tuple[int, int]:
    """First slot and slot count the [from, to) range covers."""
    start, end = _instant(request.GET.get("from"), "from"), _instant(request.GET.get("to"), "to")
    if end <= start:
        raise ValueError("'to' must be after 'from'")
    if profile.max_range_days and end - start > dt.timedelta(days=profile.max_range_days):
        raise ValueError(f"date range too large: at most {profile.max_range_days} days per request")
    step = profile.interval_minutes * 60
    lo = max(start, profile.data_start).timestamp()
    hi = min(end, dt.datetime.now(UTC)).timestamp()
    first = -(-int(lo) // step)
    last = -(-int(hi) // step)  # exclusive
    return first, max(0, last - first)


def _stamp(profile: Profile, seconds: int) -> str:
    instant = dt.datetime.fromtimestamp(seconds, UTC)
    if profile.naive_timestamps:
        # The trap: local wall-clock time, no offset. The provider documents its zone.
        local = instant.astimezone(zoneinfo.ZoneInfo(profile.naive_timezone))
        return local.replace(tzinfo=None).isoformat()
    return instant.isoformat().replace("+00:00", "Z")


def _usage(request: HttpRequest, slug: str, reading_format: bool) -> HttpResponse:
    profile = get_object_or_404(Profile, slug=slug)
    if refused := _guard(profile, request):
        return refused
    try:
        offset, limit = _window(profile, request)
        first, slots = _usage_range(profile, request)
    except ValueError as exc:
        return _error(400, str(exc))
    count = max(1, profile.meter_count)
    total = slots * count
    step = profile.interval_minutes * 60
    items = []
    for k in range(offset, min(total, offset + limit)):
        slot, m = first + k // count, k % count
        j = m + 1
        _, _, scale = METER_KINDS[m % len(METER_KINDS)]
        factor = 0.5 + ((slot * 7 + j * 13) % 10) / 10
        meter = f"M-{j:04d}"
        if reading_format:
            record = {"meter": meter, "timestamp": _stamp(profile, slot * step),
                      "reading": round(slot * scale * 1.0 + factor * scale, 4),
                      "flags": {"estimated": False}}
        else:
            value = round(scale * factor, 4)
            record = {
                "meter": meter,
                "period": {"from": _stamp(profile, slot * step),
                           "to": _stamp(profile, (slot + 1) * step)},
                "quantity": value,
                "cost": {"amount": round(value * 0.21, 4), "currency": "EUR"},
                "flags": {"estimated": (slot + j) % 17 == 0},
            }
        number = slot * count + m
        if profile.invalid_every and number % profile.invalid_every == profile.invalid_every - 1:
            _spoil(record, (number // profile.invalid_every) % 4, reading_format)
        items.append(record)
    return _page(profile, request, total, offset, limit, items)


def _spoil(record: dict, how: int, reading_format: bool) -> None:
    if how == 0:
        record["reading" if reading_format else "quantity"] = "n/a"
    elif how == 1:
        record["meter"] = "M-GHOST"
    elif reading_format:
        record["timestamp"] = "yesterday"
    elif how == 2:
        record["period"]["from"], record["period"]["to"] = (
            record["period"]["to"], record["period"]["from"]
        )
    else:
        record["cost"] = {"amount": 1.5, "currency": None}


@require_GET
def consumption(request: HttpRequest, slug: str) -> HttpResponse:
    return _usage(request, slug, reading_format=False)


@require_GET
def readings(request: HttpRequest, slug: str) -> HttpResponse:
    return _usage(request, slug, reading_format=True)
