"""Writes. Keyword-only, typed, named <noun>_<verb>."""

from apps.core.services.ingest import IngestResult, ReadingIn, Rejection, readings_ingest
from apps.core.services.quarantine import quarantine_discard, quarantine_replay
from apps.core.services.runs import run_finish, run_logged, run_start

__all__ = [
    "IngestResult",
    "ReadingIn",
    "Rejection",
    "quarantine_discard",
    "quarantine_replay",
    "readings_ingest",
    "run_finish",
    "run_logged",
    "run_start",
]
