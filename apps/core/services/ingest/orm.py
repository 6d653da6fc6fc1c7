"""The merge elsewhere than PostgreSQL (the SQLite demo): bulk ORM calls, never row by row."""

from __future__ import annotations

from django.db.models import Max

from apps.core.models import Reading
from apps.core.services.ingest.records import _FIELDS


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
