"""Reads for the partner API. Every query starts from one deployment: nothing crosses it.

Every list is ordered by id, which a record keeps for life: a correction changes a
reading's value and its change number (`seq`), never its id, and a new record gets an id
above every committed one of its deployment (readings are written under the deployment's
lock). So an offset still points at the same record after corrections and additions, and a
keyset cursor after deletions too. A cursor also carries the pull's bound, taken on its
first page (see `params.Bound`), so that a pull ends and repeats nothing.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from functools import cache

from django.db import DatabaseError, connection, transaction
from django.db.models import Max, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from apps.core.models import Deployment, Device, Parameter, Reading, ReadingCommit, Site
from apps.core.statements import reused_plan_cursor
from apps.partner_api.exceptions import ApiError
from apps.partner_api.models import Tombstone
from apps.partner_api.params import Bound, PageRequest
from apps.partner_api.usage_sql import (
    LONG_NUMBER,
    TOP_ID,
    USAGE_DOC,
    USAGE_JSON_SQL,
    USAGE_SQL,
    floats_python,
)

# Scaler's "redelivery to grid" is the export register beside the consumption one.
REDELIVERY_OF = {
    "active_energy_delta": "exported_active_energy_delta",
    "inductive_reactive_energy_delta": "exported_inductive_reactive_energy_delta",
    "capacitive_reactive_energy_delta": "exported_capacitive_reactive_energy_delta",
}
# On meters of this Scaler subtype the consumption value is what the site produced.
PRODUCTION_SUBTYPE = "On-site Renewable Electricity"


@dataclass(frozen=True, slots=True)
class Catalogue:
    keys: dict[int, str]
    units: dict[int, str]
    ids: dict[str, int]
    usage_ids: tuple[int, ...]  # interval deltas Scaler reads as consumption
    reading_ids: tuple[int, ...]  # cumulative indexes and instantaneous values
    redelivery: dict[int, int]  # consumption parameter id → export parameter id


@cache
def catalogue() -> Catalogue:
    """The parameter catalogue is fixed by a data migration: read it once per process."""
    rows = list(Parameter.objects.values_list("id", "key", "unit", "kind", "operation"))
    ids = {key: pk for pk, key, *_ in rows}
    exported = set(REDELIVERY_OF.values())
    return Catalogue(
        keys={pk: key for pk, key, *_ in rows},
        units={pk: unit for pk, _, unit, *_ in rows},
        ids=ids,
        usage_ids=tuple(pk for pk, key, _, kind, op in rows
                        if kind == Parameter.Kind.INTERVAL and op == Parameter.Operation.DELTA
                        and key not in exported),
        reading_ids=tuple(pk for pk, _, _, kind, _ in rows if kind != Parameter.Kind.INTERVAL),
        redelivery={ids[a]: ids[b] for a, b in REDELIVERY_OF.items() if a in ids and b in ids},
    )


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _stamp(value: dt.datetime | None) -> str | None:
    """A change time, always UTC with microseconds.

    Fixed width, so that text order is time order for clients keeping their cursor as text.
    """
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds") if value else None


# --- assets and meters --------------------------------------------------------------------

# Meters and assets carry their save time, which precedes their commit by the length of the
# writing transaction: an incremental pull stops this far behind now, so that a save still
# uncommitted when the pull began is left for the next pull instead of slipping behind it.
SAVE_MARGIN = dt.timedelta(seconds=5)


def asset_data(site: Site) -> dict:
    return {
        "external_id": site.external_id,
        "name": site.name,
        "address": {"street": site.street, "city": site.city,
                    "postal_code": site.postal_code, "country": site.country},
        "latitude": site.latitude,
        "longitude": site.longitude,
        "timezone": site.timezone,
        "metadata": site.metadata,
        "active": site.is_active,
        "updated_at": _stamp(site.updated_at),
        "deleted": False,
        "deleted_at": None,
    }


def meter_data(device: Device) -> dict:
    return {
        "external_id": device.external_id,
        "asset": device.site.external_id if device.site_id else None,
        "name": device.name,
        "type": device.get_commodity_display(),
        "subtype": device.subtype or None,
        "unit": device.unit,
        "metadata": device.metadata,
        "active": device.is_active,
        "updated_at": _stamp(device.updated_at),
        "deleted": False,
        "deleted_at": None,
    }


def _tombstone_data(stone: Tombstone, blank: dict) -> dict:
    return {**blank, "external_id": stone.external_id, "active": False,
            "updated_at": _stamp(stone.deleted_at), "deleted": True,
            "deleted_at": _stamp(stone.deleted_at)}


_BLANK_ASSET = {"external_id": None, "name": None, "address": None, "latitude": None,
                "longitude": None, "timezone": None, "metadata": None}
_BLANK_METER = {"external_id": None, "asset": None, "name": None, "type": None,
                "subtype": None, "unit": None, "metadata": None}


def _to_micros(value: dt.datetime) -> int:
    return int(value.timestamp() * 1_000_000)


def _from_micros(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1_000_000, dt.UTC)


def _entity_bound(page: PageRequest, live: QuerySet, stones: QuerySet | None,
                  incremental: bool) -> Bound:
    if page.bound is not None:
        return page.bound
    if incremental:
        return Bound("t", _to_micros(timezone.now() - SAVE_MARGIN))
    top = live.model.objects.aggregate(m=Max("id"))["m"] or 0
    if stones is not None:
        top = max(top, stones.aggregate(m=Max("record_id"))["m"] or 0)
    return Bound("i", top)


def _entity_page(*, live: QuerySet, stones: QuerySet | None, page: PageRequest,
                 updated_since: dt.datetime | None, data, blank: dict
                 ) -> tuple[list[dict], list[int], Bound]:
    """A page of live records (and tombstones), in id order under the pull's bound."""
    if updated_since:
        live = live.filter(updated_at__gte=updated_since)
        stones = stones.filter(deleted_at__gte=updated_since) if stones is not None else None
    bound = _entity_bound(page, live, stones, incremental=updated_since is not None)
    if bound.kind == "t":
        live = live.filter(updated_at__lte=_from_micros(bound.value))
        if stones is not None:
            stones = stones.filter(deleted_at__lte=_from_micros(bound.value))
    elif bound.kind == "i":
        live = live.filter(id__lte=bound.value)
        if stones is not None:
            stones = stones.filter(record_id__lte=bound.value)
    else:
        raise ApiError("this cursor belongs to another list; pass back the 'next_cursor' of "
                       "this endpoint", code="invalid_cursor",
                       fields={"cursor": ["from another endpoint"]})
    if page.after_id is not None:
        live = live.filter(id__gt=page.after_id)
        stones = stones.filter(record_id__gt=page.after_id) if stones is not None else None
    end = page.skip + page.limit + 1
    if stones is None:
        found = [(r.pk, data(r)) for r in live.order_by("id")[page.skip:end]]
    else:
        ids = list(live.values_list("id", flat=True).union(
            stones.values_list("record_id", flat=True), all=True).order_by("id")[
            page.skip:end])
        rows = {r.pk: data(r) for r in live.filter(id__in=ids)}
        rows.update({t.record_id: _tombstone_data(t, blank)
                     for t in stones.filter(record_id__in=ids)})
        found = [(i, rows[i]) for i in ids if i in rows]
    return [d for _, d in found], [i for i, _ in found], bound


