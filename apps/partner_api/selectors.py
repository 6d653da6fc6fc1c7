"""Reads for the partner API. Every query starts from one deployment: nothing crosses it.

Records are ordered by a key that only grows as data is added (a site's or device's id, a
reading's `seq`), so an offset or a cursor taken now still points at the same place after
more records arrive.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache

from django.db import connection
from django.db.models import Q, QuerySet

from apps.core.models import Deployment, Device, Parameter, Reading, Site
from apps.partner_api.errors import ApiError
from apps.partner_api.models import ChangeMark
from apps.partner_api.params import PageRequest

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


# --- assets and meters --------------------------------------------------------------------

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
        "updated_at": _iso(site.updated_at),
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
        "updated_at": _iso(device.updated_at),
    }


def _keyset(qs: QuerySet, page: PageRequest, field: str) -> QuerySet:
    qs = qs.order_by(field)
    if page.after is not None:
        return qs.filter(**{f"{field}__gt": page.after})[: page.limit + 1]
    return qs[page.offset: page.offset + page.limit + 1]


def assets_list(*, deployment: Deployment, page: PageRequest,
                updated_since: dt.datetime | None = None,
                active: bool | None = None) -> tuple[list[dict], list[int]]:
    qs = Site.objects.filter(deployment=deployment)
    if updated_since:
        qs = qs.filter(updated_at__gte=updated_since)
    if active is not None:
        qs = qs.filter(is_active=active)
    sites = list(_keyset(qs, page, "id"))
    return [asset_data(s) for s in sites], [s.pk for s in sites]


def asset_get(*, deployment: Deployment, external_id: str) -> Site:
    site = Site.objects.filter(deployment=deployment, external_id=external_id).first()
    if site is None:
        raise ApiError(f"no asset '{external_id}' in this deployment", code="not_found",
                       status_code=404)
    return site


def meters_list(*, deployment: Deployment, page: PageRequest,
                updated_since: dt.datetime | None = None, active: bool | None = None,
                asset: str | None = None) -> tuple[list[dict], list[int]]:
    qs = Device.objects.filter(deployment=deployment).select_related("site")
    if updated_since:
        qs = qs.filter(updated_at__gte=updated_since)
    if active is not None:
        qs = qs.filter(is_active=active)
    if asset:
        qs = qs.filter(site__external_id=asset)
    devices = list(_keyset(qs, page, "id"))
    return [meter_data(d) for d in devices], [d.pk for d in devices]


def meter_get(*, deployment: Deployment, external_id: str) -> Device:
    device = (Device.objects.filter(deployment=deployment, external_id=external_id)
              .select_related("site").first())
    if device is None:
        raise ApiError(f"no meter '{external_id}' in this deployment", code="not_found",
                       status_code=404)
    return device


# --- usage and readings ---------------------------------------------------------------------

def seq_floor(*, deployment: Deployment, updated_since: dt.datetime) -> int:
    """Readings changed at or after `updated_since` all have a seq above this."""
    mark = (ChangeMark.objects.filter(deployment=deployment, at__lte=updated_since)
            .order_by("-at").values_list("seq", flat=True).first())
    return mark or 0


@dataclass(frozen=True, slots=True)
class SeriesFilter:
    meters: tuple[str, ...] = ()
    parameter: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    after_seq: int = 0  # from updated_since; a cursor may move it further


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


def _readings(*, deployment: Deployment, flt: SeriesFilter, page: PageRequest,
              parameter_ids: tuple[int, ...]) -> QuerySet:
    parameter_ids = _parameter_ids(flt, parameter_ids, catalogue())
    _check_meters(deployment, flt.meters)
    qs = Reading.objects.filter(device__deployment=deployment, parameter_id__in=parameter_ids)
    if flt.meters:
        qs = qs.filter(device__external_id__in=flt.meters)
    if flt.start:
        qs = qs.filter(ts__gte=flt.start)
    if flt.end:
        qs = qs.filter(ts__lt=flt.end)
    after = max(flt.after_seq, page.after or 0)
    if after:
        qs = qs.filter(seq__gt=after)
    qs = qs.order_by("seq")
    if page.after is None:
        return qs[page.offset: page.offset + page.limit + 1]
    return qs[: page.limit + 1]


def usage_list(*, deployment: Deployment, flt: SeriesFilter,
               page: PageRequest) -> tuple[list[dict], list[int]]:
    """Consumption records: interval deltas with their redelivery beside them."""
    cat = catalogue()
    if connection.vendor == "postgresql":
        rows = _usage_rows_postgresql(deployment=deployment, flt=flt, page=page, cat=cat)
    else:
        rows = _usage_rows_generic(deployment=deployment, flt=flt, page=page, cat=cat)
    keys, units = cat.keys, cat.units
    out = []
    for (_seq, pid, ts, end, value, estimated, cost, currency, ext, subtype, unit,
         redelivery) in rows:
        out.append({
            "meter": ext,
            "parameter": keys[pid],
            "start_date": ts.isoformat(),
            "end_date": end.isoformat() if end else None,
            "value": value,
            "unit": units[pid] or unit,
            "redelivery": redelivery,
            "production": value if subtype == PRODUCTION_SUBTYPE else None,
            "cost": cost,
            "currency": currency or None,
            "estimated": estimated,
        })
    return out, [r[0] for r in rows]


_USAGE_SQL = """
WITH page AS (
    SELECT r.seq, r.device_id, r.parameter_id, r.ts, r.period_end, r.value, r.estimated,
           r.cost, r.currency
    FROM core_reading r
    JOIN core_device d ON d.id = r.device_id
    WHERE d.deployment_id = %s AND r.parameter_id = ANY(%s) AND r.seq > %s {where}
    ORDER BY r.seq
    LIMIT %s OFFSET %s
)
SELECT page.seq, page.parameter_id, page.ts, page.period_end, page.value, page.estimated,
       page.cost, page.currency, d.external_id, d.subtype, d.unit, x.value
