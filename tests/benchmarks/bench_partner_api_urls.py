"""URLs for the partner API benchmark: the hub plus one bare view, the baseline.

The bare view returns the same usage rows as `GET /api/v1/usage/`, from one raw SQL query,
straight into a JsonResponse: no authentication, throttling or DRF.
"""

import datetime as dt
import zoneinfo

from django.db import connection
from django.http import JsonResponse
from django.urls import path

from config.urls import urlpatterns as hub_urlpatterns

# The page first, then the redelivery beside each of its 500 rows: one statement.
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


def _days(ts, end, zone):
    start, stop = ts.astimezone(zone), end.astimezone(zone)
    if start.time() != dt.time() or stop.time() != dt.time():
        return None, None
    return start.date().isoformat(), stop.date().isoformat()


def bare_usage(request):
    with connection.cursor() as cursor:
        cursor.execute(BARE_SQL, [int(request.GET["deployment_id"]),
                                  int(request.GET.get("after", 0)),
                                  int(request.GET.get("limit", 500))])
        rows = cursor.fetchall()
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
    return JsonResponse({"results": results})


urlpatterns = [path("bench/bare-usage/", bare_usage), *hub_urlpatterns]
