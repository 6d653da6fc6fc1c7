"""Writes of the pull sync. Keyword-only, typed, named <noun>_<verb>."""

from apps.pull.services.connections import (
    EndpointPreview,
    connection_preview,
    connection_schedule_sync,
    connection_setup,
)
from apps.pull.services.sync import SyncOutcome, connection_sync

__all__ = [
    "EndpointPreview",
    "SyncOutcome",
    "connection_preview",
    "connection_schedule_sync",
    "connection_setup",
    "connection_sync",
]
