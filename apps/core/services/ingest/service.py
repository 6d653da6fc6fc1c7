"""`readings_ingest`: validate readings chunk by chunk, hand the valid ones to a merger.

The transaction, the deployment's readings lock, the quarantine, the change order
(ReadingCommit) and the daily counts live here; validation in `validation`, the merge in
`postgres` (COPY and staged merge) or `orm` (the SQLite demo).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from operator import itemgetter, lt

from django.db import connection, transaction
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
from apps.core.services.ingest.orm import _Merger
from apps.core.services.ingest.postgres import _OverlappingMerger
from apps.core.services.ingest.records import (
    IngestResult,
    InvalidReading,
    ReadingIn,
    Rejection,
    _text_safe,
)
from apps.core.services.ingest.validation import _validator
from apps.core.services.quarantine import Refused, quarantine_add

CHUNK_SIZE = 20_000


def readings_ingest(
    *,
    deployment: Deployment,
    records: Iterable[ReadingIn],
    source: str,
    run: Run | None = None,
    quarantine: bool = True,
    chunk_size: int = CHUNK_SIZE,
    overlap: bool = True,
) -> IngestResult:
    """Store valid readings of one deployment; quarantine the rest with their reason.

    All of it commits together or not at all. With `quarantine=False` the invalid records
    are only reported in `rejections` (used when replaying quarantined records). With
    `overlap=False` each chunk is written before the next is validated, on the caller's
    thread: for a caller that already runs the ingest beside its own work (the pull's
    store), where another helper thread only adds switching.
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
        with _merger(overlap) as merger:
            for chunk, more in _chunks(records, chunk_size):
                rows, failed = _validate_chunk(validate, chunk)
                unique = _last_of_each_key(rows)
                result.duplicates += len(rows) - len(unique)
                bad: list[Refused] = []
                for position, exc in failed:
                    reason = _text_safe(str(exc))
                    result.rejections.append(Rejection(index + position, reason, exc.field))
                    bad.append(Refused(reason, chunk[position].as_payload()))
                index += len(chunk)
                _add(result, merger.wait())  # the previous chunk's merge, if still running
                if bad and quarantine:
                    # The one writer: a record refused again while its entry is still open
                    # (a retried push) is not kept twice.
                    result.quarantined += quarantine_add(
                        source=source, entries=bad, deployment_id=deployment.pk,
                        kind=Quarantine.Kind.READING, run=run)
                if unique:
                    merger.start(unique, more)
            _add(result, merger.wait())
        if result.inserted or result.updated:
            _commit_record(deployment)
        _count_day(deployment, result.accepted, result.quarantined)
    return result


def _validate_chunk(
    validate: Callable[[ReadingIn], tuple], chunk: list[ReadingIn]
) -> tuple[list[tuple], list[tuple[int, InvalidReading]]]:
    """(rows of the valid records, (position, error) of the others), in chunk order.

    A chunk without a bad record, the common case, is validated by one `map`; a chunk with
    one is validated again record by record (at most twice the work, only for that chunk).
    """
    try:
        return list(map(validate, chunk)), []
    except InvalidReading:
        pass
    rows: list[tuple] = []
    failed: list[tuple[int, InvalidReading]] = []
    append = rows.append
    for position, record in enumerate(chunk):
        try:
            append(validate(record))
        except InvalidReading as exc:
            failed.append((position, exc))
    return rows, failed


_natural_key = itemgetter(0, 1, 2)


def _last_of_each_key(rows: list[tuple]) -> list[tuple]:
    """`rows` with one row per natural key: the last repeat wins, in first-seen order.

    Rows in strictly ascending key order (a push, device by device) cannot repeat a key: one
    comparison per neighbour proves it. Otherwise (a sync's pages, instant by instant) a set
    of the keys proves it; only a chunk that does repeat one is rebuilt.
    """
    keys = list(map(_natural_key, rows))
    if all(map(lt, keys, islice(keys, 1, None))) or len(set(keys)) == len(keys):
        return rows
    return list(dict(zip(keys, rows, strict=True)).values())


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



def _count_day(deployment: Deployment, accepted: int, quarantined: int) -> None:
    if not (accepted or quarantined):
        return
    stat, _ = DailyIngestStat.objects.get_or_create(
        deployment=deployment, day=timezone.now().date()
    )
    DailyIngestStat.objects.filter(pk=stat.pk).update(
        accepted=F("accepted") + accepted, quarantined=F("quarantined") + quarantined
    )


def _merger(overlap: bool) -> _Merger:
    return _OverlappingMerger(overlap=overlap) if connection.vendor == "postgresql" else _Merger()

