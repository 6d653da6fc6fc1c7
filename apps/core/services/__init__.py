"""Writes. Keyword-only, typed, named <noun>_<verb>."""

from apps.core.services.ingest import IngestResult, ReadingIn, Rejection, readings_ingest
from apps.core.services.outbox import (
    DispatchResult,
    Outcome,
    batch_enqueue,
    batch_record,
    batch_requeue,
    batches_claim,
    link_get_or_create,
    link_planned_seq,
    link_reactivate,
    outbox_dispatch,
)
from apps.core.services.quarantine import (
    Refused,
    quarantine_add,
    quarantine_discard,
    quarantine_payload,
    reading_payload,
)
from apps.core.services.replay import quarantine_replay
from apps.core.services.runs import run_finish, run_logged, run_start

__all__ = [
    "DispatchResult",
    "IngestResult",
    "Outcome",
    "ReadingIn",
    "Refused",
    "Rejection",
    "batch_enqueue",
    "batch_record",
    "batch_requeue",
    "batches_claim",
    "link_get_or_create",
    "link_planned_seq",
    "link_reactivate",
    "outbox_dispatch",
    "quarantine_add",
    "quarantine_discard",
    "quarantine_payload",
    "quarantine_replay",
    "reading_payload",
    "readings_ingest",
    "run_finish",
    "run_logged",
    "run_start",
]
