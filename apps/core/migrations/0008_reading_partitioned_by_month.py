"""core_reading becomes a table partitioned by month on `ts` (PostgreSQL only).

A partition per UTC month (`core_reading_pYYYYMM`) for every month holding readings and a
few months ahead, plus a DEFAULT partition for anything else; `manage.py readings_partitions`
keeps creating months ahead from then on. A partitioned table's primary key must contain the
partition key, so in the database it is (id, ts); Django keeps `id` as the model's primary key
(ids stay unique: one sequence draws them). The natural key (device, parameter, ts) contains
`ts` and stays unique; the `seq` and BRIN indexes become partitioned indexes of the same names.

Existing readings are copied in this migration's transaction, up to
READINGS_PARTITION_COPY_MAX_ROWS. A larger table is refused with a pointer to the online
procedure in docs/operations.md. SQLite (the embedded demo) keeps the plain table.
"""

import datetime as dt

from django.conf import settings
from django.db import migrations

TABLE = "core_reading"
OLD = "core_reading_unpartitioned"
SEQUENCE = "core_reading_id_seq"
AHEAD_MONTHS = 3
# Months before this hold no real meter's data: such readings go to the DEFAULT partition
# rather than one partition each.
EARLIEST_MONTH = dt.date(2000, 1, 1)

COLUMNS = """
    id bigint NOT NULL,
    ts timestamp with time zone NOT NULL,
    period_end timestamp with time zone,
    value double precision NOT NULL,
    estimated boolean NOT NULL,
    quality smallint NOT NULL,
    cost double precision,
    currency varchar(3) NOT NULL,
    seq bigint NOT NULL,
    device_id bigint NOT NULL,
    parameter_id smallint NOT NULL
"""
COLUMN_NAMES = ("id, ts, period_end, value, estimated, quality, cost, currency, seq, "
                "device_id, parameter_id")


def _add_months(month: dt.date, count: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + count
    return dt.date(index // 12, index % 12 + 1, 1)


def _month_partition(cursor, month: dt.date) -> None:
    following = _add_months(month, 1)
    cursor.execute(
        f"CREATE TABLE {TABLE}_p{month:%Y%m} PARTITION OF {TABLE} "
        f"FOR VALUES FROM ('{month.isoformat()} 00:00+00') TO ('{following.isoformat()} 00:00+00')"
    )


def _indexes(cursor, seq_index: str, *, primary_key: str) -> None:
    cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT core_reading_pkey PRIMARY KEY ({primary_key})")
    cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT reading_natural_key "
                   "UNIQUE (device_id, parameter_id, ts)")
    cursor.execute(f"CREATE INDEX {seq_index} ON {TABLE} (seq)")
    cursor.execute(f"CREATE INDEX reading_ts_brin ON {TABLE} USING brin (ts)")
    for name, check in (
        ("reading_value_finite",
         "value >= '-1.7976931348623157e308'::double precision "
         "AND value <= '1.7976931348623157e308'::double precision"),
        ("reading_period_end_after_start", "period_end IS NULL OR period_end > ts"),
        ("reading_cost_has_currency", "cost IS NULL OR NOT currency::text = ''::text"),
    ):
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} CHECK ({check})")