def assets_list(*, deployment: Deployment, page: PageRequest,
                updated_since: dt.datetime | None = None, active: bool | None = None,
                include_deleted: bool = False) -> tuple[list[dict], list[int], Bound]:
    live = Site.objects.filter(deployment=deployment)
    if active is not None:
        live = live.filter(is_active=active)
    stones = (Tombstone.objects.filter(deployment=deployment, kind=Tombstone.Kind.ASSET)
              if include_deleted and active is not True else None)
    return _entity_page(live=live, stones=stones, page=page, updated_since=updated_since,
                        data=asset_data, blank=_BLANK_ASSET)


def asset_get(*, deployment: Deployment, external_id: str) -> Site:
    site = Site.objects.filter(deployment=deployment, external_id=external_id).first()
    if site is None:
        raise ApiError(f"no asset '{external_id}' in this deployment", code="not_found",
                       status_code=404)
    return site


def meters_list(*, deployment: Deployment, page: PageRequest,
                updated_since: dt.datetime | None = None, active: bool | None = None,
                asset: str | None = None,
                include_deleted: bool = False) -> tuple[list[dict], list[int], Bound]:
    live = Device.objects.filter(deployment=deployment).select_related("site")
    if active is not None:
        live = live.filter(is_active=active)
    if asset:
        live = live.filter(site__external_id=asset)
    # A deleted meter's asset is not kept, so an asset filter cannot list its tombstone.
    stones = (Tombstone.objects.filter(deployment=deployment, kind=Tombstone.Kind.METER)
              if include_deleted and active is not True and not asset else None)
    return _entity_page(live=live, stones=stones, page=page, updated_since=updated_since,
                        data=meter_data, blank=_BLANK_METER)


