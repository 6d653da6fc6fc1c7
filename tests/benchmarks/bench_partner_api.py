"""Partner API benchmark: GET usage pages and POST reading batches, against baselines.

- `GET /api/v1/usage/?limit=500` under 16 concurrent wrk connections on loopback, against
  gunicorn, beside a bare Django view returning the same rows with one raw SQL query
  (same gunicorn, same run). Target: at least 50% of the bare view's throughput.
- `POST /api/v1/readings/` with 10,000 readings per request, against `readings_ingest`
  called in-process on batches of the same size. Target: at least 30% of its throughput.

Run: DJANGO_SETTINGS_MODULE=config.settings_test TEST_DATABASE_NAME=test_hub_partner_api \\
     .venv/bin/pytest tests/benchmarks/bench_partner_api.py -s -o addopts="" \\
     -p no:cacheprovider
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import re
import shutil
import subprocess
import time

import pytest
from django.db import connection

from apps.core.services import ReadingIn, readings_ingest
from apps.partner_api.models import ApiKey
from apps.partner_api.services import apikey_create

from ._partner_api import bench_deployment
from ._servers import gunicorn_server

DEVICES = 20
SLOTS = 2_000
BATCH = 10_000
BATCHES = 4
DURATION = os.environ.get("BENCH_WRK_DURATION", "8s")
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
QH = dt.timedelta(minutes=15)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is not installed (apt install wrk)"),
]


def _series(prefix: str, parameter: str, first_slot: int, slots: int, devices: int):
    for d in range(devices):
        for i in range(first_slot, first_slot + slots):
            yield ReadingIn(device=f"{prefix}{d:03d}", parameter=parameter, ts=START + i * QH,
                            period_end=START + (i + 1) * QH, value=(i * 7 + d) % 100 / 4)


@pytest.fixture
def data():
    deployment = bench_deployment("bench", DEVICES)
    readings_ingest(deployment=deployment, source="bench",
                    records=_series("m", "active_energy_delta", 0, SLOTS, DEVICES))
    readings_ingest(deployment=deployment, source="bench",
                    records=_series("m", "exported_active_energy_delta", 0, SLOTS, 5))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # fresh bulk load: give the planner its statistics
    _, raw = apikey_create(name="bench", deployments=[deployment],
                           access=ApiKey.Access.READ_WRITE, rate_per_minute=10**9)
    return deployment, raw


@pytest.fixture
def server():
    with gunicorn_server(workers=4, threads=4, preload=True,
                         settings="tests.benchmarks.bench_partner_api_site") as base:
        yield base


def _wrk(url: str, headers: dict[str, str]) -> tuple[float, float]:
    args = ["wrk", "-t4", "-c16", f"-d{DURATION}", "--latency", url]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    assert "Non-2xx" not in out, out
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return rps, float(p99.group(1)) * scale


def _get_json(base: str, path: str, headers: dict[str, str]) -> dict:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, body[:300]
    return json.loads(body)


def test_get_usage_pages_reach_half_the_bare_views_throughput(data, server):
    deployment, raw = data
    headers = {"X-API-Key": raw}
    api_path = "/api/v1/usage/?limit=500"
    bare_path = f"/bench/bare-usage/?deployment_id={deployment.pk}&limit=500"
    api_rows = _get_json(server, api_path, headers)["results"]
    bare_rows = _get_json(server, bare_path, {})["results"]
    assert api_rows == bare_rows and len(api_rows) == 500
    assert any(r["redelivery"] is not None for r in api_rows)
    runs = {"bare": [], "api": []}
    for _ in range(2):  # interleaved: the machine is shared, its load drifts
        runs["bare"].append(_wrk(server + bare_path, {}))
        runs["api"].append(_wrk(server + api_path, headers))
    bare_rps = max(r for r, _ in runs["bare"])
    api_rps = max(r for r, _ in runs["api"])
    bare_p99 = min(p for _, p in runs["bare"])
    api_p99 = min(p for _, p in runs["api"])
    ratio = api_rps / bare_rps
    print(f"\nGET usage, 500 records/page, 16 connections, {DURATION} x2 interleaved:"
          f"\n  bare view  {bare_rps:8.1f} req/s  p99 {bare_p99:7.1f} ms"
          f"\n  /api/v1/   {api_rps:8.1f} req/s  p99 {api_p99:7.1f} ms"
          f"\n  ratio      {ratio:.2f} (target >= 0.50)")
    assert ratio >= 0.5


def _post(base: str, raw: str, body: bytes) -> dict:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=300)
    conn.request("POST", "/api/v1/readings/", body=body,
                 headers={"X-API-Key": raw, "Content-Type": "application/json"})
    response = conn.getresponse()
    answer = response.read()
    assert response.status in (200, 201), answer[:300]
    return json.loads(answer)


def test_post_batches_reach_30_percent_of_the_core_ingest(data, server):
    deployment, raw = data
    per_device = BATCH // DEVICES
    core_seconds = api_seconds = 0.0
    for _ in range(8):  # warm every worker: first requests load code and open connections
        _post(server, raw, json.dumps({"readings": [
            {"meter": "m000", "parameter": "active_power", "ts": START.isoformat(),
             "value": 1.0}]}).encode())
    slot = SLOTS
    # Interleaved, each batch new readings (inserts): the machine is shared, its load drifts.
    for _ in range(BATCHES):
        records = list(_series("m", "active_energy_delta", slot, per_device, DEVICES))
        started = time.perf_counter()
        result = readings_ingest(deployment=deployment, records=records, source="bench")
        core_seconds += time.perf_counter() - started
        assert result.inserted == BATCH
        slot += per_device
        body = json.dumps({"readings": [
            {"meter": r.device, "parameter": r.parameter, "ts": r.ts.isoformat(),
             "period_end": r.period_end.isoformat(), "value": r.value}
            for r in _series("m", "active_energy_delta", slot, per_device, DEVICES)]}).encode()
        started = time.perf_counter()
        answer = _post(server, raw, body)
        api_seconds += time.perf_counter() - started
        assert answer["inserted"] == BATCH, answer
        slot += per_device
    core_rate = BATCHES * BATCH / core_seconds
    api_rate = BATCHES * BATCH / api_seconds
    ratio = api_rate / core_rate
    print(f"\nPOST readings, {BATCHES} batches of {BATCH:,}:"
          f"\n  core readings_ingest  {core_rate:10,.0f} readings/s"
          f"  ({core_seconds / BATCHES * 1000:.0f} ms/batch)"
          f"\n  POST /api/v1/readings {api_rate:10,.0f} readings/s"
          f"  ({api_seconds / BATCHES * 1000:.0f} ms/batch, body {len(body) / 1e6:.1f} MB)"
          f"\n  ratio {ratio:.2f} (target >= 0.30)")
    assert ratio >= 0.3
