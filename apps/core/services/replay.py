"""Replaying quarantined readings: ingest each open entry again once ops fixed its cause."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from apps.core.models import Quarantine
from apps.core.services.ingest import ReadingIn, readings_ingest


@dataclass(slots=True)
class ReplayResult:
    replayed: int = 0
    still_invalid: int = 0
    skipped: int = 0


def quarantine_replay(*, entries: Iterable[Quarantine]) -> ReplayResult:
    """Ingest each open reading entry again; those now valid are marked replayed.

    An entry that still fails keeps its place with the new reason: replay never creates
    a second quarantine row for the same record.
    """
    result = ReplayResult()
    by_deployment: dict[int, list[Quarantine]] = defaultdict(list)
    for entry in entries:
        if (
            entry.status != Quarantine.Status.OPEN
            or entry.kind != Quarantine.Kind.READING
            or entry.deployment_id is None
            or not isinstance(entry.payload, dict)
        ):
            result.skipped += 1
            continue
        by_deployment[entry.deployment_id].append(entry)
    for group in by_deployment.values():
        with transaction.atomic():
            outcome = readings_ingest(
                deployment=group[0].deployment,
                records=[ReadingIn.from_mapping(e.payload) for e in group],
                source="quarantine-replay",
                quarantine=False,
            )
            failed = {r.index: r.reason for r in outcome.rejections}
            now = timezone.now()
            for index, entry in enumerate(group):
                if index in failed:
                    entry.reason = failed[index]
                    result.still_invalid += 1
                else:
                    entry.status = Quarantine.Status.REPLAYED
                    entry.resolved_at = now
                    result.replayed += 1
            Quarantine.objects.bulk_update(group, ["reason", "status", "resolved_at"])
    return result
