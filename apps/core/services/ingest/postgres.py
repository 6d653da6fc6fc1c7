"""The merge on PostgreSQL: fresh rows by binary COPY, the rest staged and merged.

Each chunk is split by a probe of the natural-key index (`_split_fresh`): rows that cannot
meet a stored one are COPYed straight into core_reading with a block of seqs; the others are
COPYed (binary) into a temporary staging table and merged with one `INSERT … SELECT … ON
CONFLICT DO UPDATE … WHERE IS DISTINCT FROM` (`_merge_staged`), so an identical reading is
left alone and a changed one gets a new `seq`.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from operator import itemgetter

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from apps.core import switching
from apps.core.services.ingest.orm import _Merger
from apps.core.services.ingest.records import _FIELDS

# Binary COPY into the staging table: no text formatting here, no text parsing in the server.
_STAGE_TYPES = ("int8", "int2", "timestamptz", "timestamptz", "float8", "bool", "int2", "float8",
                "varchar")

_STAGE_DDL = """
CREATE TEMPORARY TABLE IF NOT EXISTS core_reading_stage (
    device_id bigint, parameter_id smallint, ts timestamptz, period_end timestamptz,
    value double precision, estimated boolean, quality smallint,
    cost double precision, currency varchar(3)
) ON COMMIT DELETE ROWS
"""

_MERGE_SQL = """
WITH merged AS (
    INSERT INTO core_reading AS r
        (device_id, parameter_id, ts, period_end, value, estimated, quality, cost, currency, seq)
    SELECT device_id, parameter_id, ts, period_end, value, estimated, quality, cost, currency,
           nextval('core_reading_seq')
    FROM core_reading_stage
    ON CONFLICT (device_id, parameter_id, ts) DO UPDATE SET
        period_end = EXCLUDED.period_end, value = EXCLUDED.value,
        estimated = EXCLUDED.estimated, quality = EXCLUDED.quality,
        cost = EXCLUDED.cost, currency = EXCLUDED.currency, seq = EXCLUDED.seq
    WHERE (r.period_end, r.value, r.estimated, r.quality, r.cost, r.currency)
          IS DISTINCT FROM
          (EXCLUDED.period_end, EXCLUDED.value, EXCLUDED.estimated, EXCLUDED.quality,
           EXCLUDED.cost, EXCLUDED.currency)
    RETURNING r.id > %s AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM merged
"""
# The highest id drawn so far, by any session (the sequence has no per-session cache).
_ID_WATERMARK_SQL = """
SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM core_reading_id_seq
"""


class _OverlappingMerger(_Merger):
    """PostgreSQL: rows that cannot conflict are COPYed straight in; the rest are merged.

    Each chunk is split first (`_split_fresh`): a row whose natural key cannot exist yet
    goes into core_reading by one binary COPY with its `seq` from one block drawn for the
    chunk — as fast as a bare COPY. The others (re-deliveries, overlaps, corrections) are
    staged and merged. The server writes chunk n while this process validates chunk n + 1.

    One connection runs one statement at a time, so the chunk's writes go to one helper
    thread, on the caller's own connection (the same transaction, shared with Django's
    `inc_thread_sharing`). Every other statement — the next chunk's probe, quarantine rows,
    the daily stat, a rollback — waits for them first, and `__exit__` never returns with a
    write still running. A call that fits in one chunk never starts the thread, nor one
    made with `overlap=False` (each chunk is then written before the next is validated).
    """

    def __init__(self, *, overlap: bool = True) -> None:
        super().__init__()
        self._db = connections[DEFAULT_DB_ALIAS]
        self._overlap = overlap
        self._pool: ThreadPoolExecutor | None = None
        self._pending: tuple[int, Future] | None = None

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            try:
                self._pool.shutdown(wait=True)  # no statement outlives the call, even on error
            finally:
                self._db.dec_thread_sharing()
                switching.overlap_end()

    def start(self, rows: list[tuple], more: bool) -> None:
        # The caller has waited for the previous chunk: the probe sees every row written so far.
        fresh, rest = _split_fresh(self._db, rows)
        if not more or not self._overlap:
            self._done = (len(rows), *_write_chunk(self._db, fresh, rest))
            return
        if self._pool is None:
            self._db.inc_thread_sharing()
            switching.overlap_begin()
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readings-merge")
        self._pending = (len(rows), self._pool.submit(_write_chunk, self._db, fresh, rest))

    def wait(self) -> tuple[int, int, int]:
        if self._pending is None:
            return super().wait()
        (staged, future), self._pending = self._pending, None
        return (staged, *future.result())



def _write_chunk(db: BaseDatabaseWrapper, fresh: list[tuple],
                 rest: list[tuple]) -> tuple[int, int]:
    """(inserted, updated): the fresh rows COPYed in, the others staged and merged."""
    inserted = updated = 0
    if fresh:
        _copy_fresh(db, fresh)
        inserted = len(fresh)
    if rest:
        _stage(db, rest)
        merged_in, updated = _merge_staged(db)
        inserted += merged_in
    return inserted, updated


# Per device-parameter pair of a chunk: its first and last existing instant within the
# chunk's time range (two probes of the natural-key index; pairs with none are not returned).
_PROBE_SQL = """
SELECT p.device_id, p.parameter_id, lo.ts, hi.ts
FROM unnest(%s::bigint[], %s::smallint[]) AS p (device_id, parameter_id)
CROSS JOIN LATERAL (
    SELECT r.ts FROM core_reading r
    WHERE r.device_id = p.device_id AND r.parameter_id = p.parameter_id
      AND r.ts BETWEEN %s AND %s
    ORDER BY r.ts LIMIT 1
) lo
CROSS JOIN LATERAL (
    SELECT r.ts FROM core_reading r
    WHERE r.device_id = p.device_id AND r.parameter_id = p.parameter_id
      AND r.ts BETWEEN %s AND %s
    ORDER BY r.ts DESC LIMIT 1
) hi
"""
# One block of seqs for a chunk's fresh rows, in one round trip. Other writers draw from the
# same sequence meanwhile, so the block is contiguous only most of the time (checked).
_SEQ_BLOCK_SQL = """
SELECT min(v), max(v), count(*) FROM (
    SELECT nextval('core_reading_seq') AS v FROM generate_series(1, %s)
) block
"""
_SEQ_LIST_SQL = "SELECT nextval('core_reading_seq') FROM generate_series(1, %s)"
_pair = itemgetter(0, 1)
_instant = itemgetter(2)


def _split_fresh(db: BaseDatabaseWrapper,
                 rows: list[tuple]) -> tuple[list[tuple], list[tuple]]:
    """(rows whose natural key cannot exist yet, rows that may need a merge).

    A row can only meet an existing one of its device-parameter pair at the same instant,
    and every such instant lies between the pair's first and last existing instant in the
    chunk's range. Rows outside that span — all of them for a pair with nothing in range,
    which is every new meter and every append after the last stored reading — cannot
    conflict. Exact under the deployment's readings lock: no other writer adds readings of
    these devices until this transaction ends.
    """
    pairs = set(map(_pair, rows))
    lo, hi = min(map(_instant, rows)), max(map(_instant, rows))
    devices, parameters = zip(*pairs, strict=True)
    with db.cursor() as cursor:
        cursor.execute(_PROBE_SQL, [list(devices), list(parameters), lo, hi, lo, hi])
        spans = {(d, p): (first, last) for d, p, first, last in cursor.fetchall()}
    if not spans:
        return rows, []
    fresh: list[tuple] = []
    rest: list[tuple] = []
    span_of = spans.get
    for row in rows:
        span = span_of((row[0], row[1]))
        if span is None or not span[0] <= row[2] <= span[1]:
            fresh.append(row)
        else:
            rest.append(row)
    return fresh, rest


def _seq_block(db: BaseDatabaseWrapper, count: int) -> Iterable[int]:
    with db.cursor() as cursor:
        cursor.execute(_SEQ_BLOCK_SQL, [count])
        first, last, drawn = cursor.fetchone()
        if last - first + 1 == drawn:
            return range(first, last + 1)
        # Interleaved with another writer: these seqs are spent (gaps are harmless), draw a
        # list instead.
        cursor.execute(_SEQ_LIST_SQL, [count])
        return [seq for (seq,) in cursor.fetchall()]


def _copy_fresh(db: BaseDatabaseWrapper, rows: list[tuple]) -> None:
    """Rows known not to exist yet: one binary COPY into core_reading, seqs drawn in a block."""
    seqs = _seq_block(db, len(rows))
    with db.cursor() as cursor, cursor.cursor.copy(
        f"COPY core_reading ({', '.join(_FIELDS)}, seq) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types((*_STAGE_TYPES, "int8"))
        write_row = copy.write_row
        for row, seq in zip(rows, seqs, strict=True):
            write_row((*row, seq))


def _stage(db: BaseDatabaseWrapper, rows: list[tuple]) -> None:
    """Load one chunk into the session's staging table (binary COPY)."""
    with db.cursor() as cursor:
        cursor.execute(_STAGE_DDL)
        cursor.execute("TRUNCATE core_reading_stage")
        raw = cursor.cursor  # psycopg 3 cursor: COPY streams the chunk in one round trip
        with raw.copy(
            f"COPY core_reading_stage ({', '.join(_FIELDS)}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(_STAGE_TYPES)
            write_row = copy.write_row
            for row in rows:
                write_row(row)


def _merge_staged(db: BaseDatabaseWrapper) -> tuple[int, int]:
    """(inserted, updated) by the merge.

    A partitioned table cannot return `xmax` (PostgreSQL: "cannot retrieve a system column
    in this context"), so a row counts as inserted when its id is above the highest id
    drawn before the merge: an updated row keeps its id, and it is older than this merge
    since only this transaction writes the deployment's readings (the readings lock).
    """
    with db.cursor() as cursor:
        cursor.execute(_ID_WATERMARK_SQL)
        (watermark,) = cursor.fetchone()
        cursor.execute(_MERGE_SQL, [watermark])
        inserted, updated = cursor.fetchone()
    return inserted, updated

