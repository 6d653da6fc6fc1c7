"""Ten thousand links: beat's fan-out, the outbox and real workers, one reading a link a minute.

    make bench BENCH=tests/benchmarks/bench_links.py

N delivery links (BENCH_LINKS, default 10,000): half DEXMA datasources, half Wattics streams,
ten to a deployment (N/10 deployments), each link with a meter of its own, delivering to the
sandbox IS3 and Wattics collector served by gunicorn (gthread) in a subprocess. Real Celery
workers run as a subprocess (`celery -A config worker`, prefork, BENCH_WORKER_CONCURRENCY
processes, default 4 on this 2-core machine) on the test database, with a Redis database of
the bench's own as broker (BENCH_REDIS_URL, default db 13). The bench acts as beat: every
BENCH_TICK_SECONDS (default 60, the schedules' real interval) it ingests one reading per link
(`readings_ingest`, one call per deployment), then calls `dexma.deliver_all` and
`wattics.push_due` as beat would. After BENCH_MINUTES ticks (default 3) it keeps ticking
without new readings until everything is delivered (at most BENCH_DRAIN_TICKS, default 3).

Measured, per phase:
- delivery lag per reading: its ingest commit (`ReadingCommit.at`) to the platform's
  acknowledgement (`sent_at` of the batch whose seq range holds it), p50 / p99 / max; a
  reading never delivered counts with the lag it had when the phase ended (a lower bound);
- fan-out time per tick (the two beat tasks, in this process), tasks they queued per tick;
- run rows written per tick; worker CPU per reading delivered (all worker processes, /proc);
- peak PostgreSQL connections to the test database (`pg_stat_activity`, sampled twice a
  second) and the pooling in use.

Fan-outs (BENCH_MODES, default both): `per-link`, beat's fan-out as it was (one task per
datasource and per active stream every tick, the unchanged single-link tasks), and `chunked`,
the scheduled tasks as they are now (only links with work, DELIVERY_CHUNK per task).
Baseline (the ratio rule): the same scenario at 1,000 links (BENCH_BASELINE), first, in the
same run; the N-link figures are printed as ratios to it. The machine is shared: the load
average is printed beside every figure. Target (issue 18): p99 lag under 2 minutes at N
links, connections bounded.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
import pytest
from celery.app.task import Task
from django.conf import settings
from django.db import connection, connections

from apps.core.models import (
    Datasource,
    DeliveryLink,
    Deployment,
    Device,
    Parameter,
    ReadingCommit,
    Run,
    Site,
)
from apps.core.services import ReadingIn, readings_ingest
from apps.dexma import tasks as dexma_tasks
from apps.dexma.models import DexmaDatasource, Installation, SelectedDevice
from apps.sandbox.dexma.models import PlatformDatasource, PlatformDeployment
from apps.sandbox.wattics.models import CollectorAccount, CollectorMeter
from apps.wattics import tasks as wattics_tasks
from apps.wattics.models import WatticsAccount, WatticsChannel, WatticsStream
from tests.benchmarks._servers import ROOT, gunicorn_server

LINKS = int(os.environ.get("BENCH_LINKS", "10000"))
BASELINE = min(int(os.environ.get("BENCH_BASELINE", "1000")), LINKS)
PER_DEPLOYMENT = 10  # five DEXMA datasources, five Wattics streams
MINUTES = int(os.environ.get("BENCH_MINUTES", "3"))
TICK = float(os.environ.get("BENCH_TICK_SECONDS", "60"))
DRAIN_TICKS = int(os.environ.get("BENCH_DRAIN_TICKS", "3"))
CONCURRENCY = int(os.environ.get("BENCH_WORKER_CONCURRENCY", "4"))
BROKER = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
INGEST_THREADS = 4
TARGET_P99 = 120.0
IS3_PATH = "/sandbox/dexma/is3/readings"
WATTICS_PATH = "/sandbox/wattics/measurements/v2/unifiedjson/"
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
QH = dt.timedelta(minutes=15)
DEXMA_PARAMETER, WATTICS_PARAMETER = "active_power", "temperature"


# --- set-up ---------------------------------------------------------------------------------


def _links_setup(first: int, last: int) -> None:
    """Deployments first/10 … last/10, each with five datasources and five streams (bulk)."""
    platform = PlatformDeployment.objects.get_or_create(dep_id="bench-links",
                                                        defaults={"name": "Bench"})[0]
    collector = CollectorAccount.objects.filter(username="bench").first()
    if collector is None:
        collector = CollectorAccount(username="bench", log_packets=False)
        collector.set_password("pw")
        collector.save()
    power = Parameter.objects.get(key=DEXMA_PARAMETER)
    temperature = Parameter.objects.get(key=WATTICS_PARAMETER)
    half = PER_DEPLOYMENT // 2
    numbers = range(first // PER_DEPLOYMENT, last // PER_DEPLOYMENT)
    deployments = Deployment.objects.bulk_create(
        Deployment(slug=f"links-{d:04d}", name=f"links {d}", timezone="UTC") for d in numbers)
    sources = Datasource.objects.bulk_create(
        Datasource(deployment=dep, key="gw", name="gw") for dep in deployments)
    sites = Site.objects.bulk_create(
        Site(deployment=dep, external_id="hq", name="HQ", timezone="UTC") for dep in deployments)
    devices = Device.objects.bulk_create(
        Device(deployment=dep, datasource=source, site=site, external_id=f"m-{d:04d}-{n}",
               local_id=f"m-{d:04d}-{n}", name=f"m {n}", commodity="energy", unit="kWh")
        for d, dep, source, site in zip(numbers, deployments, sources, sites, strict=True)
        for n in range(PER_DEPLOYMENT))
    installations = []
    for d, dep in zip(numbers, deployments, strict=True):
        installation = Installation(dep_id=f"bench-links-{d:04d}", deployment=dep)
        installation.set_token(f"bench-links-token-{d:08d}")
        installations.append(installation)
    Installation.objects.bulk_create(installations)
    WatticsAccount.objects.bulk_create(
        WatticsAccount(name=f"bench {d}", username="bench", password="pw", deployment=dep)
        for d, dep in zip(numbers, deployments, strict=True))
    # Per link: (deployment number, n, deployment, device).
    dexma = [(d, n, dep, devices[i * PER_DEPLOYMENT + n])
             for i, (d, dep) in enumerate(zip(numbers, deployments, strict=True))
             for n in range(half)]
    wattics = [(d, n, dep, devices[i * PER_DEPLOYMENT + half + n])
               for i, (d, dep) in enumerate(zip(numbers, deployments, strict=True))
               for n in range(PER_DEPLOYMENT - half)]
    remotes = PlatformDatasource.objects.bulk_create(
        PlatformDatasource(deployment=platform, app_id="bench", key=f"hub-{d:04d}-{n}",
                           name=f"hub-{d:04d}-{n}", timezone="UTC",
                           source_token=f"tok-{d:04d}-{n}") for d, n, _, _ in dexma)
    links = DeliveryLink.objects.bulk_create(
        [DeliveryLink(platform="dexma", name=f"bench/{d}/{n}", deployment=dep)
         for d, n, dep, _ in dexma]
        + [DeliveryLink(platform="wattics", name=f"wattics wm-{d:04d}-{n}", deployment=dep)
           for d, n, dep, _ in wattics])
    by_installation = dict(zip(numbers, installations, strict=True))
    datasources = DexmaDatasource.objects.bulk_create(
        DexmaDatasource(installation=by_installation[d], deployment=dep, name=remote.key,
                        platform_id=remote.pk, key=remote.key, source_token=remote.source_token,
                        timezone="UTC", link=link)
        for (d, _, dep, _), remote, link in zip(dexma, remotes, links[:len(dexma)], strict=True))
    selections = SelectedDevice.objects.bulk_create(
        SelectedDevice(datasource=ds, device=device, resolutions={str(power.pk): "QH"})
        for ds, (_, _, _, device) in zip(datasources, dexma, strict=True))
    SelectedDevice.parameters.through.objects.bulk_create(
        SelectedDevice.parameters.through(selecteddevice_id=s.pk, parameter_id=power.pk)
        for s in selections)
    streams = WatticsStream.objects.bulk_create(
        WatticsStream(deployment=dep, device=device, meter_id=f"wm-{d:04d}-{n}", kind="single",
                      interval_seconds=900, timezone="UTC", link=link)
        for (d, n, dep, device), link in zip(wattics, links[len(dexma):], strict=True))
    WatticsChannel.objects.bulk_create(
        WatticsChannel(stream=stream, field="value", parameter=temperature) for stream in streams)
    CollectorMeter.objects.bulk_create(
        CollectorMeter(meter_id=stream.meter_id, account=collector) for stream in streams)


def _ingest_one(deployment: Deployment, ts: dt.datetime, value: float) -> None:
    try:
        records = []
        for n in range(PER_DEPLOYMENT):
            parameter = DEXMA_PARAMETER if n < PER_DEPLOYMENT // 2 else WATTICS_PARAMETER
            records.append(ReadingIn(device=f"m-{deployment.slug[6:]}-{n}",
                                     parameter=parameter, ts=ts, value=value))
        result = readings_ingest(deployment=deployment, records=records, source="bench")
        assert not result.rejections, result.rejections[:3]
    finally:
        connections.close_all()


# --- processes ------------------------------------------------------------------------------


def _db_url() -> str:
    db = connection.settings_dict
    return (f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
            f"{db['NAME']}")


@contextmanager
def _workers(base: str):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test",
           "DATABASE_URL": _db_url(), "REDIS_URL": BROKER, "SANDBOX_ENABLED": "true",
           "DEXMA_INSERT_URL": base + IS3_PATH, "WATTICS_API_URL": base + WATTICS_PATH,
           "LOG_LEVEL": "ERROR"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "prefork",
         "-c", str(CONCURRENCY), "-Q", "celery,dexma,wattics", "-n", "bench-links@%h",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "ERROR"],
        cwd=ROOT, env=env, start_new_session=True)
    try:
        time.sleep(5)
        assert worker.poll() is None, "the worker did not start"
        yield worker
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)


def _tree_cpu(pid: int) -> float:
    """User + system CPU seconds of the process and its children (the prefork pool)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            with open(f"/proc/{current}/task/{current}/children") as fh:
                todo += [int(c) for c in fh.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


class ConnectionPeak:
    """Peak connections to the test database, sampled twice a second on a connection of its
    own (counted too)."""

    def __init__(self, dbname: str) -> None:
        self.dbname, self.peak, self.total_peak = dbname, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ConnectionPeak:
        self._thread.start()
        return self

    def _sample(self) -> None:
        with psycopg.connect(_db_url(), autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute("SELECT count(*) FILTER (WHERE datname = %s), count(*) "
                                   "FROM pg_stat_activity WHERE backend_type = 'client backend'",
                                   [self.dbname]).fetchone()
                self.peak, self.total_peak = max(self.peak, row[0]), max(self.total_peak, row[1])
                self._stop.wait(0.5)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Queued:
    """Tasks this process queues (beat's fan-out): every `.delay` goes through apply_async."""

    def __init__(self) -> None:
        self.count = 0

    @contextmanager
    def counting(self):
        original = Task.apply_async

        def apply_async(task, *args, **kwargs):
            self.count += 1
            return original(task, *args, **kwargs)

        Task.apply_async = apply_async
        try:
            yield self
        finally:
            Task.apply_async = original


# --- one phase ------------------------------------------------------------------------------


@dataclass
class Phase:
    links: int
    mode: str
    lags: list[float] = field(default_factory=list)
    undelivered: int = 0
    readings: int = 0
    fanout_seconds: list[float] = field(default_factory=list)
    ingest_seconds: list[float] = field(default_factory=list)
    queued_per_tick: list[int] = field(default_factory=list)
    runs: int = 0
    ticks: int = 0
    worker_cpu: float = 0.0
    connections: int = 0
    all_connections: int = 0
    load: tuple[float, float] = (0.0, 0.0)

    def lag(self, q: float) -> float:
        return statistics.quantiles(self.lags, n=100, method="inclusive")[int(q) - 1] \
            if len(self.lags) > 1 else (self.lags[0] if self.lags else float("nan"))

    @property
    def cpu_per_reading_ms(self) -> float:
        """Worker CPU per reading delivered (planning what was not delivered is in it too)."""
        return 1000 * self.worker_cpu / max(1, self.readings - self.undelivered)


def _lags(first_ts: dt.datetime, last_ts: dt.datetime, ended: dt.datetime) -> tuple[list, int]:
    """Commit-to-acknowledgement seconds of every reading in [first_ts, last_ts]."""
    tables = {m.__name__: m._meta.db_table for m in (DexmaDatasource, SelectedDevice,
                                                     WatticsStream, ReadingCommit)}
    sql = f"""
        WITH link_device AS (
            SELECT ds.link_id, sd.device_id FROM {tables['DexmaDatasource']} ds
              JOIN {tables['SelectedDevice']} sd ON sd.datasource_id = ds.id
             WHERE ds.link_id IS NOT NULL
            UNION ALL
            SELECT s.link_id, s.device_id FROM {tables['WatticsStream']} s
        )
        SELECT
          (SELECT c.at FROM {tables['ReadingCommit']} c
            WHERE c.deployment_id = d.deployment_id AND c.seq >= r.seq
            ORDER BY c.seq LIMIT 1),
          (SELECT b.sent_at FROM core_outboundbatch b
            WHERE b.link_id = ld.link_id AND b.seq_from < r.seq AND b.seq_to >= r.seq
              AND b.state = 'sent' LIMIT 1)
          FROM core_reading r
          JOIN link_device ld ON ld.device_id = r.device_id
          JOIN core_device d ON d.id = r.device_id
         WHERE r.ts BETWEEN %s AND %s
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [first_ts, last_ts])
        rows = cursor.fetchall()
    lags = [((sent or ended) - committed).total_seconds() for committed, sent in rows]
    return lags, sum(1 for _, sent in rows if sent is None)


def _delivered_all() -> bool:
    open_states = ("pending", "sending", "retry")
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM core_outboundbatch WHERE state = ANY(%s))",
                       [list(open_states)])
        pending = cursor.fetchone()[0]
    return not pending


def _phase(links: int, first_tick: int, worker: subprocess.Popen, mode: str) -> Phase:
    phase = Phase(links=links, mode=mode)
    beat = MODES[mode]
    deployments = list(Deployment.objects.filter(slug__startswith="links-").order_by("slug")
                       [:links // PER_DEPLOYMENT])
    first_ts = START + QH * first_tick
    queued = Queued()
    runs_before = Run.objects.count()
    cpu_before = _tree_cpu(worker.pid)
    load_start = os.getloadavg()[0]
    next_tick = time.monotonic()
    with ConnectionPeak(connection.settings_dict["NAME"]) as peak, queued.counting():
        tick = 0
        while True:
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_tick += TICK
            if tick < MINUTES:
                ts = first_ts + QH * tick
                started = time.perf_counter()
                with ThreadPoolExecutor(INGEST_THREADS) as pool:
                    list(pool.map(lambda d, ts=ts, v=float(tick): _ingest_one(d, ts, v),
                                  deployments))
                phase.ingest_seconds.append(time.perf_counter() - started)
                phase.readings += links
            elif tick >= MINUTES + DRAIN_TICKS or _delivered_all():
                break
            before = queued.count
            started = time.perf_counter()
            beat()
            phase.fanout_seconds.append(time.perf_counter() - started)
            phase.queued_per_tick.append(queued.count - before)
            tick += 1
        phase.ticks = tick
        phase.connections, phase.all_connections = peak.peak, peak.total_peak
    phase.worker_cpu = _tree_cpu(worker.pid) - cpu_before
    phase.runs = Run.objects.count() - runs_before
    phase.load = (load_start, os.getloadavg()[0])
    ended = dt.datetime.now(dt.UTC)
    phase.lags, phase.undelivered = _lags(first_ts, first_ts + QH * (MINUTES - 1), ended)
    return phase


def _beat_per_link() -> None:
    """Beat's fan-out as it was: one task per registered datasource, one per active stream,
    every tick (those single-link tasks are unchanged; only the fan-out differs)."""
    for pk in DexmaDatasource.objects.exclude(link=None).values_list("pk", flat=True):
        dexma_tasks.deliver_datasource.delay(pk)
    for pk in WatticsStream.objects.filter(link__state=DeliveryLink.State.ACTIVE).values_list(
            "pk", flat=True):
        wattics_tasks.stream_push.delay(pk)


def _beat_chunked() -> None:
    """Beat's fan-out now: the two scheduled tasks, called as beat calls them."""
    dexma_tasks.deliver_all()
    wattics_tasks.push_due()


MODES = {"per-link": _beat_per_link, "chunked": _beat_chunked}


def _purge() -> None:
    from config.celery import app

    app.control.purge()


def _report(phase: Phase) -> str:
    return (f"{phase.mode:>8} {phase.links:>6,} links: lag p50 {phase.lag(50):6.1f} s, p99 "
            f"{phase.lag(99):6.1f} s, max {max(phase.lags, default=0):6.1f} s "
            f"({len(phase.lags):,} readings, "
            f"{phase.undelivered:,} undelivered); ingest "
            f"{statistics.mean(phase.ingest_seconds):.1f} s/tick; fan-out "
            f"{statistics.mean(phase.fanout_seconds):.2f} s/tick (max "
            f"{max(phase.fanout_seconds):.2f}); tasks queued/tick "
            f"{statistics.mean(phase.queued_per_tick):,.0f}; runs/tick "
            f"{phase.runs / max(1, phase.ticks):,.0f}; worker CPU {phase.cpu_per_reading_ms:.1f}"
            f" ms per reading delivered; PostgreSQL connections peak {phase.connections} (this "
            f"database), {phase.all_connections} (server); load {phase.load[0]:.1f} -> "
            f"{phase.load[1]:.1f}")


@pytest.mark.django_db(transaction=True)
def test_ten_thousand_links_keep_delivery_lag_under_two_minutes():
    from config.celery import app

    app.conf.broker_url = BROKER  # before this process's first connection to a broker
    app.conf.result_backend = BROKER
    db = settings.DATABASES["default"]
    pool = db.get("OPTIONS", {}).get("pool")
    pooling = f"psycopg pool {pool}" if pool else f"CONN_MAX_AGE={db['CONN_MAX_AGE']}"
    modes = [m for m in os.environ.get("BENCH_MODES", "per-link,chunked").split(",") if m]
    print(f"\n{LINKS:,} links ({LINKS // PER_DEPLOYMENT:,} deployments), baseline {BASELINE:,};"
          f" {MINUTES} ticks of {TICK:.0f} s (+ up to {DRAIN_TICKS} to drain) per phase; "
          f"fan-outs {', '.join(modes)} (chunks of {settings.DELIVERY_CHUNK}); 1 Celery worker, "
          f"prefork x {CONCURRENCY}; gunicorn 2 x 8 threads; pooling: {pooling} (web and "
          f"workers alike: one persistent connection per process or thread); "
          f"cores: {os.cpu_count()}")
    started = time.perf_counter()
    _links_setup(0, BASELINE)
    print(f"set-up of {BASELINE:,} links: {time.perf_counter() - started:.0f} s")
    phases: dict[tuple[str, int], Phase] = {}
    tick = 0
    with gunicorn_server(threads=8) as base, _workers(base) as worker:
        for size in dict.fromkeys([BASELINE, LINKS]):
            if size > BASELINE:
                started = time.perf_counter()
                _links_setup(BASELINE, LINKS)
                print(f"set-up of {LINKS - BASELINE:,} more links: "
                      f"{time.perf_counter() - started:.0f} s", flush=True)
            for mode in modes:
                _purge()
                phases[mode, size] = phase = _phase(size, tick, worker, mode)
                tick += MINUTES
                print(_report(phase), flush=True)
        _purge()
    for mode in modes:
        small, big = phases[mode, BASELINE], phases[mode, LINKS]
        if big is small:
            continue
        fanout_small = statistics.mean(small.fanout_seconds) / small.links
        fanout_big = statistics.mean(big.fanout_seconds) / big.links
        print(f"{mode}: ratios {big.links:,} / {small.links:,} links: lag p99 "
              f"{big.lag(99) / small.lag(99):.2f}x, p50 {big.lag(50) / small.lag(50):.2f}x; "
              f"worker CPU per reading delivered "
              f"{big.cpu_per_reading_ms / small.cpu_per_reading_ms:.2f}x; fan-out time per "
              f"link {fanout_big / fanout_small:.2f}x; peak connections "
              f"{big.connections / max(1, small.connections):.2f}x")
    for phase in phases.values():
        if phase.undelivered:
            print(f"{phase.mode} {phase.links:,} links: {phase.undelivered:,} of "
                  f"{len(phase.lags):,} readings still undelivered when the phase ended: its "
                  "lag figures are lower bounds, and so are ratios to them")
    big = phases[modes[-1], LINKS]
    print(f"target: p99 lag < {TARGET_P99:.0f} s at {big.links:,} links ({big.mode}): "
          f"{'met' if big.lag(99) < TARGET_P99 else 'NOT met'}")
    assert all(p.lags for p in phases.values()), "a phase measured no readings"
    assert DeliveryLink.objects.count() == LINKS