def meter_get(*, deployment: Deployment, external_id: str) -> Device:
    device = (Device.objects.filter(deployment=deployment, external_id=external_id)
              .select_related("site").first())
    if device is None:
        raise ApiError(f"no meter '{external_id}' in this deployment", code="not_found",
                       status_code=404)
    return device


# --- usage and readings ---------------------------------------------------------------------

def seq_floor(*, deployment: Deployment, updated_since: dt.datetime) -> int:
    """Readings whose change committed at or after `updated_since` have a seq above this."""
    floor = (ReadingCommit.objects.filter(deployment=deployment, at__lt=updated_since)
             .order_by("-seq").values_list("seq", flat=True).first())
    return floor or 0


def _series_bound(deployment: Deployment, page: PageRequest, incremental: bool) -> Bound:
    if page.bound is not None:
        if page.bound.kind not in ("i", "s"):
            raise ApiError("this cursor belongs to another list; pass back the "
                           "'next_cursor' of this endpoint", code="invalid_cursor",
                           fields={"cursor": ["from another endpoint"]})
        return page.bound
    if incremental:
        # The last commit the pull can see: later changes have a later updated_at than
        # anything this pull returns, so `updated_since=<its newest updated_at>` gets them.
        top = (ReadingCommit.objects.filter(deployment=deployment).order_by("-seq")
               .values_list("seq", flat=True).first())
        return Bound("s", top or 0)
    return Bound("i", Reading.objects.aggregate(m=Max("id"))["m"] or 0)


@dataclass(frozen=True, slots=True)
class SeriesFilter:
    meters: tuple[str, ...] = ()
    parameter: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    after_seq: int | None = None  # from updated_since: only changes above this seq


def _parameter_ids(flt: SeriesFilter, served: tuple[int, ...],
                   cat: Catalogue) -> tuple[int, ...]:
    if not flt.parameter:
        return served
    pid = cat.ids.get(flt.parameter)
    if pid not in served:
        raise ApiError(f"parameter '{flt.parameter}' is not served by this endpoint",
                       code="invalid", fields={"parameter": ["not served here"]})
    return (pid,)


def _check_meters(deployment: Deployment, meters: tuple[str, ...]) -> None:
    if not meters:
        return
    known = set(Device.objects.filter(deployment=deployment, external_id__in=meters)
                .values_list("external_id", flat=True))
    missing = sorted(set(meters) - known)
    if missing:
        raise ApiError(f"no meter {', '.join(repr(m) for m in missing)} in this deployment",
                       code="not_found", status_code=404)


def _changed_at(deployment: Deployment):
    """A reading's change time: the first commit of its deployment at or above its seq."""
    return Subquery(ReadingCommit.objects.filter(deployment=deployment, seq__gte=OuterRef("seq"))
                    .order_by("seq").values("at")[:1])


