"""Pull-sync throughput and memory: the hub's sync vs a bare fetch+parse+COPY loop.

500,000 usage records (consumption format: 100 meters x 5,000 quarter hours) over 1,000
pages of 500, served by a standalone provider process (`_provider.py`: no Django, pages
rendered once and served from memory, so its serving cost does not hide the clients').

- bare: one keep-alive `requests` session, `json` decoding, psycopg COPY of every record
  (device id looked up, timestamps left for the server to parse) into a table shaped like
  core_reading (`LIKE core_reading INCLUDING ALL`), one transaction.
- hub: `connection_sync` of a connection to the same provider: listing, paging, mapping,
  validation, quarantine checks, the readings ingest, the watermark.

Both run BENCH_PULL_TRIALS times (default 3), interleaved (bare, hub, bare, hub, ...),
after an untimed warm-up pass; medians are compared. What landed is checked exact on both
sides against the provider's own figures: count, sum of values, first and last instants.
Targets: the hub reaches at least 50% of the bare loop's records/s; its peak RSS stays
under 300 MB and does not grow with the number of pages. The hub's phases (main thread:
waiting for pages, waiting for the store, the rest = mapping and converting; the store
thread's time in the readings ingest, overlapped) and each side's process CPU are printed.

`make bench-peers` runs the same with two generic pullers in each trial, as their users
configure them (`_peers.py`, in the contract venv): dlt's `rest_api` source into PostgreSQL
with its defaults (the pipeline's own time), and Airbyte's declarative CDK reading the same
pages with a YAML manifest, no destination (the `source-declarative-manifest read`
command's time, its start-up included). Both must land or read every record, sum exact.

    make bench BENCH=tests/benchmarks/bench_pull.py
    make bench-peers                  # BENCH_PULL_TRIALS=1 for one trial of each
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import requests
from django.db import connection as db

from apps.core.models import Deployment, Device, Parameter, Reading
from apps.pull.client import UpstreamClient
from apps.pull.models import Connection, Endpoint
from apps.pull.services import connection_setup, connection_sync, overlap
from apps.pull.services import usage as usage_module
from tests.benchmarks import _provider
from tests.benchmarks._servers import free_port

ROOT = Path(__file__).resolve().parents[2]
METERS = int(os.environ.get("BENCH_PULL_METERS", "100"))
SLOTS = int(os.environ.get("BENCH_PULL_SLOTS", "5000"))
PAGE = int(os.environ.get("BENCH_PULL_PAGE", "500"))
TRIALS = int(os.environ.get("BENCH_PULL_TRIALS", "3"))
CONCURRENCY = int(os.environ.get("BENCH_PULL_CONCURRENCY", "2"))
TARGET = 0.50
# `make bench-peers` sets this to the contract venv's Python: dlt and Airbyte run too.
PEERS_PYTHON = os.environ.get("BENCH_PEERS_PYTHON", "")
# What 0.5 of the bare loop meant against each peer on the figures the goal was set with
# (Airbyte at 0.18 of bare, dlt at 0.07): printed beside the measured multiple, not asserted —
# the bar is the bare loop, measured here; a faster or slower peer release moves these.
PEER_TARGETS = {"airbyte": 2.5, "dlt": 7.0}
MEMORY_CAP_MB = 300
GROWTH_CAP_MB = 40
STEP = dt.timedelta(minutes=15)
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
START = NOW - SLOTS * STEP
BARE_TABLE = "bench_pull_bare"
PARAMETER = "active_energy_delta"


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


@contextmanager
def provider_process() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.benchmarks._provider", str(port), str(METERS),
         str(SLOTS), str(int(START.timestamp()))], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=20)


def _dsn() -> str:
    settings = db.settings_dict
    return (f"host={settings['HOST'] or '127.0.0.1'} port={settings['PORT'] or 5432} "
            f"user={settings['USER']} dbname={settings['NAME']}")


def _bare_loop(base: str, device_ids: dict[str, int],
               parameter_id: int) -> tuple[float, float, int]:
    """Fetch, parse and COPY every record with plain tools: the baseline."""
    session = requests.Session()
    session.headers["X-Api-Key"] = _provider.API_KEY
    params = {"from": START.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "to": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"), "limit": str(PAGE)}
    with psycopg.connect(_dsn()) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {BARE_TABLE}")
        conn.execute(f"CREATE TABLE {BARE_TABLE} (LIKE core_reading INCLUDING ALL)")
        conn.commit()
        started, cpu = time.perf_counter(), time.process_time()
        records = offset = 0
        with conn.cursor() as cur, cur.copy(
            f"COPY {BARE_TABLE} (device_id, parameter_id, ts, period_end, value, estimated,"
            " quality, cost, currency, seq) FROM STDIN"
        ) as copy:
            while True:
                response = session.get(f"{base}/consumption",
                                       params={**params, "offset": str(offset)}, timeout=60)
                items = response.json()["data"]
                for item in items:
                    records += 1
                    period, cost = item["period"], item["cost"]
                    copy.write_row((device_ids[item["meter"]], parameter_id, period["from"],
                                    period["to"], item["quantity"], item["flags"]["estimated"],
                                    0, cost["amount"], cost["currency"], records))
                offset += len(items)
                if len(items) < PAGE:
                    break
        conn.commit()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return seconds, cpu, records


def _peer(tool: str, base: str, workdir: Path) -> dict:
    """One load by a generic puller in the contract venv (tests/benchmarks/_peers.py)."""
    settings = db.settings_dict
    dsn = (f"postgresql://{settings['USER']}:{settings['PASSWORD'] or 'unused'}@"
           f"{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}")
    done = subprocess.run(
        [PEERS_PYTHON, str(ROOT / "tests/benchmarks/_peers.py"), tool, base, dsn,
         START.strftime("%Y-%m-%dT%H:%M:%SZ"), NOW.strftime("%Y-%m-%dT%H:%M:%SZ"), str(PAGE),
         str(workdir / tool)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _landed(table: str) -> dict:
    with db.cursor() as cursor:
        cursor.execute(f"SELECT count(*), sum(value), min(ts), max(ts) FROM {table}")
        count, total, first, last = cursor.fetchone()
    return {"count": count, "sum": total, "first": first, "last": last}


def _assert_exact(landed: dict, expected: dict, who: str) -> None:
    assert landed["count"] == expected["count"], (who, landed, expected)
    assert landed["sum"] == pytest.approx(expected["sum"], rel=1e-12, abs=1e-6), (who, landed)
    assert (landed["first"], landed["last"]) == (expected["first"], expected["last"]), who


class Phases:
    """Where one sync's time goes: the main thread waiting for pages and for the store (the
    rest of it is mapping and converting), and the store thread inside the readings ingest
    (overlapped with the main thread)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.waiting = self.settling = self.ingesting = 0.0
        pages, ingest = UpstreamClient.pages, usage_module.readings_ingest
        settle = overlap.BehindStore.wait
        main = threading.main_thread()

        def timed_pages(client, *args, **kwargs):
            # The main thread's wait for each page (a read-ahead helper's waits not counted).
            iterator = pages(client, *args, **kwargs)
            while True:
                started = time.perf_counter()
                try:
                    page = next(iterator)
                except StopIteration:
                    return
                finally:
                    if threading.current_thread() is main:
                        self.waiting += time.perf_counter() - started
                yield page

        def timed_ingest(**kwargs):
            started = time.perf_counter()
            try:
                return ingest(**kwargs)
            finally:
                self.ingesting += time.perf_counter() - started

        def timed_settle(store):
            started = time.perf_counter()
            try:
                return settle(store)
            finally:
                self.settling += time.perf_counter() - started

        monkeypatch.setattr(UpstreamClient, "pages", timed_pages)
        monkeypatch.setattr(usage_module, "readings_ingest", timed_ingest)
        monkeypatch.setattr(overlap.BehindStore, "wait", timed_settle)

    def reset(self) -> None:
        self.waiting = self.settling = self.ingesting = 0.0


