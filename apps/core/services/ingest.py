"""`readings_ingest`: validate readings, upsert them in bulk, quarantine the invalid ones.

On PostgreSQL each chunk is COPYed (binary) into a temporary staging table and merged with
one `INSERT … SELECT … ON CONFLICT DO UPDATE … WHERE IS DISTINCT FROM`, so an identical
reading is left alone (unchanged) and a changed one gets a new `seq`; while the server merges
one chunk, this process validates the next. Elsewhere (the SQLite demo) the same contract is
met with bulk ORM calls. Input is consumed in chunks: memory depends on the chunk size, not on
the batch. `tests/benchmarks/test_ingest_bench.py` measures it against bare COPY.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice
from operator import itemgetter
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Max
from django.utils import timezone

from apps.core.locks import lock_deployment_readings
from apps.core.models import (
    DailyIngestStat,
    Deployment,
    Device,
    Parameter,
    Quarantine,
    Reading,
    ReadingCommit,
    Run,
)

UTC = dt.UTC
CHUNK_SIZE = 20_000
_FIELDS = ("device_id", "parameter_id", "ts", "period_end", "value", "estimated", "quality",
           "cost", "currency")
# Binary COPY into the staging table: no text formatting here, no text parsing in the server.
_STAGE_TYPES = ("int8", "int2", "timestamptz", "timestamptz", "float8", "bool", "int2", "float8",
                "varchar")
# `Reading.Quality.values` rebuilds its list on every access; read it once.
_QUALITY_VALUES = Reading.Quality.values
# Integers this far from zero always convert to a finite float; larger ones take the slow path.
_FAST_INT_LIMIT = 2**1000
# Instants the hub accepts. Far beyond any meter's life, and far enough from the ends of the
# calendar that every time zone can still write them when a reading is delivered.
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


@dataclass(slots=True)
class ReadingIn:
    """One incoming reading, as an edge (API, sync, replay) hands it over."""

    device: str  # the device's external id
    parameter: str  # the parameter key, e.g. "active_energy_delta"
    ts: dt.datetime | str
    value: Any
    period_end: dt.datetime | str | None = None
    estimated: bool = False
    quality: int = Reading.Quality.GOOD
    cost: Any = None
    currency: str = ""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ReadingIn:
        """Build from a raw dict; missing keys become values the validation refuses."""
        return cls(
            device=data.get("device", ""),
            parameter=data.get("parameter", ""),
            ts=data.get("ts", ""),
            value=data.get("value"),
            period_end=data.get("period_end"),
            estimated=data.get("estimated", False),
            quality=data.get("quality", Reading.Quality.GOOD),
            cost=data.get("cost"),
            currency=data.get("currency") or "",
        )

    def as_payload(self) -> dict[str, Any]:
        """A JSON-safe copy for the quarantine (NaN and infinity kept as text)."""
        return {
            "device": _json_safe(self.device),
            "parameter": _json_safe(self.parameter),
            "ts": _json_safe(self.ts),
            "value": _json_safe(self.value),
            "period_end": _json_safe(self.period_end),
            "estimated": _json_safe(self.estimated),
            "quality": _json_safe(self.quality),
            "cost": _json_safe(self.cost),
            "currency": _json_safe(self.currency),
        }


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    reason: str


@dataclass(slots=True)
class IngestResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    # Repeats of a natural key within one call: the last one wins, the earlier are counted here.
    duplicates: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def as_counts(self) -> dict[str, int]:
        return {
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "quarantined": self.quarantined,
            "duplicates": self.duplicates,
        }


class InvalidReading(ValueError):
    pass


def readings_ingest(
    *,
    deployment: Deployment,
    records: Iterable[ReadingIn],
    source: str,
    run: Run | None = None,
    quarantine: bool = True,
    chunk_size: int = CHUNK_SIZE,
) -> IngestResult:
    """Store valid readings of one deployment; quarantine the rest with their reason.

    All of it commits together or not at all. With `quarantine=False` the invalid records
    are only reported in `rejections` (used when replaying quarantined records).
    """
    result = IngestResult()
    parameters = {p.key: p for p in Parameter.objects.all()}
    index = 0
    with transaction.atomic():
        # The devices are read under the lock: no device can be deleted from here to commit,
        # which is what stands in for the foreign keys the readings table does not have.
        lock_deployment_readings(deployment.pk)
        devices = dict(
            Device.objects.filter(deployment=deployment).values_list("external_id", "id")
        )
        validate = _validator(devices, parameters, deployment)
        with _merger() as merger:
            for chunk, more in _chunks(records, chunk_size):
                rows: dict[tuple, tuple] = {}  # by natural key: the last repeat wins
                valid = 0
                bad: list[Quarantine] = []
                for record in chunk:
                    try:
                        row = validate(record)
                    except InvalidReading as exc:
                        result.rejections.append(Rejection(index, _text_safe(str(exc))))
                        if quarantine:
                            bad.append(
                                Quarantine(
                                    deployment=deployment,
                                    kind=Quarantine.Kind.READING,
                                    source=source,
                                    reason=_text_safe(str(exc)),
                                    payload=record.as_payload(),
                                    run=run,
                                )
                            )
                    else:
                        rows[row[:3]] = row
                        valid += 1
                    index += 1
                result.duplicates += valid - len(rows)
                _add(result, merger.wait())  # the previous chunk's merge, if still running
                result.quarantined += len(bad) if quarantine else 0
                if bad:
                    Quarantine.objects.bulk_create(bad)
                if rows:
                    merger.start(list(rows.values()), more)
            _add(result, merger.wait())
        if result.inserted or result.updated:
            _commit_record(deployment)
        _count_day(deployment, result.accepted, result.quarantined)
    return result


def _commit_record(deployment: Deployment) -> None:
    """Note this transaction's place in the deployment's change order (see ReadingCommit).

    Still under the readings lock: the next writer of the deployment takes its time and its
    seqs after this commit. The clock is the database's, one for every web and worker host.
    """
    top = Reading.objects.aggregate(m=Max("seq"))["m"] or 0
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT clock_timestamp()")
            at = cursor.fetchone()[0]
    else:
        at = timezone.now()
    ReadingCommit.objects.create(deployment=deployment, seq=top, at=at)


def _add(result: IngestResult, merged: tuple[int, int, int]) -> None:
    staged, inserted, updated = merged
    result.inserted += inserted
    result.updated += updated
    result.unchanged += staged - inserted - updated


def _chunks(records: Iterable[ReadingIn], size: int) -> Iterator[tuple[list[ReadingIn], bool]]:
    """Chunks of `size` records, each with whether more records follow it."""
    iterator = iter(records)
    chunk = list(islice(iterator, size))
    while chunk:
        head = list(islice(iterator, 1))
        yield chunk, bool(head)
        chunk = head + list(islice(iterator, size - 1)) if head else []


def _validate(
    record: ReadingIn,
    devices: dict[str, int],
    parameters: dict[str, Parameter],
    deployment: Deployment,
) -> tuple:
    device_id = devices.get(record.device) if isinstance(record.device, str) else None
    if device_id is None:
        # Same words for "no such device" and "another deployment's device": nothing leaks.
        raise InvalidReading(
            f"unknown device '{record.device}' in deployment '{deployment.slug}'; "
            "create the device first or fix its external id"
        )
    parameter = parameters.get(record.parameter) if isinstance(record.parameter, str) else None
    if parameter is None:
        raise InvalidReading(
            f"unknown parameter '{record.parameter}'; use a key of the parameter catalogue"
        )
    ts = _aware(record.ts, "timestamp")
    value = _finite(record.value, "value")
    period_end = None
    if parameter.kind == Parameter.Kind.INTERVAL:
        if record.period_end in (None, ""):
            raise InvalidReading(
                f"'{parameter.key}' is interval data: the reading needs a period_end"
            )
        period_end = _aware(record.period_end, "period_end")
        if period_end <= ts:
            raise InvalidReading(
                f"period_end {period_end.isoformat()} is not after ts {ts.isoformat()}"
            )
    elif record.period_end not in (None, ""):
        raise InvalidReading(
            f"'{parameter.key}' is {parameter.kind} data: a reading at an instant has no "
            "period_end; use an interval parameter for values over a period"
        )
    cost = None if record.cost in (None, "") else _finite(record.cost, "cost")
    currency = record.currency or ""
    if not isinstance(currency, str):
        raise InvalidReading("currency must be text: an ISO 4217 code like EUR")
    if cost is not None and not currency:
        raise InvalidReading("cost given without currency; add an ISO 4217 code like EUR")
    if currency and not (len(currency) == 3 and currency.isascii() and currency.isupper()
                         and currency.isalpha()):
        raise InvalidReading(f"currency '{currency}' is not an ISO 4217 code like EUR")
    if not isinstance(record.estimated, bool):
        raise InvalidReading("estimated must be true or false")
    quality = record.quality
    if quality not in _QUALITY_VALUES or isinstance(quality, bool):
        raise InvalidReading(f"quality must be one of {_QUALITY_VALUES}")
    return (device_id, parameter.pk, ts, period_end, value, record.estimated, int(quality), cost,
            currency)


def _validator(
    devices: dict[str, int],
    parameters: dict[str, Parameter],
    deployment: Deployment,
) -> Callable[[ReadingIn], tuple]:
    """`_validate` with the common, well-typed record checked inline (a million times a batch).

    Anything off the fast path — an unknown key, a string that does not parse, a naive or
    non-finite value, a cost, an odd type — goes through `_validate` itself, so results and
    error messages are exactly `_validate`'s.
    """
    kinds = {key: (p.pk, p.kind == Parameter.Kind.INTERVAL) for key, p in parameters.items()}
    device_get, kind_get = devices.get, kinds.get
    datetime, fromisoformat, utc = dt.datetime, dt.datetime.fromisoformat, UTC
    isfinite = math.isfinite
    earliest, latest = EARLIEST, LATEST
    qualities = frozenset(_QUALITY_VALUES)
    quality_types = frozenset({int, Reading.Quality})
    currencies: set[str] = set()  # codes already found well-formed in this call

    def aware(value: Any) -> dt.datetime | None:
        if type(value) is datetime and value.tzinfo is utc:  # as the edges hand most over
            return value if earliest <= value < latest else None
        if type(value) is str:
            try:
                value = fromisoformat(value)
            except ValueError:
                return None
        elif type(value) is not datetime:
            return None
        if value.utcoffset() is None:
            return None
        try:
            value = value.astimezone(utc)
        except OverflowError:
            return None
        return value if earliest <= value < latest else None

    def validate(record: ReadingIn) -> tuple:
        device, key = record.device, record.parameter
        if type(device) is not str or type(key) is not str:
            return _validate(record, devices, parameters, deployment)
        device_id = device_get(device)
        parameter = kind_get(key)
        ts = None if device_id is None or parameter is None else aware(record.ts)
        if ts is not None:
            value = record.value
            if type(value) is int and -_FAST_INT_LIMIT < value < _FAST_INT_LIMIT:
                value = float(value)
            period_end = record.period_end
            if parameter[1]:
                period_end = aware(period_end)
                period_ok = period_end is not None and period_end > ts
            else:
                period_ok = period_end is None
            estimated, quality = record.estimated, record.quality
            cost, currency = record.cost, record.currency
            if cost is None:
                cost_ok = not currency
                currency = ""
            else:
                if type(cost) is int and -_FAST_INT_LIMIT < cost < _FAST_INT_LIMIT:
                    cost = float(cost)
                cost_ok = (type(cost) is float and isfinite(cost) and type(currency) is str
                           and (currency in currencies or _iso_currency(currency, currencies)))
            if (
                type(value) is float
                and isfinite(value)
                and period_ok
                and cost_ok
                and (estimated is True or estimated is False)
                and type(quality) in quality_types
                and quality in qualities
            ):
                return (device_id, parameter[0], ts, period_end, value, estimated, int(quality),
                        cost, currency)
        return _validate(record, devices, parameters, deployment)

    return validate


def _iso_currency(code: Any, seen: set[str]) -> bool:
    """Whether `code` has the shape of an ISO 4217 code (EUR); remembers the good ones."""
    if (type(code) is str and len(code) == 3 and code.isascii() and code.isupper()
            and code.isalpha()):
        seen.add(code)
        return True
    return False


def _aware(value: dt.datetime | str, what: str) -> dt.datetime:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise InvalidReading(
                f"{what} '{value}' is not ISO 8601 (e.g. 2026-06-01T00:00:00+02:00)"
            ) from None
    elif not isinstance(value, dt.datetime):
        raise InvalidReading(f"{what} must be an ISO 8601 timestamp with an offset")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidReading(
            f"{what} '{value.isoformat()}' has no UTC offset; send it with an offset or Z"
        )
    try:
        instant = value.astimezone(UTC)
    except OverflowError:
        instant = None
    if instant is None or not EARLIEST <= instant < LATEST:
        raise InvalidReading(
            f"{what} '{value.isoformat()}' is outside the accepted range "
            f"{EARLIEST.date().isoformat()} to {LATEST.date().isoformat()} (UTC)"
        )
    return instant


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise InvalidReading(f"{what} must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise InvalidReading(f"{what} '{value}' is not a number") from None
    if not math.isfinite(number):
        raise InvalidReading(f"{what} {value!r} is not a finite number")
    return number


def _text_safe(value: str) -> str:
    # PostgreSQL text and jsonb cannot hold NUL; keep it visible instead of failing the batch.
    return value.replace("\x00", "\\x00")


def _json_safe(value: Any) -> Any:
    if isinstance(value, str):
        return _text_safe(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return _text_safe(repr(value))


def _count_day(deployment: Deployment, accepted: int, quarantined: int) -> None:
    if not (accepted or quarantined):
        return
    stat, _ = DailyIngestStat.objects.get_or_create(
        deployment=deployment, day=timezone.now().date()
    )
    DailyIngestStat.objects.filter(pk=stat.pk).update(
        accepted=F("accepted") + accepted, quarantined=F("quarantined") + quarantined
    )


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


class _Merger:
    """Merges each chunk as it comes, inline: the SQLite demo's bulk ORM merge."""

    def __init__(self) -> None:
        self._done = (0, 0, 0)

    def __enter__(self) -> _Merger:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def start(self, rows: list[tuple], more: bool) -> None:
        self._done = (len(rows), *_merge_generic(rows))

    def wait(self) -> tuple[int, int, int]:
        done, self._done = self._done, (0, 0, 0)
        return done


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
    write still running. A call that fits in one chunk never starts the thread.
    """

    def __init__(self) -> None:
        super().__init__()
        self._db = connections[DEFAULT_DB_ALIAS]
        self._pool: ThreadPoolExecutor | None = None
        self._pending: tuple[int, Future] | None = None

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # no statement outlives the call, even on error
            self._db.dec_thread_sharing()

    def start(self, rows: list[tuple], more: bool) -> None:
        # The caller has waited for the previous chunk: the probe sees every row written so far.
        fresh, rest = _split_fresh(self._db, rows)
        if not more:
            self._done = (len(rows), *_write_chunk(self._db, fresh, rest))
            return
        if self._pool is None:
            self._db.inc_thread_sharing()
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readings-merge")
        self._pending = (len(rows), self._pool.submit(_write_chunk, self._db, fresh, rest))

    def wait(self) -> tuple[int, int, int]:
        if self._pending is None:
            return super().wait()
        (staged, future), self._pending = self._pending, None
        return (staged, *future.result())


def _merger() -> _Merger:
    return _OverlappingMerger() if connection.vendor == "postgresql" else _Merger()


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


def _merge_generic(rows: list[tuple]) -> tuple[int, int]:
    """Bulk ORM merge for backends without COPY (the SQLite demo): never row by row."""
    existing: dict[tuple, Reading] = {}
    device_ids = {r[0] for r in rows}
    parameter_ids = {r[1] for r in rows}
    lo, hi = min(r[2] for r in rows), max(r[2] for r in rows)
    for reading in Reading.objects.filter(
        device_id__in=device_ids, parameter_id__in=parameter_ids, ts__gte=lo, ts__lte=hi
    ).iterator(chunk_size=5_000):
        existing[(reading.device_id, reading.parameter_id, reading.ts)] = reading
    seq = Reading.objects.aggregate(m=Max("seq"))["m"] or 0
    new: list[Reading] = []
    changed: list[Reading] = []
    for row in rows:
        values = dict(zip(_FIELDS, row, strict=True))
        current = existing.get(row[:3])
        if current is None:
            seq += 1
            new.append(Reading(seq=seq, **values))
        elif any(getattr(current, name) != values[name] for name in _FIELDS[3:]):
            seq += 1
            for name in _FIELDS[3:]:
                setattr(current, name, values[name])
            current.seq = seq
            changed.append(current)
    Reading.objects.bulk_create(new, batch_size=1_000)
    Reading.objects.bulk_update(changed, [*_FIELDS[3:], "seq"], batch_size=1_000)
    return len(new), len(changed)
