"""Subprocess side of the ingest benchmark: one phase per process, one JSON line on stdout.

    python -m tests.benchmarks._worker setup|copy|generate|ingest|orm [--tracemalloc]

(`copy` reads BENCH_COPY_FORMAT=binary|text, BENCH_COPY_TABLE and BENCH_COPY_FK=1.)

Run by `test_ingest_bench.py` with DATABASE_URL pointing at the dedicated bench database.
Each phase runs in a fresh process so its peak RSS (`ru_maxrss`) is its own.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import sys
import time
from collections.abc import Iterator

DEVICES = int(os.environ.get("BENCH_DEVICES", "1000"))
TIMESTAMPS = int(os.environ.get("BENCH_TIMESTAMPS", "1000"))
ORM_SAMPLE = int(os.environ.get("BENCH_ORM_SAMPLE", "10000"))
PARAMETER = "active_energy_delta"  # interval data: each reading also carries a period_end
DEPLOYMENT = "bench"
BARE_TABLE = "bench_reading_bare"
STEP = dt.timedelta(minutes=15)
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
COLUMNS = ("device_id", "parameter_id", "ts", "period_end", "value", "estimated", "quality",
           "cost", "currency", "seq")
FOREIGN_KEYS = (
    "FOREIGN KEY (device_id) REFERENCES core_device (id) DEFERRABLE INITIALLY DEFERRED",
    "FOREIGN KEY (parameter_id) REFERENCES core_parameter (id) DEFERRABLE INITIALLY DEFERRED",
)


def external_id(n: int) -> str:
    return f"meter-{n:05d}"


def series(first_ts: int = 0, timestamps: int = TIMESTAMPS,
           devices: int = DEVICES) -> Iterator[tuple[int, dt.datetime, dt.datetime, float]]:
    """(device number, ts, period_end, value): device by device, each a run of 15-min slots.

    The single source of the data, so COPY and the ingest see exactly the same readings.
    """
    slots = [(START + i * STEP, START + (i + 1) * STEP)
             for i in range(first_ts, first_ts + timestamps)]
    for d in range(devices):
        base = (d % 97) * 0.25
        for i, (ts, end) in enumerate(slots):
            yield d, ts, end, base + ((i * 7919 + d) % 1000) / 8.0


def _memory() -> dict[str, float]:
    status = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in {"VmRSS", "VmHWM"}:
                status[key] = int(rest.split()[0]) / 1024
    return {
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_mb": status.get("VmRSS", 0.0),
        "hwm_mb": status.get("VmHWM", 0.0),
    }


def _django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    import django

    django.setup()


def setup() -> dict:
    """The deployment, its datasource and site, and the devices (bulk, untimed)."""
    _django()
    from apps.core.models import Datasource, Deployment, Device, Site

    deployment = Deployment.objects.create(slug=DEPLOYMENT, name="Bench", timezone="UTC")
    datasource = Datasource.objects.create(deployment=deployment, key="gw", name="Gateway")
    site = Site.objects.create(deployment=deployment, external_id="hq", name="HQ")
    Device.objects.bulk_create(
        Device(deployment=deployment, datasource=datasource, site=site,
               external_id=external_id(n), local_id=external_id(n), name=external_id(n),
               commodity="energy", unit="kWh")
        for n in range(DEVICES)
    )
    return {"devices": Device.objects.filter(deployment=deployment).count()}


def copy() -> dict:
    """Bare psycopg COPY of the same rows into an equivalent bare table, in one transaction.

    The bare table is `LIKE core_reading INCLUDING ALL`: same columns, identity primary key,
    natural-key unique constraint, seq btree, BRIN on ts and check constraints (LIKE does not
    copy foreign keys). The tuples are prepared before the clock starts.
    """
    import psycopg

    fmt = os.environ.get("BENCH_COPY_FORMAT", "binary")
    table = os.environ.get("BENCH_COPY_TABLE", BARE_TABLE)
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        device_ids = dict(conn.execute(
            "SELECT d.external_id, d.id FROM core_device d JOIN core_deployment p"
            " ON p.id = d.deployment_id WHERE p.slug = %s", [DEPLOYMENT]).fetchall())
        (parameter_id,) = conn.execute(
            "SELECT id FROM core_parameter WHERE key = %s", [PARAMETER]).fetchone()
        ids = [device_ids[external_id(n)] for n in range(DEVICES)]
        rows = [(ids[d], parameter_id, ts, end, value, False, 0, None, "", seq)
                for seq, (d, ts, end, value) in enumerate(series(), start=1)]
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (LIKE core_reading INCLUDING ALL)")
        if os.environ.get("BENCH_COPY_FK") == "1":
            # Reference run: the two foreign keys core_reading carried before migration 0005.
            for definition in FOREIGN_KEYS:
                conn.execute(f"ALTER TABLE {table} ADD {definition}")
        conn.commit()
        prepared = _memory()
        sql = f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN"
        started = time.perf_counter()
        with conn.cursor() as cur:
            if fmt == "binary":
                with cur.copy(sql + " (FORMAT BINARY)") as cp:
                    cp.set_types(["int8", "int2", "timestamptz", "timestamptz", "float8",
                                  "bool", "int2", "float8", "varchar", "int8"])
                    for row in rows:
                        cp.write_row(row)
            else:
                with cur.copy(sql) as cp:
                    for row in rows:
                        cp.write_row(row)
        conn.commit()
        seconds = time.perf_counter() - started
    return {"rows": len(rows), "seconds": seconds, "format": fmt, "table": table,
            "prepared": prepared,
            **_memory()}


def _records():
    from apps.core.services.ingest import ReadingIn

    names = [external_id(n) for n in range(DEVICES)]
    # BENCH_FIRST_TS=N starts every device's run N slots later: with N = TIMESTAMPS / 2 after
    # a full ingest, half of the batch overwrites stored readings (each with a new value).
    for d, ts, end, value in series(int(os.environ.get("BENCH_FIRST_TS", "0"))):
        yield ReadingIn(device=names[d], parameter=PARAMETER, ts=ts, value=value,
                        period_end=end)


def generate() -> dict:
    """How long producing the ReadingIn stream alone takes (it is inside the ingest's time)."""
    _django()
    started = time.perf_counter()
    count = sum(1 for _ in _records())
    return {"rows": count, "seconds": time.perf_counter() - started, **_memory()}


def ingest(trace: bool) -> dict:
    """`readings_ingest` of the 1M readings, generated lazily as the edges hand them over."""
    _django()
    from django.db import connection

    from apps.core.models import Deployment
    from apps.core.services.ingest import readings_ingest

    deployment = Deployment.objects.get(slug=DEPLOYMENT)
    connection.ensure_connection()
    before = _memory()
    if trace:
        import tracemalloc

        tracemalloc.start()
    started = time.perf_counter()
    result = readings_ingest(deployment=deployment, records=_records(), source="bench")
    seconds = time.perf_counter() - started
    traced = None
    if trace:
        import tracemalloc

        traced = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return {"rows": DEVICES * TIMESTAMPS, "seconds": seconds, "counts": result.as_counts(),
            "rejections": len(result.rejections), "before": before,
            "tracemalloc_peak_mb": traced, **_memory()}


def orm() -> dict:
    """Per-row `Reading(...).save()` (autocommit, one INSERT each) on a small sample."""
    _django()
    from apps.core.models import Deployment, Device, Parameter, Reading

    deployment = Deployment.objects.get(slug=DEPLOYMENT)
    ids = dict(Device.objects.filter(deployment=deployment).values_list("external_id", "id"))
    parameter = Parameter.objects.get(key=PARAMETER)
    devices = max(1, ORM_SAMPLE // TIMESTAMPS)
    per_device = ORM_SAMPLE // devices
    # Timestamps after every ingested one (the half-overwrite run reaches 1.5 x TIMESTAMPS):
    # every save is an INSERT of a new row.
    sample = [(ids[external_id(d)], ts, end, value)
              for d, ts, end, value in series(2 * TIMESTAMPS, per_device, devices)]
    seq = 10**12
    started = time.perf_counter()
    for device_id, ts, end, value in sample:
        seq += 1
        Reading(device_id=device_id, parameter=parameter, ts=ts, period_end=end, value=value,
                seq=seq).save()
    return {"rows": len(sample), "seconds": time.perf_counter() - started, **_memory()}


def main(argv: list[str]) -> None:
    phase = argv[0]
    if phase == "ingest":
        out = ingest("--tracemalloc" in argv)
    else:
        out = {"setup": setup, "copy": copy, "generate": generate, "orm": orm}[phase]()
    print(json.dumps(out, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
