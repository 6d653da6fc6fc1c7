"""Ingest throughput against bare COPY, measured in the same run. Run with `make bench`.

1,000 devices x 1,000 fifteen-minute slots of interval energy (`active_energy_delta`, so
every reading carries a period_end) = 1,000,000 readings, in a dedicated database
(`hub_bench`, dropped and recreated, migrated; never the dev or test database).

- COPY: bare psycopg, binary COPY (the faster of text and binary here) of the same 1M rows
  into `bench_reading_bare (LIKE core_reading INCLUDING ALL)`: same columns, identity primary
  key, natural-key unique constraint, seq btree, BRIN on ts, check constraints. One
  transaction. The tuples (device ids resolved, seq precomputed) are built before the clock
  starts. Run before and after the ingest; the faster run is the baseline.
- ingest: `readings_ingest` in a fresh process, fed ReadingIn objects generated lazily
  (building them is inside its time; the generator alone is timed and printed too), into an
  empty core_reading. Run twice (truncated in between); the faster run counts. Peak memory is
  the process's ru_maxrss; an extra untimed pass reports the Python heap peak (tracemalloc).
- re-ingest: the same 1M readings again, all unchanged (the idempotent path).
- half overwrite: 1M readings whose every device run starts 500 slots later, so 500,000 of
  them replace stored readings with new values and 500,000 are new.
- ORM: `Reading(...).save()` row by row (autocommit) on a 10,000-row sample, for scale.
- Reference only: the same COPY into a bare table that also has the two deferred foreign keys
  (device, parameter) core_reading carried until migration 0005 dropped them for the ingest's
  own checks under the deployment's readings lock: it shows what they cost (turn off with
  BENCH_FK_REFERENCE=0).

Targets (asserted after the table is printed): ingest >= 70% of COPY's rows/s, fresh and
half overwrite; ingest peak RSS < 500 MB. Sizes: BENCH_DEVICES, BENCH_TIMESTAMPS,
BENCH_ORM_SAMPLE; database name: BENCH_DB_NAME; keep it afterwards with BENCH_KEEP_DB=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
from psycopg import sql

from tests.benchmarks import _worker

ROOT = Path(__file__).resolve().parents[2]
BENCH_DB = os.environ.get("BENCH_DB_NAME", "hub_bench")
MIN_RATIO = 0.70
MAX_PEAK_MB = 500
COMPARED = ("device_id", "parameter_id", "ts", "period_end", "value", "estimated", "quality",
            "cost", "currency")


def _url(dbname: str) -> str:
    return urlparse(os.environ["DATABASE_URL"])._replace(path=f"/{dbname}").geturl()


def _run(env: dict[str, str], *args: str) -> dict:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=False)
    if proc.returncode:
        pytest.fail(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def _worker_run(env: dict[str, str], phase: str, *flags: str, **extra: str) -> dict:
    return _run({**env, **extra}, "-m", "tests.benchmarks._worker", phase, *flags)


def _sql(*statements: str) -> list:
    out = []
    with psycopg.connect(_url(BENCH_DB), autocommit=True) as conn:
        for statement in statements:
            cur = conn.execute(statement)
            out.append(cur.fetchall() if cur.description else None)
    return out


@pytest.fixture(autouse=True)
def _clear_cache():
    """This benchmark never uses the cache: leave the shared Redis alone (overrides conftest)."""
    yield


@pytest.fixture(scope="module")
def bench_env():
    dev_db = urlparse(os.environ["DATABASE_URL"]).path.lstrip("/")
    assert BENCH_DB not in {dev_db, f"test_{dev_db}", "postgres"}, "pick another BENCH_DB_NAME"
    name = sql.Identifier(BENCH_DB)
    with psycopg.connect(_url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
    env = {**os.environ, "DATABASE_URL": _url(BENCH_DB),
           "DJANGO_SETTINGS_MODULE": "config.settings_test", "PYTHONUNBUFFERED": "1"}
    # Every app: their signals run when the bench's deployment is created.
    _run(env, "manage.py", "migrate", "--noinput", "--skip-checks", "-v0")
    _worker_run(env, "setup")
    yield env
    if os.environ.get("BENCH_KEEP_DB") != "1":
        with psycopg.connect(_url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


def _rate(phase: dict) -> float:
    return phase["rows"] / phase["seconds"]


def _line(label: str, phase: dict, note: str = "") -> str:
    return (f"{label:<40} {phase['rows']:>10,} {phase['seconds']:>9.2f} {_rate(phase):>12,.0f}"
            f"  {note}")


def test_ingest_vs_copy(bench_env):
    rows = _worker.DEVICES * _worker.TIMESTAMPS
    columns = ", ".join(COMPARED)

    _sql("CHECKPOINT")
    copy = _worker_run(bench_env, "copy", BENCH_COPY_FORMAT="binary")
    _sql(f"VACUUM ANALYZE {_worker.BARE_TABLE}", "CHECKPOINT")
    copy_fk = None
    if os.environ.get("BENCH_FK_REFERENCE", "1") == "1":
        copy_fk = _worker_run(bench_env, "copy", BENCH_COPY_FORMAT="binary",
                              BENCH_COPY_TABLE=f"{_worker.BARE_TABLE}_fk", BENCH_COPY_FK="1")
        _sql(f"DROP TABLE {_worker.BARE_TABLE}_fk", "CHECKPOINT")

    generate = _worker_run(bench_env, "generate")
    ingest = _worker_run(bench_env, "ingest")
    assert ingest["counts"]["inserted"] == rows, ingest
    # Same data on both sides, row for row (untimed).
    (missing,), (extra,) = (r[0] for r in _sql(
        f"SELECT count(*) FROM (SELECT {columns} FROM {_worker.BARE_TABLE}"
        f" EXCEPT ALL SELECT {columns} FROM core_reading) d",
        f"SELECT count(*) FROM (SELECT {columns} FROM core_reading"
        f" EXCEPT ALL SELECT {columns} FROM {_worker.BARE_TABLE}) d",
    ))
    assert (missing, extra) == (0, 0)

    # A second fresh ingest; like COPY, the faster of the two runs counts.
    _sql("TRUNCATE core_reading", "VACUUM ANALYZE core_reading", "CHECKPOINT")
    ingest_2 = _worker_run(bench_env, "ingest")
    assert ingest_2["counts"]["inserted"] == rows, ingest_2
    ingests = sorted((ingest, ingest_2), key=_rate, reverse=True)
    ingest = ingests[0]

    _sql("VACUUM ANALYZE core_reading", "CHECKPOINT")
    again = _worker_run(bench_env, "ingest")
    assert again["counts"]["unchanged"] == rows, again
    traced = _worker_run(bench_env, "ingest", "--tracemalloc")
    # Half overwrite: every device's run starts TIMESTAMPS / 2 slots later, so its first half
    # replaces stored readings with new values and its second half is new.
    _sql("VACUUM ANALYZE core_reading", "CHECKPOINT")
    half = _worker_run(bench_env, "ingest", BENCH_FIRST_TS=str(_worker.TIMESTAMPS // 2))
    overwritten = _worker.DEVICES * (_worker.TIMESTAMPS - _worker.TIMESTAMPS // 2)
    assert half["counts"]["updated"] == overwritten, half
    assert half["counts"]["inserted"] == rows - overwritten, half
    orm = _worker_run(bench_env, "orm")
    # COPY once more after the ingest; the faster of the two is the baseline (the stricter).
    _sql("CHECKPOINT")
    copy_after = _worker_run(bench_env, "copy", BENCH_COPY_FORMAT="binary")
    copies = sorted((copy, copy_after), key=_rate, reverse=True)
    copy = copies[0]

    ratio = _rate(ingest) / _rate(copy)
    half_ratio = _rate(half) / _rate(copy)
    peak = max(run["ru_maxrss_mb"] for run in (*ingests, again, half))
    print()
    print(f"ingest benchmark: {_worker.DEVICES:,} devices x {_worker.TIMESTAMPS:,} timestamps, "
          f"database {BENCH_DB}")
    print(f"{'':<40} {'rows':>10} {'seconds':>9} {'rows/s':>12}")
    print(_line("COPY, bare psycopg (binary)", copy, "baseline: the faster of two runs"))
    print(_line("  (the other COPY run)", copies[1], ""))
    if copy_fk:
        print(_line("COPY, bare table + device/parameter FKs", copy_fk,
                    f"reference only; ingest = {_rate(ingest) / _rate(copy_fk):.0%} of it"))
    print(_line("readings_ingest, new rows", ingest, "the faster of two runs"))
    print(_line("  (the other ingest run)", ingests[1], ""))
    print(_line("readings_ingest again, all unchanged", again,
                f"{_rate(again) / _rate(copy):.0%} of COPY"))
    print(_line("readings_ingest, half overwrites", half,
                f"{_rate(half) / _rate(copy):.0%} of COPY; {overwritten:,} updated"))
    print(_line("ORM save(), row by row", orm, f"{_rate(orm) / _rate(copy):.2%} of COPY"))
    print(_line("  (generating the ReadingIn stream alone)", generate, "inside ingest's time"))
    print(f"ratio ingest / COPY: {ratio:.1%} fresh, {half_ratio:.1%} half overwrite "
          f"(target >= {MIN_RATIO:.0%})")
    print(f"ingest peak memory (whole process, ru_maxrss, worst of the 3 runs): {peak:.0f} MB "
          f"(target < {MAX_PEAK_MB} MB; {ingest['before']['rss_mb']:.0f} MB of it is Django before "
          f"the call); Python heap peak during the call (tracemalloc, separate untimed run): "
          f"{traced['tracemalloc_peak_mb']:.1f} MB; the COPY process: "
          f"{copy['ru_maxrss_mb']:.0f} MB (its 1M tuples prepared in memory)")

    assert peak < MAX_PEAK_MB, f"ingest peak RSS {peak:.0f} MB >= {MAX_PEAK_MB} MB"
    assert ratio >= MIN_RATIO, f"ingest is {ratio:.1%} of COPY, target {MIN_RATIO:.0%}"
    assert half_ratio >= MIN_RATIO, (
        f"half-overwrite ingest is {half_ratio:.1%} of COPY, target {MIN_RATIO:.0%}")
