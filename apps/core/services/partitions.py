"""The monthly partitions of core_reading on PostgreSQL (see migration core/0008).

A small command of the hub's (`manage.py readings_partitions`, beat task
`core.readings_maintain`) rather than pg_partman: the extension is packaged for Debian
(`postgresql-15-partman`) but is not installed here, needs `CREATE EXTENSION` by a superuser
and its own scheduler, none of which CI or a hosted PostgreSQL can be assumed to give. What
the hub needs is small: months created ahead, rows that fell into DEFAULT moved to their
month, whole months dropped behind when retention lets go (apps.core.services.retention).

On SQLite (the embedded demo) the table is not partitioned and every call here is a no-op.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection, transaction

TABLE = "core_reading"
DEFAULT_PARTITION = f"{TABLE}_default"
# Readings before this month go to DEFAULT rather than one partition per stray month.
EARLIEST_MONTH = dt.date(2000, 1, 1)


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    lower: dt.datetime | None  # None for DEFAULT
    upper: dt.datetime | None
    rows_estimate: int
    total_bytes: int

    @property
    def is_default(self) -> bool:
        return self.lower is None


def readings_partitioned() -> bool:
    """Whether core_reading is partitioned here (PostgreSQL after migration core/0008)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def add_months(month: dt.date, count: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + count
    return dt.date(index // 12, index % 12 + 1, 1)


def month_start(moment: dt.datetime) -> dt.date:
    return moment.astimezone(dt.UTC).date().replace(day=1)


def partition_name(month: dt.date) -> str:
    return f"{TABLE}_p{month:%Y%m}"


def _instant(month: dt.date) -> dt.datetime:
    return dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC)


def partitions_list() -> list[Partition]:
    """Every partition, oldest first, DEFAULT last; rows from statistics (no count)."""
    if not readings_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), "
            "greatest(c.reltuples::bigint, coalesce(s.n_live_tup, 0), 0), "
            "pg_total_relation_size(c.oid) "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
            "WHERE i.inhparent = %s::regclass", [TABLE])
        rows = cursor.fetchall()
    out = []
    for name, bound, estimate, size in rows:
        lower = upper = None
        if name.startswith(f"{TABLE}_p") and bound != "DEFAULT":
            month = dt.date(int(name[-6:-2]), int(name[-2:]), 1)
            lower, upper = _instant(month), _instant(add_months(month, 1))
        out.append(Partition(name, lower, upper, int(estimate), int(size)))
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(out, key=lambda p: p.lower or far)


def _existing_months() -> set[dt.date]:
    return {p.lower.date() for p in partitions_list() if p.lower is not None}


def partition_create(*, month: dt.date) -> int:
    """Create the month's partition; readings of it already in DEFAULT move into it.

    Returns how many readings moved. ATTACH validates DEFAULT against the new bound, so the
    moved rows leave DEFAULT in the same transaction, under a lock that keeps writers of that
    month out until commit (short: DEFAULT only holds strays).
    """
    name = partition_name(month)
    lower, upper = _instant(month), _instant(add_months(month, 1))
    bound = f"FOR VALUES FROM ('{lower.isoformat()}') TO ('{upper.isoformat()}')"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {DEFAULT_PARTITION} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(f"SELECT 1 FROM {DEFAULT_PARTITION} WHERE ts >= %s AND ts < %s LIMIT 1",  # noqa: S608
                       [lower, upper])
        if cursor.fetchone() is None:
            cursor.execute(f"CREATE TABLE {name} PARTITION OF {TABLE} {bound}")
            return 0
        cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS "
                       "INCLUDING CONSTRAINTS)")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE ts >= %s AND ts < %s "  # noqa: S608
            f"RETURNING *) INSERT INTO {name} SELECT * FROM moved", [lower, upper])
        moved = cursor.rowcount
        cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} {bound}")
        return moved


@dataclass(slots=True)
class Maintenance:
    created: list[str]
    moved: int


def partitions_maintain(*, ahead: int, now: dt.datetime | None = None) -> Maintenance:
    """Months from now to `ahead` months on exist; months that have readings in DEFAULT too."""
    report = Maintenance(created=[], moved=0)
    if not readings_partitioned():
        return report
    current = month_start(now or dt.datetime.now(dt.UTC))
    wanted = {add_months(current, n) for n in range(ahead + 1)}
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT date_trunc('month', ts AT TIME ZONE 'UTC')::date "  # noqa: S608
                       f"FROM {DEFAULT_PARTITION}")
        last = add_months(current, ahead)
        wanted.update(m for (m,) in cursor.fetchall() if EARLIEST_MONTH <= m <= last)
    for month in sorted(wanted - _existing_months()):
        report.moved += partition_create(month=month)
        report.created.append(partition_name(month))
    return report
