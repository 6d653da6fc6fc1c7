"""Small pieces the entity and usage stages share: stage counts and the quarantine."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from apps.core.models import Quarantine, Run
from apps.core.services.quarantine import (
    Refused,
    quarantine_add,
    quarantine_payload,
)
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
    return bool(quarantine_add(
        source=Quarantine.source_for("pull", "connection", connection.key),
        entries=[Refused(reason, quarantine_payload(mapped, raw=raw,
                                                    context={"role": role}))],
        deployment_id=connection.deployment_id, kind=kind, run=run,
    ))
