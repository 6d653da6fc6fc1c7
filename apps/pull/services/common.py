"""Small pieces the entity and usage stages share: stage counts and the quarantine."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from apps.core.models import Quarantine, Run
from apps.pull.models import Connection


@dataclass(slots=True)
class StageCounts:
    fetched: int = 0
    stored: int = 0
    unchanged: int = 0
    quarantined: int = 0
    deactivated: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def quarantine_record(
    *,
    connection: Connection,
    role: str,
    reason: str,
    raw: Any,
    mapped: dict[str, Any] | None = None,
    kind: str = Quarantine.Kind.RECORD,
    run: Run | None = None,
) -> bool:
    """Keep a record that failed validation with its raw form and the reason.

    The same record failing again on a later run (lookback re-reads it) is not added twice
    while the first entry is still open. Returns whether a new entry was written.
    """
    source = f"pull:{connection.key}:{role}"
    payload = {**(mapped or {}), "raw": raw}
    exists = Quarantine.objects.filter(
        deployment_id=connection.deployment_id, source=source,
        status=Quarantine.Status.OPEN, payload=payload,
    ).exists()
    if exists:
        return False
    Quarantine.objects.create(
        deployment_id=connection.deployment_id, kind=kind, source=source, reason=reason,
        payload=payload, run=run,
    )
    return True
