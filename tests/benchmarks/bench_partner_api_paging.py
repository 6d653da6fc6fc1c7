"""Paging a million usage records through every style, against a bare keyset loop.

A generic client (one `requests.Session`, pages of 1,000) reads every usage record of the
deployment by offset, page number, cursor, the body's `next` and the `Link` header, from
the hub under gunicorn. The baseline, in the same run over the same table, is a bare
`SELECT … WHERE id > %s ORDER BY id LIMIT 1000` loop in-process. Reported: total time per
style, its ratio to the baseline (goal >= 0.5), and the p50 of the first and the last ten
pages (a keyset stays flat; offsets make PostgreSQL walk past every skipped row).

Run: make bench BENCH=tests/benchmarks/bench_partner_api_paging.py
     (BENCH_PAGING_RECORDS=200000 for a shorter run; BENCH_PAGING_STYLES=cursor,next,link
     leaves out offset and page number, which take hours at a million records)
"""

from __future__ import annotations

import datetime as dt
import os
import re
import statistics
import time

import pytest
import requests
from django.db import connection

from apps.core.models import Datasource, Deployment, Device, Site
from apps.core.services import ReadingIn, readings_ingest
from apps.partner_api.selectors import catalogue
from apps.partner_api.services import apikey_create

from ._servers import gunicorn_server

RECORDS = int(os.environ.get("BENCH_PAGING_RECORDS", 1_000_000))
DEVICES = 100
PAGE = 1_000
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
QH = dt.timedelta(minutes=15)
LINK_NEXT = re.compile(r'<([^>]+)>; rel="next"')
# Offset and page number walk past every skipped row: hours at a million records.
STYLES = os.environ.get("BENCH_PAGING_STYLES", "cursor,next,link,page,offset").split(",")

pytestmark = pytest.mark.django_db(transaction=True)

BARE_SQL = """
SELECT r.id, r.parameter_id, r.ts, r.period_end, r.value, r.estimated, r.cost, r.currency,
       d.external_id
FROM core_reading r
JOIN core_device d ON d.id = r.device_id
WHERE d.deployment_id = %s AND r.parameter_id = ANY(%s) AND r.id > %s
ORDER BY r.id
LIMIT %s
"""


def _records(slots: int):
    for slot in range(slots):
        for d in range(DEVICES):
            yield ReadingIn(device=f"m{d:03d}", parameter="active_energy_delta",
                            ts=START + slot * QH, period_end=START + (slot + 1) * QH,
                            value=float((slot * 7 + d) % 100))


@pytest.fixture
def data():
    deployment = Deployment.objects.create(slug="paging", name="Paging", timezone="UTC")
    datasource = Datasource.objects.create(deployment=deployment, key="gw", name="GW")
    site = Site.objects.create(deployment=deployment, external_id="hq", name="HQ")
    Device.objects.bulk_create(
        Device(deployment=deployment, datasource=datasource, site=site,
               external_id=f"m{d:03d}", local_id=f"m{d:03d}", name=f"m{d:03d}",
               commodity="energy", unit="kWh") for d in range(DEVICES))
    started = time.perf_counter()
    result = readings_ingest(deployment=deployment, source="bench",
                             records=_records(RECORDS // DEVICES))
    print(f"\nloaded {result.inserted:,} usage records in {time.perf_counter() - started:.0f} s")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE core_reading")
    _, key = apikey_create(name="bench", deployments=[deployment], rate_per_minute=10**9)
    return deployment, key, result.inserted


def _bare(deployment) -> tuple[float, list[float], int]:
    ids = list(catalogue().usage_ids)
    after, times, count = 0, [], 0
    started = time.perf_counter()
    with connection.cursor() as cursor:
        while True:
            t = time.perf_counter()
            cursor.execute(BARE_SQL, [deployment.pk, ids, after, PAGE])
            rows = cursor.fetchall()
            times.append(time.perf_counter() - t)
            if not rows:
                break
            count += len(rows)
            after = rows[-1][0]
    return time.perf_counter() - started, times, count


def _api(base: str, key: str, style: str) -> tuple[float, list[float], int]:
    session = requests.Session()
    session.headers["X-API-Key"] = key
    url, params = f"{base}/api/v1/usage/", {"limit": PAGE}
    if style == "offset":
        params["offset"] = 0
    elif style == "page":
        params = {"page": 1, "page_size": PAGE}
    times, count = [], 0
    started = time.perf_counter()
    while True:
        t = time.perf_counter()
        response = session.get(url, params=params, timeout=120)
        body = response.json()
        times.append(time.perf_counter() - t)
        assert response.status_code == 200, body
        count += len(body["results"])
        if style in ("offset", "page"):
            if len(body["results"]) < PAGE:
                break
            params["offset" if style == "offset" else "page"] += PAGE if style == "offset" else 1
        elif style == "cursor":
            if body["next_cursor"] is None:
                break
            params = {"limit": PAGE, "cursor": body["next_cursor"]}
        else:
            found = LINK_NEXT.search(response.headers.get("Link", ""))
            url = body["next"] if style == "next" else (found.group(1) if found else None)
            if url is None:
                break
            params = None
    return time.perf_counter() - started, times, count


def _p50(times: list[float]) -> float:
    return statistics.median(times) * 1000


def test_paging_a_million_records_by_every_style(data):
    deployment, key, total = data
    results = {}
    print(f"\n{total:,} usage records, pages of {PAGE:,}, one client:")
    print(f"  {'style':12} {'total s':>8} {'ratio':>6} {'p50 first10':>12} {'p50 last10':>11}")
    with gunicorn_server(threads=2, workers=1) as base:
        for style in ("bare keyset", *STYLES):
            results[style] = _bare(deployment) if style == "bare keyset" else _api(
                base, key, style)
            seconds, times, count = results[style]
            print(f"  {style:12} {seconds:8.1f} {results['bare keyset'][0] / seconds:6.2f} "
                  f"{_p50(times[:10]):10.1f}ms {_p50(times[-11:-1]):9.1f}ms", flush=True)
            assert count == total, (style, count)
    bare_seconds = results["bare keyset"][0]
    for style in {"cursor", "next", "link"} & set(STYLES):
        times = results[style][1]
        # Keyset pages: the last ten no slower than twice the first ten.
        assert _p50(times[-11:-1]) <= 2 * _p50(times[:10]), style
    assert min(bare_seconds / results[s][0] for s in {"cursor", "next", "link"} & set(STYLES)
               ) >= 0.5
