"""URLs for the partner API benchmark: the hub plus one bare view, the baseline.

The bare view returns the same usage rows as `GET /api/v1/usage/`, from one raw SQL query
(see _bare_usage.py), straight into a JsonResponse: no authentication, throttling or DRF.
"""

from django.db import connection
from django.http import JsonResponse
from django.urls import path

from config.urls import urlpatterns as hub_urlpatterns

from ._bare_usage import bare_records, bare_rows


def bare_usage(request):
    with connection.cursor() as cursor:
        rows = bare_rows(cursor, deployment_id=int(request.GET["deployment_id"]),
                         after=int(request.GET.get("after", 0)),
                         limit=int(request.GET.get("limit", 500)))
    return JsonResponse({"results": bare_records(rows)})


urlpatterns = [path("bench/bare-usage/", bare_usage), *hub_urlpatterns]
