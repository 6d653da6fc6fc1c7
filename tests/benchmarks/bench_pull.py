"""Pull-sync throughput and memory: the hub's sync vs a bare requests loop.

500,000 usage records (consumption format) over 1,000 pages of 500, served over HTTP by
the upstream sandbox under gunicorn (gthread, 2 workers x 4 threads) in a subprocess. The
bare loop fetches and parses exactly the same pages with one keep-alive session; the sync
fetches them too, then maps, validates and stores every record in PostgreSQL through the
core ingest. The bare loop runs before and after the sync; their mean is the baseline.
Targets: the sync reaches at least 50% of the bare loop's throughput; peak
RSS stays under 300 MB and does not grow with the number of pages.

    DJANGO_SETTINGS_MODULE=config.settings_test TEST_DATABASE_NAME=test_hub_pull \
    .venv/bin/pytest tests/benchmarks/bench_pull.py -s -o addopts="" -p no:cacheprovider
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time

import pytest
import requests

from apps.core.models import Deployment, Reading
from apps.pull.models import Connection, Endpoint
from apps.pull.services import connection_setup, connection_sync
from apps.sandbox.upstream.models import Profile
from tests.benchmarks._servers import gunicorn_server

METERS = int(os.environ.get("BENCH_PULL_METERS", "100"))
SLOTS = int(os.environ.get("BENCH_PULL_SLOTS", "5000"))
PAGE = int(os.environ.get("BENCH_PULL_PAGE", "500"))
TARGET = 0.50
MEMORY_CAP_MB = 300
GROWTH_CAP_MB = 40
STEP = dt.timedelta(minutes=15)
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
START = NOW - SLOTS * STEP


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PeakSampler(threading.Thread):
    """Samples this process's RSS every 20 ms: the peak of one phase, not of the process."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, _rss_mb())
            self._halt.wait(0.02)

    def stop(self) -> float:
        self._halt.set()
        self.join()
        return max(self.peak, _rss_mb())


@pytest.fixture
def sandbox_url():
    with gunicorn_server(threads=4) as base:
        yield base


def _bare_loop(url: str) -> tuple[float, int, int]:
    """Fetch and parse every page with a plain keep-alive session: the baseline."""
    session = requests.Session()
    session.headers["X-Api-Key"] = "sandbox-key"
    params = {"from": START.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "to": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"), "limit": str(PAGE)}
    records = pages = offset = 0
    started = time.perf_counter()
    while True:
        body = session.get(url, params={**params, "offset": str(offset)}, timeout=60).json()
        items = body["data"]
        pages += 1
        records += len(items)
        offset += len(items)
        if len(items) < PAGE:
            break
    return time.perf_counter() - started, records, pages


@pytest.mark.django_db(transaction=True)
def test_pull_sync_throughput_and_memory_against_a_bare_requests_loop(sandbox_url):
    deployment = Deployment.objects.create(slug="bench-pull", name="Bench pull")
    Profile.objects.create(slug="bench", auth_kind="api_key_header", pagination="offset",
                           page_size=PAGE, asset_count=10, meter_count=METERS,
                           interval_minutes=15, data_start=START)
    connection = Connection.objects.create(
        deployment=deployment, name="Bench provider", key="bench",
        staging_url=f"{sandbox_url}/sandbox/upstream/bench/", auth_kind="api_key_header",
        api_key="sandbox-key", date_format="%Y-%m-%dT%H:%M:%SZ",
        initial_days=SLOTS * 15 // 1440 + 1, max_range_days=400,
    )
    fields = {"consumption": {"meter_id": "meter", "start": "period.from", "end": "period.to",
                              "value": "quantity", "cost": "cost.amount",
                              "currency": "cost.currency", "estimated": "flags.estimated"},
              "meters": {"external_id": "id", "asset_id": "asset.id", "name": "label",
                         "type": "kind", "unit": "unit"}}
    for role, mapping in fields.items():
        Endpoint.objects.create(connection=connection, role=role, path=role,
                                pagination="offset", page_size=PAGE, fields=mapping)
    connection_setup(connection=connection)

    usage_url = f"{sandbox_url}/sandbox/upstream/bench/consumption"
    bare_before, bare_records, bare_pages = _bare_loop(usage_url)
    assert bare_records == METERS * SLOTS and bare_pages >= METERS * SLOTS // PAGE

    pages_done: list[int] = []
    rss_at: dict[int, float] = {}

    def on_page() -> None:
        pages_done.append(1)
        if len(pages_done) % 100 == 0:
            rss_at[len(pages_done)] = _rss_mb()

    sampler = PeakSampler()
    before = _rss_mb()
    sampler.start()
    started = time.perf_counter()
    run = connection_sync(connection=connection, now=NOW, on_page=on_page,
                          sleep=lambda s: None).run
    sync_seconds = time.perf_counter() - started
    peak = sampler.stop()
    # The machine is shared: the baseline is measured before and after, and averaged.
    bare_after = _bare_loop(usage_url)[0]
    bare_seconds = (bare_before + bare_after) / 2

    usage = run.counts["usage"]
    ratio = bare_seconds / sync_seconds
    marks = sorted(rss_at)
    growth = rss_at[marks[-1]] - rss_at[marks[1]]
    print(
        f"\npull benchmark: {bare_records:,} records over {bare_pages} pages of {PAGE}\n"
        f"  bare requests loop  {bare_seconds:7.2f} s  {bare_records / bare_seconds:10,.0f} rec/s"
        f"  (before {bare_before:.2f} s, after {bare_after:.2f} s)\n"
        f"  hub pull sync       {sync_seconds:7.2f} s  {usage['fetched'] / sync_seconds:10,.0f} "
        f"rec/s  (stored {usage['stored']:,}, pages {run.counts['pages']})\n"
        f"  throughput ratio    {ratio:.2f} of the bare loop (target >= {TARGET:.2f})\n"
        f"  RSS before {before:.0f} MB, peak during sync {peak:.0f} MB "
        f"(cap {MEMORY_CAP_MB}); at pages "
        + ", ".join(f"{m}: {rss_at[m]:.0f}" for m in marks)
        + f" MB; growth from page {marks[1]} to {marks[-1]}: {growth:+.1f} MB"
    )
    assert run.status == "succeeded", run.error
    assert usage["stored"] == METERS * SLOTS == Reading.objects.count()
    assert ratio >= TARGET
    assert peak < MEMORY_CAP_MB
    assert growth < GROWTH_CAP_MB
