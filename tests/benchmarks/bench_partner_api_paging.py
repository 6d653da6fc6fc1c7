"""Paging a million usage records through every style, against a bare keyset loop.

A generic client (one `requests.Session`, pages of 1,000) reads every usage record of the
deployment by offset, page number, cursor, the body's `next` and the `Link` header, from
the hub under gunicorn as the Procfile runs it (config/gunicorn.conf.py). The baseline,
in the same run over the same table, is a bare
`SELECT … WHERE id > %s ORDER BY id LIMIT 1000` loop in-process.
Each style runs between two runs of the baseline; its ratio is against their mean (goal
>= 0.5 for every style; the shared machine drifts over the minutes a run takes). Reported:
total time per style and the p50 of the first and the last ten pages (goal: flat; offset
and page number too, read from the anchor the page before left, not by OFFSET).

Run: make bench BENCH=tests/benchmarks/bench_partner_api_paging.py
     (BENCH_PAGING_RECORDS=200000 for a shorter run; BENCH_PAGING_STYLES=cursor,page for
     some styles only)
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

from apps.core.services import ReadingIn, readings_ingest
from apps.partner_api.selectors import catalogue
from apps.partner_api.services import apikey_create

from ._partner_api import bench_deployment
from ._servers import gunicorn_server

RECORDS = int(os.environ.get("BENCH_PAGING_RECORDS", 1_000_000))
DEVICES = 100
PAGE = 1_000
BATCH_SLOTS = 100  # 10,000 readings of 100 meters: PARTNER_API_MAX_BATCH
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
QH = dt.timedelta(minutes=15)
LINK_NEXT = re.compile(r'<([^>]+)>; rel="next"')
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


def _records(first: int, slots: int):
    for slot in range(first, first + slots):
        for d in range(DEVICES):
            yield ReadingIn(device=f"m{d:03d}", parameter="active_energy_delta",
                            ts=START + slot * QH, period_end=START + (slot + 1) * QH,
                            value=float((slot * 7 + d) % 100))


@pytest.fixture
def data():
    deployment = bench_deployment("paging", DEVICES)
    started, inserted = time.perf_counter(), 0
    # In batches of the most one POST takes, as partners push them: one commit each, so the
    # change-time lookups meet a commit table of a realistic size, not a single row.
    for first in range(0, RECORDS // DEVICES, BATCH_SLOTS):
        inserted += readings_ingest(
            deployment=deployment, source="bench",
            records=_records(first, min(BATCH_SLOTS, RECORDS // DEVICES - first))).inserted
    print(f"\nloaded {inserted:,} usage records in {time.perf_counter() - started:.0f} s")
    with connection.cursor() as cursor:
        # A fresh bulk load: the planner's statistics, as autovacuum would give them. Without
        # those of core_device it guesses one meter in the deployment, and late in the pull
        # sorts all the remaining readings for a page instead of walking the primary key.
        cursor.execute("VACUUM ANALYZE core_reading")
        cursor.execute("ANALYZE core_device, core_site, core_readingcommit")
    _, key = apikey_create(name="bench", deployments=[deployment], rate_per_minute=10**9)
    return deployment, key, inserted


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
    results, bares = {}, [_bare(deployment)]
    print(f"\n{total:,} usage records, pages of {PAGE:,}, one client; each style between two "
          "runs of the bare loop, its ratio against their mean (the machine drifts):")
    print(f"  {'style':12} {'total s':>8} {'bare s':>7} {'ratio':>6} {'p50 first10':>12} "
          f"{'p50 last10':>11}")
    with gunicorn_server(production=True) as base:
        for style in STYLES:
            results[style] = _api(base, key, style)
            bares.append(_bare(deployment))
            seconds, times, count = results[style]
            bare = (bares[-2][0] + bares[-1][0]) / 2
            results[style] = (seconds, times, count, bare / seconds)
            print(f"  {style:12} {seconds:8.1f} {bare:7.1f} {bare / seconds:6.2f} "
                  f"{_p50(_first(times)):10.1f}ms {_p50(_last(times)):9.1f}ms", flush=True)
            assert count == total, (style, count)
    assert all(count == total for _, _, count in bares)
    print(f"  bare keyset runs: {', '.join(f'{b[0]:.1f}' for b in bares)} s; p50 a page "
          f"{_p50(bares[0][1]):.1f} ms")
    for style in STYLES:
        times = results[style][1]
        # Flat: the last ten pages no slower than twice the first ten.
        assert _p50(_last(times)) <= 2 * _p50(_first(times)), style
    assert min(results[s][3] for s in STYLES) >= 0.5


def _first(times: list[float]) -> list[float]:
    return times[:10]


def _last(times: list[float]) -> list[float]:
    """The last ten full pages: the short or empty page that ends a pull is left out."""
    return times[-11:-1]
