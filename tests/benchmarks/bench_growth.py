"""Growth: the same operations as core_reading grows, each against itself at the first size.

The table is loaded to each size of GROWTH_SIZES in turn (default "1000000,10000000") with
a realistic shape: 10,000 meters in 4 deployments, quarter-hour readings of 3 parameters
(interval energy, power, voltage), written straight into the partitioned table in slices of
time with one ReadingCommit per slice and deployment, as partners' batches leave them. At
each size, on one busy deployment (2,500 meters):

- ingest of a fresh 100,000-reading batch (new readings), then the same batch again with
  every value changed (overwriting);
- a partner API usage page: the first (no filter), and the last hour's;
- a partner API usage page with `updated_since` just before the fresh batch;
- the admin readings changelist.

Each figure is the median of 3 runs, printed with its ratio against the first size (1.0:
as fast; goal >= 0.8, flat), beside the table and index bytes per row and this process's
RSS at start and end. The DEXMA/Wattics planning and sending, the overview page and
`dexma_backfill` planning asked for by the issue are not measured yet.

Run: make bench BENCH=tests/benchmarks/bench_growth.py
     (GROWTH_SIZES=1000000,3000000 for a shorter run; disk: ~190 bytes a reading)
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from apps.core.models import Datasource, Deployment, Device, Parameter, ReadingCommit, Site
from apps.core.services import ReadingIn, readings_ingest
from apps.core.services.partitions import (
    add_months,
    month_start,
    partition_create,
    partitions_list,
)
from apps.partner_api.services import apikey_create

SIZES = [int(s) for s in os.environ.get("GROWTH_SIZES", "1000000,10000000").split(",")]
DEPLOYMENTS = 4
METERS = 10_000
PARAMETERS = ("active_energy_delta", "active_power", "voltage")
QH = dt.timedelta(minutes=15)
# The loads cross a month boundary: queries meet more than one partition.
START = dt.datetime(2025, 12, 31, 12, 0, tzinfo=dt.UTC)
SLOTS_PER_LOAD = 40  # 1.2M readings per statement
BATCH = 100_000
RUNS = 3

pytestmark = pytest.mark.django_db(transaction=True)

# One slice of time for every meter and parameter, with seqs drawn in order.
LOAD_SQL = """
INSERT INTO core_reading (device_id, parameter_id, ts, period_end, value, estimated, quality,
                          cost, currency, seq)
SELECT d.id, p.id, %(start)s::timestamptz + s * interval '15 minutes',
       CASE WHEN p.kind = 'interval'
            THEN %(start)s::timestamptz + (s + 1) * interval '15 minutes' END,
       ((d.id * 7 + s) %% 1000) / 10.0, false, 0, NULL, '', nextval('core_reading_seq')
