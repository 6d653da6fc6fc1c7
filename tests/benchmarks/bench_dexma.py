"""DEXMA IS3 backfill throughput: the hub's backfill vs a bare loop of pre-built bodies.

50 devices x one year of quarter-hourly interval readings (1,752,000 values) backfilled from
PostgreSQL to the sandbox IS3 served by gunicorn (gthread) in a subprocess. In the same run
a bare keep-alive loop POSTs the same number of pre-serialised 5,000-value bodies to the
same endpoint (the sandbox's values are truncated in between, so both insert into an empty
store). Targets: backfill throughput at least 50% of the bare loop, exactly ceil(n / 5,000)
requests, peak memory (RSS of the backfilling process) under 300 MB.

    DJANGO_SETTINGS_MODULE=config.settings_test TEST_DATABASE_NAME=test_hub_dexma4 \
    .venv/bin/pytest tests/benchmarks/bench_dexma.py -s -o addopts="" -p no:cacheprovider

`BENCH_DEXMA_DEVICES` and `BENCH_DEXMA_DAYS` shrink it for a quick look.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import resource
import threading
import time
from zoneinfo import ZoneInfo

import pytest
import requests
from django.db import connection

from apps.core.models import Datasource, Deployment, Device, Parameter, Site
from apps.core.services import ReadingIn, link_get_or_create, readings_ingest
from apps.dexma import services
from apps.dexma.client import Is3Client
from apps.dexma.models import Backfill, DexmaDatasource, Installation, SelectedDevice
from apps.sandbox.dexma.models import Is3Stats, PlatformDatasource, PlatformDeployment
from tests.benchmarks._servers import gunicorn_server

DEVICES = int(os.environ.get("BENCH_DEXMA_DEVICES", "50"))
DAYS = int(os.environ.get("BENCH_DEXMA_DAYS", "365"))
TARGET = 0.50
MEMORY_MB = 300
PATH = "/sandbox/dexma/is3/readings"
ZONE = ZoneInfo("Europe/Madrid")
# UTC arithmetic: adding to a zoned datetime would step through the DST gaps wall-clock.
START = dt.datetime(2025, 1, 1, tzinfo=ZONE).astimezone(dt.UTC)
QH = dt.timedelta(minutes=15)


@pytest.fixture
def is3_url():
    with gunicorn_server(threads=4) as base:
        yield base + PATH


def _setup() -> tuple[DexmaDatasource, PlatformDatasource, PlatformDatasource, int]:
    deployment = Deployment.objects.create(slug="bench-dexma", name="Bench", timezone="UTC")
    source = Datasource.objects.create(deployment=deployment, key="gw", name="gw")
    site = Site.objects.create(deployment=deployment, external_id="hq", name="HQ",
                               timezone="Europe/Madrid")
    devices = [Device.objects.create(
        deployment=deployment, datasource=source, site=site, external_id=f"bench-{n:02d}",
        local_id=f"bench-{n:02d}", name=f"bench {n}", commodity="energy", unit="kWh")
        for n in range(DEVICES)]
    slots = DAYS * 96
    records = (ReadingIn(device=d.external_id, parameter="active_energy_delta",
                         ts=START + QH * i, period_end=START + QH * (i + 1),
                         value=round(0.25 + (i % 40) / 100, 2))
               for i in range(slots) for d in devices)
    started = time.perf_counter()
    readings_ingest(deployment=deployment, records=records, source="bench")
    print(f"\ningested {slots * DEVICES:,} readings in {time.perf_counter() - started:.1f}s")

    account = PlatformDeployment.objects.create(dep_id="bench", name="Bench")
    remote = PlatformDatasource.objects.create(deployment=account, app_id="bench", key="hub-b",
                                               name="hub", timezone="Europe/Madrid",
                                               source_token="tok-hub")
    bare = PlatformDatasource.objects.create(deployment=account, app_id="bench", key="bare-b",
                                             name="bare", timezone="Europe/Madrid",
                                             source_token="tok-bare")
    installation = Installation(dep_id="bench", deployment=deployment)
    installation.set_token("bench-token-00000000")
    installation.save()
    link = link_get_or_create(platform="dexma", name="bench/1", deployment=deployment)
    datasource = DexmaDatasource.objects.create(
        installation=installation, deployment=deployment, name="Bench", platform_id=remote.pk,
        key=remote.key, source_token=remote.source_token, timezone="Europe/Madrid", link=link)
    parameter = Parameter.objects.get(key="active_energy_delta")
    for device in devices:
        SelectedDevice.objects.create(datasource=datasource, device=device,
                                      resolutions={str(parameter.pk): "QH"}).parameters.set(
            [parameter])
    return datasource, remote, bare, slots * DEVICES


def _bodies(total: int) -> list[bytes]:
    """The same values as the hub sends, serialised once, 5,000 per body."""
    bodies, messages, count = [], [], 0
    for i in range(DAYS * 96):
        stamp = (START + QH * i).astimezone(ZONE).isoformat()
        for n in range(DEVICES):
            messages.append({"did": f"bench-{n:02d}", "sqn": 1, "ts": stamp,
                             "values": [{"p": 40201, "v": round(0.25 + (i % 40) / 100, 2)}]})
            count += 1
            if count % 5000 == 0:
                bodies.append(json.dumps(messages, separators=(",", ":")).encode())
                messages = []
    if messages:
        bodies.append(json.dumps(messages, separators=(",", ":")).encode())
    assert count == total
    return bodies


def _bare_loop(url: str, bodies: list[bytes]) -> float:
    with requests.Session() as session:
        session.headers.update({"Content-Type": "application/json",
                                "x-dexcell-source-token": "tok-bare"})
        started = time.perf_counter()
        for body in bodies:
            response = session.post(url, params={"source_key": "bare-b"}, data=body, timeout=60)
            assert response.status_code == 200 and response.text == "OK", response.text
        return time.perf_counter() - started


def _truncate_store() -> None:
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE sandbox_dexma_is3value")


class PeakRss:
    """Peak resident memory of this process while the block runs (sampled every 20 ms)."""

    def __enter__(self) -> PeakRss:
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        page = resource.getpagesize()
        while not self._stop.is_set():
            with open("/proc/self/statm") as f:
                self.peak = max(self.peak, int(f.read().split()[1]) * page)
            self._stop.wait(0.02)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.django_db(transaction=True)
def test_backfill_reaches_half_the_bare_loop_in_exact_requests_under_300_mb(is3_url, settings):
    settings.DEXMA_INSERT_URL = is3_url
    datasource, remote, bare, total = _setup()
    expected_requests = math.ceil(total / 5000)

    bodies = _bodies(total)
    bare_seconds = _bare_loop(is3_url, bodies)
    del bodies
    assert Is3Stats.objects.get(datasource=bare).stored == total
    _truncate_store()

    backfill = services.backfill_start(datasource=datasource, date_from=START,
                                       date_to=START + QH * DAYS * 96)
    with PeakRss() as memory, Is3Client() as client:
        started = time.perf_counter()
        backfill = services.backfill_run(backfill=backfill, client=client)
        hub_seconds = time.perf_counter() - started

    stats = Is3Stats.objects.get(datasource=remote)
    ratio = bare_seconds / hub_seconds
    print(f"bare loop: {total:,} values in {bare_seconds:.1f}s "
          f"({total / bare_seconds:,.0f}/s, {expected_requests} requests)")
    print(f"backfill:  {backfill.values_sent:,} values in {hub_seconds:.1f}s "
          f"({backfill.values_sent / hub_seconds:,.0f}/s, {stats.requests} requests, "
          f"planning included)")
    print(f"backfill throughput = {ratio:.0%} of the bare loop (target >= {TARGET:.0%}); "
          f"peak RSS {memory.peak / 2**20:.0f} MB (target < {MEMORY_MB} MB); "
          f"overwrites {stats.overwrites}, out of order {stats.out_of_order}, "
          f"discarded {stats.discarded}")
    assert backfill.state == Backfill.State.DONE
    assert stats.requests == expected_requests and stats.stored == total
    assert (stats.overwrites, stats.out_of_order, stats.discarded) == (0, 0, 0)
    assert ratio >= TARGET
    assert memory.peak < MEMORY_MB * 2**20