def _readings(*, deployment: Deployment, flt: SeriesFilter, page: PageRequest,
              parameter_ids: tuple[int, ...], bound: Bound) -> QuerySet:
    parameter_ids = _parameter_ids(flt, parameter_ids, catalogue())
    _check_meters(deployment, flt.meters)
    qs = Reading.objects.filter(device__deployment=deployment, parameter_id__in=parameter_ids)
    if flt.meters:
        qs = qs.filter(device__external_id__in=flt.meters)
    if flt.start:
        qs = qs.filter(ts__gte=flt.start)
    if flt.end:
        qs = qs.filter(ts__lt=flt.end)
    if flt.after_seq is not None:
        qs = qs.filter(seq__gt=flt.after_seq)
    qs = qs.filter(seq__lte=bound.value) if bound.kind == "s" else qs.filter(id__lte=bound.value)
    if page.after_id is not None:
        qs = qs.filter(id__gt=page.after_id)
    qs = qs.annotate(changed_at=_changed_at(deployment)).order_by("id")
    return qs[page.skip: page.skip + page.limit + 1]


def _zone(name: str | None, fallback: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name or fallback)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(fallback)


def _local_days(start_us: int, end_us: int | None,
                zone: zoneinfo.ZoneInfo) -> tuple[str | None, str | None]:
    """Scaler's YYYY-MM-DD start and end when the period is whole days where the meter is.

    The period comes as microseconds since the epoch (UTC). A Madrid day starts at 23:00Z
    the day before (22:00Z in summer): the date comes from the local midnight, never from
    truncating the UTC instant.
    """
    if end_us is None or start_us % 1_000_000 or end_us % 1_000_000:
        return None, None
    local_start = dt.datetime.fromtimestamp(start_us // 1_000_000, zone)
    if local_start.hour or local_start.minute or local_start.second:
        return None, None
    local_end = dt.datetime.fromtimestamp(end_us // 1_000_000, zone)
    if local_end.hour or local_end.minute or local_end.second:
        return None, None
    return local_start.date().isoformat(), local_end.date().isoformat()


def usage_list(*, deployment: Deployment, flt: SeriesFilter,
               page: PageRequest) -> tuple[list[dict], list[int], Bound]:
    """Consumption records: interval deltas with their redelivery beside them."""
    cat = catalogue()
    bound = _series_bound(deployment, page, incremental=flt.after_seq is not None)
    query = _usage_rows_postgresql if connection.vendor == "postgresql" else _usage_rows_generic
    rows = query(deployment=deployment, flt=flt, page=page, cat=cat, bound=bound)
    keys, units = cat.keys, cat.units
    zones: dict[str | None, zoneinfo.ZoneInfo] = {}
    out = []
    for (_id, pid, start, end, start_us, end_us, value, estimated, cost, currency, ext,
         subtype, unit, site_zone, changed_at, redelivery) in rows:
        zone = zones.get(site_zone) or zones.setdefault(
            site_zone, _zone(site_zone, deployment.timezone))
        start_date, end_date = _local_days(start_us, end_us, zone)
        out.append({
            "meter": ext,
            "parameter": keys[pid],
            "start_date": start_date,
            "end_date": end_date,
            "period_start": start,
            "period_end": end,
            "value": value,
            "unit": units[pid] or unit,
            "redelivery": redelivery,
            "production": value if subtype == PRODUCTION_SUBTYPE else None,
            "cost": cost,
            "currency": currency or None,
            "estimated": estimated,
            "updated_at": changed_at,
        })
    return out, [r[0] for r in rows], bound



def _usage_where(*, deployment: Deployment, flt: SeriesFilter, page: PageRequest,
                 cat: Catalogue, bound: Bound | None) -> tuple[str, list]:
    """The page's conditions beside the deployment and parameters: SQL text and its params.

    `bound` None: no upper bound. The statement reads the highest id for the next cursor
    itself (TOP_ID), in the snapshot the page is read in, so no row of the page can be
    above it. Not written as `r.id <= (SELECT max(id) …)` either: beside an anchor's
    `r.id > n` the planner takes an unknown upper bound for a narrow range (0.5 % of the
    table), sorts the whole range after the anchor for each page (180,000 rows at offset
    20,000 of 200,000: 70 to 150 ms instead of 10) and the pull slows with the table.
    """
    ids = _parameter_ids(flt, cat.usage_ids, cat)
    _check_meters(deployment, flt.meters)
    where, params = [], [deployment.pk, list(ids)]
    if flt.meters:
        where.append("AND d.external_id = ANY(%s)")
        params.append(list(flt.meters))
    if flt.start:
        where.append("AND r.ts >= %s")
        params.append(flt.start)
    if flt.end:
        where.append("AND r.ts < %s")
        params.append(flt.end)
    if flt.after_seq is not None:
        where.append("AND r.seq > %s")
        params.append(flt.after_seq)
    if bound is not None:
        where.append("AND r.seq <= %s" if bound.kind == "s" else "AND r.id <= %s")
        params.append(bound.value)
    if page.after_id is not None:
        where.append("AND r.id > %s")
        params.append(page.after_id)
    return " ".join(where), [*params, page.limit + 1, page.skip]


def _export_of(cat: Catalogue, column: str) -> tuple[str, list]:
    """SQL of the export parameter id beside consumption parameter `column` (NULL if none)."""
    cases = " ".join("WHEN %s THEN %s" for _ in cat.redelivery)
    pairs = [v for pair in cat.redelivery.items() for v in pair]
    return (f"(CASE {column} {cases} END)", pairs) if cases else ("NULL", [])


def _usage_rows_postgresql(*, deployment: Deployment, flt: SeriesFilter, page: PageRequest,
                           cat: Catalogue, bound: Bound) -> list[tuple]:
    """The page first, then each row's export reading by natural key: one statement."""
    where, args = _usage_where(deployment=deployment, flt=flt, page=page, cat=cat, bound=bound)
    export, pairs = _export_of(cat, "page.parameter_id")
    sql = USAGE_SQL.format(where=where, export=export)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*args, *pairs])
        return cursor.fetchall()