FROM generate_series(%(first)s, %(last)s) s
CROSS JOIN core_device d
JOIN core_parameter p ON p.key = ANY(%(parameters)s)
WHERE d.deployment_id = ANY(%(deployments)s)
ORDER BY s, d.id, p.id
"""


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def _world() -> list[Deployment]:
    deployments = []
    per = METERS // DEPLOYMENTS
    for n in range(DEPLOYMENTS):
        deployment = Deployment.objects.create(slug=f"growth-{n}", name=f"Growth {n}")
        datasource = Datasource.objects.create(deployment=deployment, key="gw", name="GW")
        site = Site.objects.create(deployment=deployment, external_id="hq", name="HQ")
        Device.objects.bulk_create(
            Device(deployment=deployment, datasource=datasource, site=site,
                   external_id=f"m{n}-{d:05d}", local_id=f"m{n}-{d:05d}", name=f"m{d}",
                   commodity="energy", unit="kWh") for d in range(per))
        deployments.append(deployment)
    return deployments


def _months_for(slots: int) -> None:
    """The partitions the load will need (months before now have none yet)."""
    have = {p.name for p in partitions_list()}
    month, last = month_start(START), month_start(START + slots * QH)
    while month <= last:
        if f"core_reading_p{month:%Y%m}" not in have:
            partition_create(month=month)
        month = add_months(month, 1)


def _load(deployments: list[Deployment], first: int, last: int) -> None:
    ids = [d.pk for d in deployments]
    for lo in range(first, last + 1, SLOTS_PER_LOAD):
        hi = min(lo + SLOTS_PER_LOAD - 1, last)
        with connection.cursor() as cursor:
            cursor.execute(LOAD_SQL, {"start": START, "first": lo, "last": hi,
                                      "parameters": list(PARAMETERS), "deployments": ids})
            cursor.execute("SELECT last_value FROM core_reading_seq")
            (top,) = cursor.fetchone()
            cursor.execute("SELECT clock_timestamp()")
            (at,) = cursor.fetchone()
        ReadingCommit.objects.bulk_create(
            ReadingCommit(deployment_id=pk, seq=top, at=at) for pk in ids)


def _rows_and_bytes() -> tuple[int, int, int]:
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE core_reading")
        cursor.execute("ANALYZE core_device, core_readingcommit")
        cursor.execute("SELECT count(*) FROM core_reading")
        (rows,) = cursor.fetchone()
        cursor.execute(
            "SELECT coalesce(sum(pg_table_size(relid)), 0), "
            "coalesce(sum(pg_indexes_size(relid)), 0) "
            "FROM pg_partition_tree('core_reading') WHERE isleaf")
        table, indexes = cursor.fetchone()
    return rows, int(table), int(indexes)


def _median(run) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class Operations:
    """The measured operations on the busy deployment, continuing in time after the load."""

    def __init__(self, deployment: Deployment, key: str, admin: Client) -> None:
        self.deployment = deployment
        self.meters = list(Device.objects.filter(deployment=deployment)
                           .order_by("pk").values_list("external_id", flat=True))
        self.kinds = dict(Parameter.objects.filter(key__in=PARAMETERS).values_list("key", "kind"))
        self.api = Client(HTTP_X_API_KEY=key)
        self.admin = admin
        self.next_slot = 0
        self.since = ""

    def _batch(self, first_slot: int, bump: float) -> list[ReadingIn]:
        records = []
        slot = first_slot
        while len(records) < BATCH:
            ts = START + slot * QH
            for meter in self.meters:
                for key in PARAMETERS:
                    end = ts + QH if self.kinds[key] == "interval" else None
                    records.append(ReadingIn(device=meter, parameter=key, ts=ts,
                                             period_end=end, value=slot + bump))
            slot += 1
        return records[:BATCH]

    def ingest_new(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT clock_timestamp()")
            self.since = cursor.fetchone()[0].isoformat()
        records = self._batch(self.next_slot, 0.5)
        self.next_slot += -(-BATCH // (len(self.meters) * len(PARAMETERS)))
        result = readings_ingest(deployment=self.deployment, records=records, source="bench")
        assert result.inserted == BATCH, result.as_counts()
        self.last_batch = records

    def ingest_overwrite(self) -> None:
        for record in self.last_batch:
            record.value += 1.0
        result = readings_ingest(deployment=self.deployment, records=self.last_batch,
                                 source="bench")
        assert result.updated == BATCH, result.as_counts()

    def _get(self, client: Client, url: str, **params) -> None:
        response = client.get(url, params)
        assert response.status_code == 200, response.content[:300]

    def usage_first(self) -> None:
        self._get(self.api, "/api/v1/usage/", limit=1000)

    def usage_last(self) -> None:
        end = START + self.next_slot * QH
        self._get(self.api, "/api/v1/usage/", limit=1000,
                  **{"from": (end - dt.timedelta(hours=1)).isoformat(), "to": end.isoformat()})

    def updated_since(self) -> None:
        self._get(self.api, "/api/v1/usage/", limit=1000, updated_since=self.since)

    def admin_readings(self) -> None:
        self._get(self.admin, "/admin/core/reading/")


def test_cost_stays_flat_as_the_readings_table_grows():
    rss_start = _rss_mb()
    deployments = _world()
    busy = deployments[0]
    _, key = apikey_create(name="growth", deployments=[busy], rate_per_minute=10**9)
    user = get_user_model().objects.create_superuser("growth", "g@example.com", "pw")
    admin = Client()
    admin.force_login(user)
    ops = Operations(busy, key, admin)
    per_slot = METERS * len(PARAMETERS)
    # The measured batches write after the loaded slots: leave room for every size's.
    reserve = len(SIZES) * RUNS * -(-BATCH // (len(ops.meters) * len(PARAMETERS)))
    total_slots = -(-max(SIZES) // per_slot) + reserve
    _months_for(total_slots)
    names = ("ingest new", "ingest overwrite", "usage first page", "usage last hour",
             "updated_since", "admin readings")
    steps = (ops.ingest_new, ops.ingest_overwrite, ops.usage_first, ops.usage_last,
             ops.updated_since, ops.admin_readings)
    baseline: dict[str, float] = {}
    print(f"\n{METERS:,} meters in {DEPLOYMENTS} deployments, {len(PARAMETERS)} parameters, "
          f"quarter-hour; median of {RUNS}; ratio = time at {SIZES[0]:,} / time here")
    rows = 0
    for size in SIZES:
        started = time.perf_counter()
        # New slots after everything written so far, the measured batches included.
        slots = max(0, -(-(size - rows) // per_slot))
        _load(deployments, ops.next_slot, ops.next_slot + slots - 1)
        ops.next_slot += slots
        rows, table, indexes = _rows_and_bytes()
        print(f"\n{rows:,} readings (loaded in {time.perf_counter() - started:.0f} s): "
              f"table {table / rows:.0f} B/row, indexes {indexes / rows:.0f} B/row, "
              f"{(table + indexes) / 2**30:.2f} GiB; RSS {_rss_mb():.0f} MB")
        for name, step in zip(names, steps, strict=True):
            seconds = _median(step)
            baseline.setdefault(name, seconds)
            print(f"  {name:18} {seconds * 1000:9.1f} ms   ratio {baseline[name] / seconds:5.2f}",
                  flush=True)
        rows += RUNS * BATCH
    print(f"\nRSS of this process: {rss_start:.0f} MB at start, {_rss_mb():.0f} MB at end")