def _reset_hub(connection: Connection) -> None:
    with db.cursor() as cursor:
        cursor.execute("TRUNCATE core_reading, core_readingcommit")
        cursor.execute("VACUUM ANALYZE core_reading")
    Connection.objects.filter(pk=connection.pk).update(usage_watermark=None)
    connection.usage_watermark = None


@pytest.mark.django_db(transaction=True)
def test_pull_sync_throughput_and_memory_against_a_bare_fetch_and_copy(monkeypatch, tmp_path):
    expected = _provider.expected(METERS, SLOTS, int(START.timestamp()))
    with provider_process() as base:
        deployment = Deployment.objects.create(slug="bench-pull", name="Bench pull")
        connection = Connection.objects.create(
            deployment=deployment, name="Bench provider", key="bench",
            staging_url=f"{base}/", auth_kind="api_key_header", api_key=_provider.API_KEY,
            date_format="%Y-%m-%dT%H:%M:%SZ", initial_days=SLOTS * 15 // 1440 + 1,
            max_range_days=400, concurrency=CONCURRENCY,
        )
        fields = {"consumption": {"meter_id": "meter", "start": "period.from",
                                  "end": "period.to", "value": "quantity",
                                  "cost": "cost.amount", "currency": "cost.currency",
                                  "estimated": "flags.estimated"},
                  "meters": {"external_id": "id", "asset_id": "asset.id", "name": "label",
                             "type": "kind", "unit": "unit"}}
        for role, mapping in fields.items():
            Endpoint.objects.create(connection=connection, role=role, path=role,
                                    pagination="offset", page_size=PAGE, fields=mapping)
        connection_setup(connection=connection)
        # The meters as the hub lists them (a first sync), then the same ids for the bare loop.
        connection_sync(connection=connection, now=START, sleep=lambda s: None)
        device_ids = dict(Device.objects.filter(deployment=deployment)
                          .values_list("external_id", "id"))
        assert len(device_ids) == METERS
        parameter_id = Parameter.objects.get(key=PARAMETER).pk

        # Warm-up, untimed: the provider renders each side's pages once (their queries differ).
        _bare_loop(base, device_ids, parameter_id)
        _reset_hub(connection)
        connection_sync(connection=connection, now=NOW, sleep=lambda s: None)
        phases = Phases(monkeypatch)
        bare_runs: list[float] = []
        bare_cpu: list[float] = []
        hub_runs: list[dict] = []
        peer_runs: dict[str, list[float]] = {tool: [] for tool in PEER_TARGETS}
        for _ in range(TRIALS):
            seconds, cpu, records = _bare_loop(base, device_ids, parameter_id)
            assert records == expected["count"]
            _assert_exact(_landed(BARE_TABLE), expected, "bare")
            bare_runs.append(seconds)
            bare_cpu.append(cpu)

            _reset_hub(connection)
            pages_done: list[int] = []
            rss_at: dict[int, float] = {}

            def on_page(pages_done=pages_done, rss_at=rss_at) -> None:
                pages_done.append(1)
                if len(pages_done) % 100 == 0:
                    rss_at[len(pages_done)] = _rss_mb()

            phases.reset()
            sampler = PeakSampler()
            before = _rss_mb()
            sampler.start()
            started, cpu = time.perf_counter(), time.process_time()
            run = connection_sync(connection=connection, now=NOW, on_page=on_page,
                                  sleep=lambda s: None).run
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            peak = sampler.stop()
            assert run.status == "succeeded", run.error
            usage = run.counts["usage"]
            assert usage["stored"] == expected["count"] == Reading.objects.count()
            _assert_exact(_landed("core_reading"), expected, "hub")
            marks = sorted(rss_at)
            hub_runs.append({"seconds": seconds, "cpu": cpu, "peak": peak, "before": before,
                             "growth": rss_at[marks[-1]] - rss_at[marks[1]]
                             if len(marks) > 1 else 0.0,
                             "pages": run.counts["pages"], "waiting": phases.waiting,
                             "settling": phases.settling, "ingesting": phases.ingesting})
            for tool in PEER_TARGETS if PEERS_PYTHON else ():
                loaded = _peer(tool, base, tmp_path)
                assert loaded["rows"] == expected["count"], (tool, loaded)
                assert loaded["sum"] == pytest.approx(expected["sum"], rel=1e-9), (tool, loaded)
                peer_runs[tool].append(loaded["seconds"])

    bare = statistics.median(bare_runs)
    hub = statistics.median(run["seconds"] for run in hub_runs)
    median_run = sorted(hub_runs, key=lambda r: r["seconds"])[len(hub_runs) // 2]
    ratio = bare / hub
    peak = max(run["peak"] for run in hub_runs)
    growth = max(run["growth"] for run in hub_runs)
    count = expected["count"]
    converting = median_run["seconds"] - median_run["waiting"] - median_run["settling"]
    bare_list = ", ".join(f"{s:.2f}" for s in bare_runs)
    hub_list = ", ".join(f"{r['seconds']:.2f}" for r in hub_runs)
    print(
        f"\npull benchmark: {count:,} records over {count // PAGE} pages of {PAGE}, "
        f"standalone provider, {TRIALS} interleaved trials, medians\n"
        f"  {'variant':<44} {'seconds':>8} {'records/s':>10} {'vs bare':>8}\n"
        f"  {'bare requests + json + psycopg COPY':<44} {bare:8.2f} {count / bare:10,.0f}"
        f" {1:8.2f}   (runs: {bare_list})\n"
        f"  {'hub pull sync (one connection, one endpoint)':<44} {hub:8.2f} {count / hub:10,.0f}"
        f" {ratio:8.2f}   (runs: {hub_list})\n"
        f"{_peer_lines(peer_runs, bare, hub, count)}"
        f"  target >= {TARGET:.2f}\n"
        f"  process CPU (user + system, this process's threads): bare "
        f"{statistics.median(bare_cpu):.2f} s, hub {median_run['cpu']:.2f} s\n"
        f"  hub phases (median run): main thread waiting for pages "
        f"{median_run['waiting']:.2f} s, waiting for the store {median_run['settling']:.2f} s, "
        f"mapping/converting/rest {converting:.2f} s; "
        f"store thread in readings_ingest {median_run['ingesting']:.2f} s (overlapped)\n"
        f"  RSS before {median_run['before']:.0f} MB, peak during a sync {peak:.0f} MB "
        f"(cap {MEMORY_CAP_MB}); growth from page 200 to the end: {growth:+.1f} MB\n"
        f"  landed exact on both sides: {count:,} rows, sum {expected['sum']:,.4f}, "
        f"{expected['first'].isoformat()} .. {expected['last'].isoformat()}"
    )
    assert peak < MEMORY_CAP_MB
    assert growth < GROWTH_CAP_MB
    assert ratio >= TARGET, f"the hub's pull is {ratio:.2f} of the bare loop, target {TARGET}"


_PEER_LABELS = {"airbyte": "Airbyte declarative CDK, read only (no DB)",
                "dlt": "dlt rest_api -> postgres, defaults"}


def _peer_lines(peer_runs: dict[str, list[float]], bare: float, hub: float, count: int) -> str:
    if not any(peer_runs.values()):
        return "  dlt and Airbyte: not run (`make bench-peers` runs them beside these)\n"
    lines = []
    for tool, runs in peer_runs.items():
        seconds = statistics.median(runs)
        listed = ", ".join(f"{s:.2f}" for s in runs)
        lines.append(f"  {_PEER_LABELS[tool]:<44} {seconds:8.2f} {count / seconds:10,.0f}"
                     f" {bare / seconds:8.2f}   (runs: {listed}; the hub is "
                     f"{seconds / hub:.1f}x as fast; {PEER_TARGETS[tool]}x on the goal's "
                     "figures)\n")
    return "".join(lines)
