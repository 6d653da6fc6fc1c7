"""URLs for the partner API benchmark: the hub plus one bare view, the baseline.

The bare view returns the same usage rows as `GET /api/v1/usage/`, from one raw SQL query,
straight into a JsonResponse: no authentication, throttling or DRF.
"""

from django.db import connection
from django.http import JsonResponse
from django.urls import path

from config.urls import urlpatterns as hub_urlpatterns

# The page first, then the redelivery beside each of its 500 rows: one statement.
BARE_SQL = """
WITH page AS (
    SELECT r.device_id, r.parameter_id, r.ts, r.period_end, r.value, r.cost, r.currency,
           r.estimated, r.seq
    FROM core_reading r
    JOIN core_device d ON d.id = r.device_id
    WHERE d.deployment_id = %s AND r.seq > %s
      AND r.parameter_id IN (SELECT id FROM core_parameter WHERE kind = 'interval'
                             AND operation = 'delta' AND key NOT LIKE 'exported_%%')
    ORDER BY r.seq
    LIMIT %s
)
SELECT d.external_id, p.key, page.ts, page.period_end, page.value, p.unit, x.value,
       d.subtype, page.cost, page.currency, page.estimated, page.seq
FROM page
JOIN core_device d ON d.id = page.device_id
JOIN core_parameter p ON p.id = page.parameter_id
LEFT JOIN core_parameter xp ON xp.key = 'exported_' || p.key
LEFT JOIN core_reading x
       ON x.device_id = page.device_id AND x.parameter_id = xp.id AND x.ts = page.ts
ORDER BY page.seq
"""


def bare_usage(request):
    with connection.cursor() as cursor:
        cursor.execute(BARE_SQL, [int(request.GET["deployment_id"]),
                                  int(request.GET.get("after", 0)),
                                  int(request.GET.get("limit", 500))])
        rows = cursor.fetchall()
    return JsonResponse({"results": [
        {"meter": m, "parameter": k, "start_date": ts.isoformat(), "end_date": end.isoformat(),
         "value": v, "unit": u, "redelivery": x,
         "production": v if sub == "On-site Renewable Electricity" else None,
         "cost": c, "currency": cur or None, "estimated": est}
        for m, k, ts, end, v, u, x, sub, c, cur, est, _ in rows]})


urlpatterns = [path("bench/bare-usage/", bare_usage), *hub_urlpatterns]
