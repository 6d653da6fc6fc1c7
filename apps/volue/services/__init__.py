"""Writes. Keyword-only, typed, named <noun>_<verb>."""

from apps.volue.services.events import (
    CatchUpResult,
    event_record,
    events_catch_up,
    notification_process,
    notification_store,
)
from apps.volue.services.registration import (
    SyncResult,
    customer_sync,
    subscription_ensure,
    users_batch_register,
)
from apps.volue.services.reports import (
    PlanResult,
    report_plan,
    report_send,
    reports_dispatch,
    reports_plan,
)
from apps.volue.services.status import (
    customer_enroll,
    customer_status_refresh,
    customer_unenroll,
)

__all__ = [
    "CatchUpResult",
    "PlanResult",
    "SyncResult",
    "customer_enroll",
    "customer_status_refresh",
    "customer_sync",
    "customer_unenroll",
    "event_record",
    "events_catch_up",
    "notification_process",
    "notification_store",
    "report_plan",
    "report_send",
    "reports_dispatch",
    "reports_plan",
    "subscription_ensure",
    "users_batch_register",
]