def _set_aside(cursor) -> tuple[str, int, bool]:
    """Rename the table, its indexes and its id sequence out of the way.

    Returns the seq index's name and the id sequence's position, for the table replacing it.
    """
    cursor.execute(
        "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0] "
        "WHERE x.indrelid = %s::regclass AND x.indnatts = 1 AND a.attname = 'seq' "
        "AND x.indisunique = false", [TABLE])
    row = cursor.fetchone()
    seq_index = row[0] if row else "core_reading_seq_31982714"
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
    (old_sequence,) = cursor.fetchone()
    cursor.execute(f"SELECT last_value, is_called FROM {old_sequence}")  # noqa: S608
    last_value, is_called = cursor.fetchone()
    cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD}")
    cursor.execute("SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                   "WHERE x.indrelid = %s::regclass", [OLD])
    for (name,) in cursor.fetchall():
        # Renaming a constraint's index renames the constraint too.
        cursor.execute(f'ALTER INDEX "{name}" RENAME TO "{name[:40]}_unpartitioned"')
    if old_sequence.split(".")[-1] == SEQUENCE:
        cursor.execute(f"ALTER SEQUENCE {old_sequence} RENAME TO {SEQUENCE}_unpartitioned")
    return seq_index, last_value, is_called


def _refuse_if_large(cursor) -> None:
    limit = settings.READINGS_PARTITION_COPY_MAX_ROWS
    cursor.execute(f"SELECT count(*) FROM (SELECT 1 FROM {TABLE} LIMIT %s) head", [limit + 1])  # noqa: S608
    (rows,) = cursor.fetchone()
    if rows > limit:
        raise RuntimeError(
            f"core_reading holds more than {limit:,} readings "
            "(READINGS_PARTITION_COPY_MAX_ROWS): copying them inside this migration would "
            "hold the table for too long. Move the table with the online procedure in "
            "docs/operations.md (\"Partitioning a large readings table\"), which ends by "
            "marking this migration applied, or raise the setting to copy it here."
        )


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [TABLE])
        if cursor.fetchone()[0] == "p":  # moved by the online procedure already
            return
        _refuse_if_large(cursor)
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        seq_index, last_value, is_called = _set_aside(cursor)
        cursor.execute(f"CREATE SEQUENCE {SEQUENCE} AS bigint")
        cursor.execute("SELECT setval(%s, %s, %s)", [SEQUENCE, last_value, is_called])
        cursor.execute(f"CREATE TABLE {TABLE} ({COLUMNS}) PARTITION BY RANGE (ts)")
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{SEQUENCE}')")
        cursor.execute(f"ALTER SEQUENCE {SEQUENCE} OWNED BY {TABLE}.id")
        cursor.execute(
            f"SELECT DISTINCT date_trunc('month', ts AT TIME ZONE 'UTC')::date FROM {OLD}")  # noqa: S608
        today = dt.datetime.now(dt.UTC).date().replace(day=1)
        last = _add_months(today, AHEAD_MONTHS)
        months = {m for (m,) in cursor.fetchall() if EARLIEST_MONTH <= m <= last}
        months.update(_add_months(today, n) for n in range(AHEAD_MONTHS + 1))
        for month in sorted(months):
            _month_partition(cursor, month)
        cursor.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
        cursor.execute(f"INSERT INTO {TABLE} ({COLUMN_NAMES}) SELECT {COLUMN_NAMES} FROM {OLD}")  # noqa: S608
        _indexes(cursor, seq_index, primary_key="id, ts")
        cursor.execute(f"DROP TABLE {OLD}")
        cursor.execute(f"ANALYZE {TABLE}")


def unpartition(apps, schema_editor):
    """Back to one plain table (copied in this transaction, whatever its size)."""
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [TABLE])
        if cursor.fetchone()[0] != "p":
            return
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        seq_index, last_value, is_called = _set_aside(cursor)
        cursor.execute(f"CREATE TABLE {TABLE} ({COLUMNS})")
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY")
        cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, %s)",
                       [TABLE, last_value, is_called])
        cursor.execute(f"INSERT INTO {TABLE} ({COLUMN_NAMES}) SELECT {COLUMN_NAMES} FROM {OLD}")  # noqa: S608
        _indexes(cursor, seq_index, primary_key="id")
        cursor.execute(f"DROP TABLE {OLD} CASCADE")
        cursor.execute(f"DROP SEQUENCE IF EXISTS {SEQUENCE}_unpartitioned")


class Migration(migrations.Migration):
    dependencies = [("core", "0007_quarantine_one_source_format")]

    # The model keeps `id` as its primary key: only the database changes.
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(partition, unpartition)],
            state_operations=[],
        ),
    ]
