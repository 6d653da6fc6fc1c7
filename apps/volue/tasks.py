"""Thin Celery tasks: load by id, call a service. Periodic ones fan out per customer."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from apps.core.locks import AlreadyRunning, single_flight
from apps.core.services import run_logged
from apps.volue import services
from apps.volue.client import volue_client
from apps.volue.models import Notification, VolueCustomer
from apps.volue.selectors import customers_to_sync, notifications_unprocessed

LOCK_TTL = 900


@shared_task(name="volue.sync")
def sync() -> int:
    """Keep the webhook subscribed and fan out one registration sync per customer."""
    with run_logged(kind="volue.subscribe", target="Volue webhook") as run:
        subscription = services.subscription_ensure(client=volue_client())
        run.counts = {"webhook": subscription.remote_id}
    customers = list(customers_to_sync().select_related("deployment"))
    # Many new customers at once are created in one batch before the per-customer syncs.
    services.users_batch_register(customers=customers, client=volue_client())
    ids = [c.pk for c in customers]
    for pk in ids:
        customer_sync.delay(pk)
    return len(ids)


@shared_task(name="volue.customer_sync")
def customer_sync(customer_id: int) -> dict:
    customer = VolueCustomer.objects.select_related("deployment").get(pk=customer_id)
    try:
        with (
            single_flight(f"volue.customer_sync:{customer_id}", ttl=LOCK_TTL),
            run_logged(kind="volue.register", target=str(customer),
                       deployment=customer.deployment) as run,
        ):
            result = services.customer_sync(customer=customer, client=volue_client())
            run.counts = result.counts()
            if result.errors:
                run.status, run.error = "partial", "\n".join(result.errors)
            return run.counts
    except AlreadyRunning:
        return {"skipped": "already running"}


@shared_task(name="volue.status_refresh")
def status_refresh() -> int:
    """Fan out one enrollment/eligibility/compensation refresh per registered customer."""
    ids = list(VolueCustomer.objects.exclude(remote_user_id="").filter(removed_at__isnull=True)
               .values_list("pk", flat=True))
    for pk in ids:
        customer_status_refresh.delay(pk)
    return len(ids)


@shared_task(name="volue.customer_status_refresh")
def customer_status_refresh(customer_id: int) -> dict:
    customer = VolueCustomer.objects.select_related("deployment").get(pk=customer_id)
    with run_logged(kind="volue.status", target=str(customer),
                    deployment=customer.deployment) as run:
        customer = services.customer_status_refresh(customer=customer, client=volue_client())
        run.counts = {"enrolled": customer.enrolled, "eligible": customer.eligible}
        if customer.status_error:
            run.status, run.error = "partial", customer.status_error
        return run.counts


@shared_task(name="volue.notification_process")
def notification_process(notification_id: int) -> str:
    notification = Notification.objects.get(pk=notification_id)
    if notification.processed_at is not None:
        return "already processed"
    event = services.notification_process(notification=notification)
    if event.window_end is not None and event.window_end <= timezone.now():
        reports_plan.delay()  # the event's hours are already over: report without waiting
    return event.event_id


@shared_task(name="volue.events_catch_up")
def events_catch_up() -> dict:
    try:
        with (
            single_flight("volue.events_catch_up", ttl=LOCK_TTL),
            run_logged(kind="volue.catch_up", target="GET /events") as run,
        ):
            # Stored notifications whose hand-off to a worker was lost (the broker was down).
            for pending in notifications_unprocessed(
                    received_before=timezone.now() - dt.timedelta(minutes=1)):
                services.notification_process(notification=pending)
            result = services.events_catch_up(client=volue_client())
            run.counts = {"seen": result.seen, "recorded": result.recorded,
                          "pages": result.pages, "malformed": len(result.malformed)}
            if result.malformed:
                run.status, run.error = "partial", "\n".join(result.malformed)
        if result.recorded:
            reports_plan.delay()
        return run.counts
    except AlreadyRunning:
        return {"skipped": "already running"}


@shared_task(name="volue.reports_plan")
def reports_plan() -> dict:
    try:
        with single_flight("volue.reports_plan", ttl=LOCK_TTL):
            result = services.reports_plan()
    except AlreadyRunning:
        return {"skipped": "already running"}
    if result.queued:
        reports_dispatch.delay()
    return {"queued": result.queued, "waiting": result.waiting, "flagged": result.flagged}


@shared_task(name="volue.reports_dispatch")
def reports_dispatch() -> dict:
    with run_logged(kind="volue.report", target="POST /reports") as run:
        result = services.reports_dispatch(client=volue_client())
        run.counts = {"sent": result.sent, "failed": result.failed, "dead": result.dead}
        return run.counts