FROM page
JOIN core_device d ON d.id = page.device_id
LEFT JOIN core_reading x
       ON x.device_id = page.device_id AND x.ts = page.ts AND x.parameter_id = {export}
ORDER BY page.seq
"""


def _usage_rows_postgresql(*, deployment: Deployment, flt: SeriesFilter, page: PageRequest,
                           cat: Catalogue) -> list[tuple]:
    """The page first, then each row's export reading by natural key: one statement."""
    ids = _parameter_ids(flt, cat.usage_ids, cat)
    _check_meters(deployment, flt.meters)
    where, params = [], []
    if flt.meters:
        where.append("AND d.external_id = ANY(%s)")
        params.append(list(flt.meters))
    if flt.start:
        where.append("AND r.ts >= %s")
        params.append(flt.start)
    if flt.end:
        where.append("AND r.ts < %s")
        params.append(flt.end)
    after = max(flt.after_seq, page.after or 0)
    offset = 0 if page.after is not None else page.offset
    cases = " ".join("WHEN %s THEN %s" for _ in cat.redelivery)
    export = f"(CASE page.parameter_id {cases} END)" if cases else "NULL"
    sql = _USAGE_SQL.format(where=" ".join(where), export=export)
    args = [deployment.pk, list(ids), after, *params, page.limit + 1, offset,
            *[v for pair in cat.redelivery.items() for v in pair]]
    with connection.cursor() as cursor:
        cursor.execute(sql, args)
        return cursor.fetchall()


def _usage_rows_generic(*, deployment: Deployment, flt: SeriesFilter, page: PageRequest,
                        cat: Catalogue) -> list[tuple]:
    rows = list(_readings(deployment=deployment, flt=flt, page=page,
                          parameter_ids=cat.usage_ids).values_list(
        "seq", "device_id", "parameter_id", "ts", "period_end", "value", "estimated", "cost",
        "currency", "device__external_id", "device__subtype", "device__unit"))
    exports = _redelivery(rows, cat.redelivery)
    return [(seq, pid, ts, end, value, est, cost, cur, ext, sub, unit,
             exports.get((device_id, pid, ts)))
            for seq, device_id, pid, ts, end, value, est, cost, cur, ext, sub, unit in rows]


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
                  page: PageRequest) -> tuple[list[dict], list[int]]:
    """Point readings: cumulative meter indexes and instantaneous values."""
    cat = catalogue()
    rows = list(_readings(deployment=deployment, flt=flt, page=page,
                          parameter_ids=cat.reading_ids).values_list(
        "seq", "parameter_id", "ts", "value", "estimated", "device__external_id",
        "device__unit"))
    keys, units = cat.keys, cat.units
    out = [{"meter": ext, "parameter": keys[pid], "timestamp": ts.isoformat(), "value": value,
            "unit": units[pid] or unit, "estimated": estimated}
           for _, pid, ts, value, estimated, ext, unit in rows]
    return out, [r[0] for r in rows]
