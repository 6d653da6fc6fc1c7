"""Writes for the Wattics push. Keyword-only, typed, named <noun>_<verb>."""

from apps.wattics.services.accounts import (
    account_reactivate,
    account_reject,
    ops_alert,
    stream_pause,
    stream_resume,
    stream_stop,
)
from apps.wattics.services.push import (
    PushResult,
    stream_push,
    stream_sync,
    streams_push,
)
from apps.wattics.services.streams import PlanResult, stream_create, stream_plan

__all__ = [
    "PlanResult",
    "PushResult",
    "account_reactivate",
    "account_reject",
    "ops_alert",
    "stream_create",
    "stream_pause",
    "stream_plan",
    "stream_push",
    "stream_resume",
    "stream_stop",
    "stream_sync",
    "streams_push",
]
