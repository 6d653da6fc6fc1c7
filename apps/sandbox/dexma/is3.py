"""The simulated IS3 (POST /sandbox/dexma/is3/readings) and the APIv3 readings read-back.

Faithful to the traps of the seed: a misaligned interval reading is answered 200 `OK` and
silently dropped, and so is an interval reading of a second discrete resolution of a device
parameter (seed: "a device parameter cannot have two discrete resolutions at once": the
resolution it holds first stays); more than 5,000 values in one body is refused; the
datasource must exist, be ENABLED and present its source token. What is kept can be read
back through `GET /v3/readings`, and the counters (overwrites, out-of-order inserts,
discarded values) show how a delivery behaved. Alignment is checked here independently of
the hub's code.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from apps.sandbox.dexma.api import authenticated, error
from apps.sandbox.dexma.faults import Target, storm_aware
from apps.sandbox.dexma.models import (
    Is3Series,
    Is3Stats,
    Is3Value,
    PlatformDatasource,
    PlatformDevice,
)

MAX_VALUES = 5000
_STEP_MINUTES = {0: 15, 1: 60, 6: 30, 7: 10, 8: 5}
# APIv3 read-back: resolution → frequency digit, operation → operation digit.
_RESOLUTIONS = {"QH": 0, "H": 1, "D": 2, "W": 3, "M": 4, "HH": 6, "TM": 7, "FM": 8}
_OPERATIONS = {"DELTA": 1, "AVG": 2, "MAX": 3, "MIN": 4}
# Not public: the APIv3 parameter keys. The ones the sandbox knows; a numeric base code works too.
PARAMETER_KEYS = {"EACTIVE": 402, "PACTIVE": 401, "TEMPERATURE": 301, "HUMIDITY": 302,
                  "EREACTIVE": 404, "GAS_VOLUME": 419, "WATER_VOLUME": 901}


def _text(status: int, message: str) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def aligned(p: int, ts: dt.datetime, zone: ZoneInfo) -> bool:
    """Whether an interval value (five-digit p) starts on its boundary in local time."""
    if p < 10000:
        return True
    frequency = (p // 10) % 10
    local = ts.astimezone(zone)
    if local.second or local.microsecond:
        return False
    if frequency in _STEP_MINUTES:
        step = _STEP_MINUTES[frequency]
        return local.minute % step == 0 and (step < 60 or local.minute == 0)
    if local.hour or local.minute:
        return False
    if frequency == 2:
        return True
    if frequency == 3:
        return local.weekday() == 0
    if frequency == 4:
        return local.day == 1
    return False


def _parse(body: bytes) -> list[tuple[str, dt.datetime, int, float]] | str:
    """(did, ts, p, v) for every value, or what is wrong with the body."""
    try:
        messages = json.loads(body or b"")
    except ValueError:
        return "Malformed JSON"
    if not isinstance(messages, list):
        return "The body must be a JSON array of messages"
    values = []
    for message in messages:
        if not isinstance(message, dict):
            return "Every message must be an object"
        did, stamp, items = message.get("did"), message.get("ts"), message.get("values")
        if not isinstance(did, str) or not 0 < len(did) <= 25:
            return f"Invalid did {did!r}: 1 to 25 characters"
        try:
            ts = dt.datetime.fromisoformat(str(stamp))
        except ValueError:
            return f"Invalid ts {stamp!r}"
        if ts.tzinfo is None:
            return f"ts {stamp!r} has no offset"
        if not isinstance(items, list):
            return "values must be a list"
        for item in items:
            try:
                values.append((did, ts, int(item["p"]), float(item["v"])))
            except (KeyError, TypeError, ValueError):
                return f"Invalid value {item!r}"
    return values


@csrf_exempt
@storm_aware(Target.IS3, lambda request: request.GET.get("source_key", ""))
def readings(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _text(405, "Method not allowed")
    datasource = PlatformDatasource.objects.filter(key=request.GET.get("source_key", "")).first()
    if datasource is None:
        return _text(404, "Unknown source_key")
    token = request.headers.get("x-dexcell-source-token", "")
    if not hmac.compare_digest(token.encode(), datasource.source_token.encode()):
        Is3Stats.objects.get_or_create(datasource=datasource)
        Is3Stats.objects.filter(datasource=datasource).update(refused=F("refused") + 1)
        return _text(401, "Invalid x-dexcell-source-token")
    if datasource.status != "ENABLED":
        return _text(403, f"Datasource {datasource.key} is {datasource.status}")
    parsed = _parse(request.body)
    if isinstance(parsed, str):
        return _text(400, parsed)
    if len(parsed) > MAX_VALUES:
        return _text(400, f"Too many readings: {len(parsed)} in one message, at most "
                          f"{MAX_VALUES}")
    zone = _zone(datasource.timezone)
    kept = _one_resolution(datasource, [value for value in parsed
                                        if aligned(value[2], value[1], zone)])
    _store(datasource, kept, discarded=len(parsed) - len(kept))
    return _text(200, "OK")


def _one_resolution(datasource: PlatformDatasource, values: list) -> list:
    """Interval values of a resolution other than the one their device parameter (did and
    base code) already holds, or first arrived with in this body, are dropped."""
    held: dict[tuple[str, int], int] = {}
    for did, p in Is3Series.objects.filter(
        datasource=datasource, did__in={v[0] for v in values}, p__gte=10000
    ).order_by("pk").values_list("did", "p"):
        held.setdefault((did, p // 100), (p // 10) % 10)
    kept = []
    for value in values:
        did, _, p, _ = value
        if p >= 10000 and held.setdefault((did, p // 100), (p // 10) % 10) != (p // 10) % 10:
            continue
        kept.append(value)
    return kept


def _series_for(datasource: PlatformDatasource, keys: set[tuple[str, int]],
                first_ts: dict[tuple[str, int], dt.datetime]) -> dict[tuple[str, int], Is3Series]:
    found = {(s.did, s.p): s for s in Is3Series.objects.filter(
        datasource=datasource, did__in={d for d, _ in keys})}
    missing = keys - set(found)
    if missing:
        Is3Series.objects.bulk_create(
            [Is3Series(datasource=datasource, did=d, p=p, last_ts=first_ts[(d, p)])
             for d, p in missing], ignore_conflicts=True)
        found = {(s.did, s.p): s for s in Is3Series.objects.filter(
            datasource=datasource, did__in={d for d, _ in keys})}
        for key in missing:  # new series: nothing held before, so nothing is "older"
            found[key].fresh = True
    return found


def _upsert(rows: dict[tuple[int, dt.datetime], float]) -> None:
    """Bulk upsert: one statement over arrays on PostgreSQL (this store takes millions)."""
    if connection.vendor == "postgresql":
        table = Is3Value._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (series_id, ts, v) "  # noqa: S608 (table name is ours)
                "SELECT * FROM unnest(%s::bigint[], %s::timestamptz[], %s::float8[]) "
                "ON CONFLICT (series_id, ts) DO UPDATE SET v = EXCLUDED.v",
                # Array literals as text: far cheaper to build than adapting 5,000 objects.
                ["{" + ",".join(str(k[0]) for k in rows) + "}",
                 "{" + ",".join(k[1].isoformat() for k in rows) + "}",
                 "{" + ",".join(repr(v) for v in rows.values()) + "}"],
            )
        return
    Is3Value.objects.bulk_create(
        [Is3Value(series_id=k[0], ts=k[1], v=v) for k, v in rows.items()], batch_size=500,
        update_conflicts=True, unique_fields=["series", "ts"], update_fields=["v"])


def _store(datasource: PlatformDatasource, values: list, *, discarded: int) -> None:
    if values:
        dids = {did for did, *_ in values}
        known = set(PlatformDevice.objects.filter(datasource=datasource, local_id__in=dids)
                    .values_list("local_id", flat=True))
        for did in dids - known:  # IS3 creates a device the first time its did arrives
            try:
                with transaction.atomic():
                    PlatformDevice.objects.create(datasource=datasource, local_id=did, name=did)
            except IntegrityError:
                pass
    first_ts: dict[tuple[str, int], dt.datetime] = {}
    for did, ts, p, _ in values:
        first_ts.setdefault((did, p), ts)
    overwrites = out_of_order = 0
    with transaction.atomic():
        series = _series_for(datasource, set(first_ts), first_ts)
        newest = {key: (None if getattr(s, "fresh", False) else s.last_ts)
                  for key, s in series.items()}
        rows: dict[tuple[int, dt.datetime], float] = {}
        for did, ts, p, v in values:
            s = series[(did, p)]
            top = newest[(did, p)]
            if top is not None and ts < top:
                out_of_order += 1
            newest[(did, p)] = ts if top is None else max(top, ts)
            key = (s.pk, ts)
            if key in rows:
                overwrites += 1
            rows[key] = v
        if rows:
            stamps = [ts for _, ts in rows]
            held = set(Is3Value.objects.filter(
                series__in=[s.pk for s in series.values()], ts__gte=min(stamps),
                ts__lte=max(stamps)).values_list("series_id", "ts"))
            overwrites += len(held & set(rows))
            _upsert(rows)
            moved = []
            for key, s in series.items():
                if newest[key] is not None and newest[key] != s.last_ts:
                    s.last_ts = newest[key]
                    moved.append(s)
            Is3Series.objects.bulk_update(moved, ["last_ts"])
        Is3Stats.objects.get_or_create(datasource=datasource)
        Is3Stats.objects.filter(datasource=datasource).update(
            requests=F("requests") + 1, stored=F("stored") + len(values),
            overwrites=F("overwrites") + overwrites, out_of_order=F("out_of_order") + out_of_order,
            discarded=F("discarded") + discarded,
        )


@authenticated
def readings_read(request: HttpRequest) -> HttpResponse:
    """`GET /v3/readings?device_id=&parameter_key=&resolution=&operation=&from=&to=`."""
    if request.method != "GET":
        return error(405, "Method not allowed")
    token = request.app_token
    q = request.GET
    device = PlatformDevice.objects.select_related("datasource").filter(
        pk=q.get("device_id") if str(q.get("device_id", "")).isdigit() else None,
        datasource__deployment=token.deployment,
    ).first()
    if device is None:
        return error(404, f"Device {q.get('device_id')} not found")
    key = q.get("parameter_key", "")
    base = PARAMETER_KEYS.get(key) or (int(key) if key.isdigit() else None)
    resolution, operation = q.get("resolution", "B"), q.get("operation", "RAW")
    errors = []
    if base is None:
        errors.append({"message": "unknown parameter", "field": "parameter_key"})
    if resolution != "B" and (resolution not in _RESOLUTIONS or operation not in _OPERATIONS):
        errors.append({"message": "unknown resolution or operation", "field": "resolution"})
    try:
        start = dt.datetime.fromisoformat(q.get("from", ""))
        end = dt.datetime.fromisoformat(q.get("to", ""))
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError
    except ValueError:
        errors.append({"message": "ISO 8601 with an offset", "field": "from/to"})
    if errors:
        return error(422, "Entity validation error", errors)
    # The sandbox serves what was inserted at exactly this code (no derived resolutions).
    p = base if resolution == "B" else base * 100 + _RESOLUTIONS[resolution] * 10 + \
        _OPERATIONS[operation]
    zone = _zone(device.datasource.timezone)
    values = Is3Value.objects.filter(
        series__datasource=device.datasource, series__did=device.local_id, series__p=p,
        ts__gte=start, ts__lt=end,
    ).order_by("ts").values_list("ts", "v")
    return JsonResponse({"values": [{"ts": ts.astimezone(zone).isoformat(), "v": v}
                                    for ts, v in values]})
