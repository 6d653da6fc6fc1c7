"""Writes. Keyword-only, typed, named <noun>_<verb>."""

from apps.volue.services.events import (
    CatchUpResult,
    event_record,
    events_catch_up,
    notification_process,
    notification_store,
)
from apps.volue.services.registration import SyncResult, customer_sync, subscription_ensure
from apps.volue.services.reports import (
    PlanResult,
    report_plan,
    report_send,
    reports_dispatch,
    reports_plan,
)

__all__ = [
    "CatchUpResult",
    "PlanResult",
    "SyncResult",
    "customer_sync",
    "event_record",
    "events_catch_up",
    "notification_process",
    "notification_store",
    "report_plan",
    "report_send",
    "reports_dispatch",
    "reports_plan",
    "subscription_ensure",
]