# Site zones met by this process: True when both Python and PostgreSQL know them, False when
# Python does not (the deployment's zone stands in, as in `_zone`), None when only Python
# does (those pages are built by usage_list).
_ZONES: dict[str, bool | None] = {}


def _zone_learn(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        _ZONES[name] = False
        return
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT now() AT TIME ZONE %s", [name])
        _ZONES[name] = True
    except DatabaseError:
        _ZONES[name] = None


@dataclass(frozen=True, slots=True)
class Rendered:
    """A page's records as JSON text: the items of the `results` array, comma-separated."""

    text: str


def usage_page(*, deployment: Deployment, flt: SeriesFilter,
               page: PageRequest) -> tuple[list[dict] | Rendered, list[int], Bound]:
    """usage_list's page, written as JSON by PostgreSQL where it can (see USAGE_JSON_SQL)."""
    if connection.vendor != "postgresql":
        return usage_list(deployment=deployment, flt=flt, page=page)
    cat = catalogue()
    # A full pull's first page (and every offset page) takes its bound in the same statement.
    bound = (None if page.bound is None and flt.after_seq is None else
             _series_bound(deployment, page, incremental=flt.after_seq is not None))
    where, args = _usage_where(deployment=deployment, flt=flt, page=page, cat=cat, bound=bound)
    export, pairs = _export_of(cat, "page.parameter_id")
    sql = USAGE_JSON_SQL.format(where=where, doc=USAGE_DOC, export=export, long=LONG_NUMBER,
                                 top=TOP_ID if bound is None else "NULL")
    for _ in range(2):
        known = [z for z, ok in _ZONES.items() if ok]
        refused = [z for z, ok in _ZONES.items() if ok is False]
        with reused_plan_cursor() as cursor:  # planned once per connection: see statements.py
            cursor.execute(sql, [*args, deployment.pk, deployment.pk, known, refused,
                                 PRODUCTION_SUBTYPE, known, deployment.timezone, *pairs,
                                 page.limit, page.limit])
            ids, top, text, unwritable, long_numbers, unknown = cursor.fetchone()
        fresh = [z for z in unknown if z not in _ZONES]
        if not fresh:
            break
        for name in fresh:
            _zone_learn(name)
    if unknown:  # a zone only Python knows (or one a concurrent edit brought in)
        return usage_list(deployment=deployment, flt=flt, page=page)
    if unwritable:
        raise ValueError("Out of range float values are not JSON compliant")
    if bound is None:
        bound = Bound("i", top or 0)
    return Rendered(floats_python(text) if long_numbers else text), ids, bound


def _usage_rows_generic(*, deployment: Deployment, flt: SeriesFilter, page: PageRequest,
                        cat: Catalogue, bound: Bound) -> list[tuple]:
    rows = list(_readings(deployment=deployment, flt=flt, page=page,
                          parameter_ids=cat.usage_ids, bound=bound).values_list(
        "id", "device_id", "parameter_id", "ts", "period_end", "value", "estimated", "cost",
        "currency", "device__external_id", "device__subtype", "device__unit",
        "device__site__timezone", "changed_at"))
    exports = _redelivery(rows, cat.redelivery)
    return [(pk, pid, ts.isoformat(), _iso(end), _micros(ts), _micros(end), value, est, cost,
             cur, ext, sub, unit, zone, _stamp(changed), exports.get((device_id, pid, ts)))
            for (pk, device_id, pid, ts, end, value, est, cost, cur, ext, sub, unit, zone,
                 changed) in rows]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _micros(value: dt.datetime | None) -> int | None:
    return None if value is None else (value - _EPOCH) // dt.timedelta(microseconds=1)


def _redelivery(rows: list[tuple], pairs: dict[int, int]) -> dict[tuple, float]:
    """Export readings beside the page's rows: one range scan per device on the natural key.

    A range is far cheaper for the planner than a 500-value `ts IN (…)` list; the few extra
    rows it may bring are dropped here.
    """
    wanted = {(r[1], r[2], r[3]) for r in rows if r[2] in pairs}
    if not wanted:
        return {}
    back = {v: k for k, v in pairs.items()}
    spans: dict[int, list] = {}
    for device_id, _, ts in wanted:
        span = spans.setdefault(device_id, [ts, ts])
        span[0], span[1] = min(span[0], ts), max(span[1], ts)
    condition = Q()
    for device_id, (low, high) in spans.items():
        condition |= Q(device_id=device_id, ts__gte=low, ts__lte=high)
    found = (Reading.objects.filter(condition, parameter_id__in={pairs[w[1]] for w in wanted})
             .values_list("device_id", "parameter_id", "ts", "value"))
    return {(d, back[p], ts): v for d, p, ts, v in found if (d, back[p], ts) in wanted}


def readings_list(*, deployment: Deployment, flt: SeriesFilter,
                  page: PageRequest) -> tuple[list[dict], list[int], Bound]:
    """Point readings: cumulative meter indexes and instantaneous values."""
    cat = catalogue()
    bound = _series_bound(deployment, page, incremental=flt.after_seq is not None)
    rows = list(_readings(deployment=deployment, flt=flt, page=page,
                          parameter_ids=cat.reading_ids, bound=bound).values_list(
        "id", "parameter_id", "ts", "value", "estimated", "device__external_id",
        "device__unit", "changed_at"))
    keys, units = cat.keys, cat.units
    out = [{"meter": ext, "parameter": keys[pid], "timestamp": ts.isoformat(), "value": value,
            "unit": units[pid] or unit, "estimated": estimated, "updated_at": _stamp(changed)}
           for _, pid, ts, value, estimated, ext, unit, changed in rows]
    return out, [r[0] for r in rows], bound
