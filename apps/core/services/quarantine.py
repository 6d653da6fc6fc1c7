"""The quarantine: the one writer every app keeps refused records with (core's ingest
too), and discarding entries. Replaying them once ops fixed them (or the missing device now
exists) is in `replay`, which goes through the ingest and so cannot live here.

One source format, `<app>:<object>:<id>` (`Quarantine.source_for`) (`dexma:datasource:hub-madrid`,
`wattics:stream:wm-1`, `pull:connection:acme`, `partner_api:key:ab12`), so the admin's
search by source finds one thing's entries whoever wrote them. One payload shape:

    {<the record in the hub's terms>..., "raw": <what arrived, if not that>,
     "context": {<what the writer knew beside it: ids, the platform's answer>}}

A reading's payload has the keys of `ReadingIn` at the top, so it replays as it stands.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import reduce
from operator import or_
from typing import Any

from django.db.models import Q
from django.utils import timezone

from apps.core.models import Quarantine, Reading, Run

_ABSENT = object()
_CHECK_CHUNK = 200


@dataclass(slots=True)
class Refused:
    """One record to keep: why, and its payload (see `quarantine_payload`)."""

    reason: str
    payload: dict[str, Any] = field(default_factory=dict)


def quarantine_payload(record: Mapping[str, Any] | None = None, *, raw: Any = _ABSENT,
                       context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    payload = dict(record or {})
    if raw is not _ABSENT:
        payload["raw"] = raw
    if context:
        payload["context"] = dict(context)
    return payload


def reading_payload(reading: Reading) -> dict[str, Any]:
    """A stored reading in the shape `ReadingIn` reads (device and parameter loaded)."""
    return {"device": reading.device.external_id, "parameter": reading.parameter.key,
            "ts": reading.ts.isoformat(), "value": reading.value,
            "period_end": reading.period_end.isoformat() if reading.period_end else None}


def _key(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, default=str)


def quarantine_add(
    *,
    source: str,
    entries: Iterable[Refused],
    deployment_id: int | None,
    kind: str = Quarantine.Kind.READING,
    run: Run | None = None,
) -> int:
    """Keep each refused record with its reason; the number of entries written.

    A record refused again (a lookback re-reads it, a batch is rebuilt) is not added twice
    while an entry of the same source and payload is still open.
    """
    fresh: dict[str, Refused] = {}
    for entry in entries:
        fresh.setdefault(_key(entry.payload), entry)
    if not fresh:
        return 0
    payloads = [e.payload for e in fresh.values()]
    open_entries = Quarantine.objects.filter(deployment_id=deployment_id, source=source,
                                             status=Quarantine.Status.OPEN)
    for start in range(0, len(payloads), _CHECK_CHUNK):
        same = reduce(or_, (Q(payload=p) for p in payloads[start:start + _CHECK_CHUNK]))
        for payload in open_entries.filter(same).values_list("payload", flat=True):
            fresh.pop(_key(payload), None)
    Quarantine.objects.bulk_create(
        Quarantine(deployment_id=deployment_id, kind=kind, source=source, reason=e.reason,
                   payload=e.payload, run=run)
        for e in fresh.values())
    return len(fresh)


def quarantine_discard(*, entries: Iterable[Quarantine]) -> int:
    ids = [e.pk for e in entries if e.status == Quarantine.Status.OPEN]
    return Quarantine.objects.filter(pk__in=ids).update(
        status=Quarantine.Status.DISCARDED, resolved_at=timezone.now()
    )
