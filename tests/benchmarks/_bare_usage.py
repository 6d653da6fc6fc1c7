"""The partner API benchmarks' baseline: usage pages from one raw SQL keyset query.

The same rows as `GET /api/v1/usage/` (the redelivery and the change time beside each),
with no authentication, throttling, DRF or paging rules. `bench_partner_api.py` serves it
as a bare Django view beside the hub; `bench_partner_api_paging.py` loops over it in
process. Also here: the deployment with its meters that both load their readings into.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from apps.core.models import Datasource, Deployment, Device, Site

# The page first, then the redelivery beside each of its rows: one statement.
BARE_SQL = """
WITH page AS (
    SELECT r.id, r.device_id, r.parameter_id, r.ts, r.period_end, r.value, r.cost,
           r.currency, r.estimated, r.seq
    FROM core_reading r
    JOIN core_device d ON d.id = r.device_id
    WHERE d.deployment_id = %s AND r.id > %s
      AND r.parameter_id IN (SELECT id FROM core_parameter WHERE kind = 'interval'
                             AND operation = 'delta' AND key NOT LIKE 'exported_%%')
    ORDER BY r.id
    LIMIT %s
)
SELECT d.external_id, p.key, page.ts, page.period_end, page.value, p.unit, x.value,
       d.subtype, page.cost, page.currency, page.estimated, s.timezone,
       (SELECT c.at FROM core_readingcommit c
        WHERE c.deployment_id = d.deployment_id AND c.seq >= page.seq
        ORDER BY c.seq LIMIT 1), page.id
FROM page
JOIN core_device d ON d.id = page.device_id
LEFT JOIN core_site s ON s.id = d.site_id
JOIN core_parameter p ON p.id = page.parameter_id
LEFT JOIN core_parameter xp ON xp.key = 'exported_' || p.key
LEFT JOIN core_reading x
       ON x.device_id = page.device_id AND x.parameter_id = xp.id AND x.ts = page.ts
ORDER BY page.id
"""


def bare_rows(cursor, *, deployment_id: int, after: int, limit: int) -> list[tuple]:
    """One page of rows after the id `after`; a row's id is its last column."""
    cursor.execute(BARE_SQL, [deployment_id, after, limit])
    return cursor.fetchall()


def _days(ts, end, zone):
    start, stop = ts.astimezone(zone), end.astimezone(zone)
    if start.time() != dt.time() or stop.time() != dt.time():
        return None, None
    return start.date().isoformat(), stop.date().isoformat()


def bare_records(rows: list[tuple]) -> list[dict]:
    """The rows as the API's usage records."""
    results = []
    for m, k, ts, end, v, u, x, sub, c, cur, est, zone, at, _ in rows:
        start_date, end_date = _days(ts, end, zoneinfo.ZoneInfo(zone or "UTC"))
        results.append({
            "meter": m, "parameter": k, "start_date": start_date, "end_date": end_date,
            "period_start": ts.isoformat(), "period_end": end.isoformat(),
            "value": v, "unit": u, "redelivery": x,
            "production": v if sub == "On-site Renewable Electricity" else None,
            "cost": c, "currency": cur or None, "estimated": est,
            "updated_at": at.astimezone(dt.UTC).isoformat(timespec="microseconds")})
    return results


def bench_deployment(slug: str, devices: int) -> Deployment:
    """A UTC deployment with one site and `devices` energy meters m000, m001, …"""
    deployment = Deployment.objects.create(slug=slug, name=slug.title(), timezone="UTC")
    datasource = Datasource.objects.create(deployment=deployment, key="gw", name="GW")
    site = Site.objects.create(deployment=deployment, external_id="hq", name="HQ")
    Device.objects.bulk_create(
        Device(deployment=deployment, datasource=datasource, site=site,
               external_id=f"m{d:03d}", local_id=f"m{d:03d}", name=f"m{d:03d}",
               commodity="energy", unit="kWh") for d in range(devices))
    return deployment
