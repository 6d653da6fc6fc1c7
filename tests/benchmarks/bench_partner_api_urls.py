"""URLs for the partner API benchmark: the hub plus one bare view, the baseline.

The bare view returns the same usage rows as `GET /api/v1/usage/`, from one raw SQL query,
straight into a JsonResponse: no authentication, throttling or DRF.
"""

from django.db import connection
from django.http import JsonResponse
from django.urls import path

from config.urls import urlpatterns as hub_urlpatterns

BARE_SQL = """
SELECT d.external_id, p.key, r.ts, r.period_end, r.value, p.unit, x.value, d.subtype,
       r.cost, r.currency, r.estimated, r.seq
FROM core_reading r
JOIN core_device d ON d.id = r.device_id
JOIN core_parameter p ON p.id = r.parameter_id
LEFT JOIN core_parameter xp ON xp.key = 'exported_' || p.key
LEFT JOIN core_reading x
       ON x.device_id = r.device_id AND x.parameter_id = xp.id AND x.ts = r.ts
WHERE d.deployment_id = %s AND p.kind = 'interval' AND p.operation = 'delta'
  AND p.key NOT LIKE 'exported_%%' AND r.seq > %s
ORDER BY r.seq
LIMIT %s
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
