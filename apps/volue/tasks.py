"""Thin Celery tasks: load by id, call a service. Periodic ones fan out per customer."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from apps.core import jobs
from apps.volue import services
from apps.volue.client import volue_client
from apps.volue.models import Notification, VolueCustomer
from apps.volue.selectors import customers_named_in, customers_to_sync, notifications_unprocessed


@shared_task(name="volue.sync")
def sync() -> int:
    """Keep the webhook subscribed and fan out one registration sync per customer."""

    def body(run):
        subscription = services.subscription_ensure(client=volue_client())
        run.counts = {"webhook": subscription.remote_id}

    jobs.job_run(app="volue", job="subscribe", kind="volue.subscribe",
                 target="Volue webhook", lock=False, body=body)
    customers = list(customers_to_sync().select_related("deployment"))
    # Many new customers at once are created in one batch before the per-customer syncs.
    services.users_batch_register(customers=customers, client=volue_client())
    ids = [c.pk for c in customers]
    for pk in ids:
        customer_sync.delay(pk)
    return len(ids)


@shared_task(name="volue.customer_sync")
def customer_sync(customer_id: int) -> dict:
    customer = jobs.load(VolueCustomer.objects.select_related("deployment"), customer_id,
                         what="Volue customer")
    if customer is None:
        return jobs.skipped("customer deleted")

    def body(run):
        result = services.customer_sync(customer=customer, client=volue_client())
        run.counts = result.counts()
        jobs.run_partial(run, result.errors, sep="\n")

    return jobs.job_run(app="volue", job="customer_sync", key=customer_id,
                        kind="volue.register", target=str(customer),
                        deployment=customer.deployment, body=body).counts


@shared_task(name="volue.status_refresh")
def status_refresh() -> int:
    """Fan out one enrollment/eligibility/compensation refresh per registered customer."""
    ids = list(VolueCustomer.objects.exclude(remote_user_id="").filter(removed_at__isnull=True)
               .values_list("pk", flat=True))
    for pk in ids:
        customer_status_refresh.delay(pk)
    return len(ids)


def status_refresh_queue(customer_ids: list[int]) -> None:
    """Queue a status refresh of each customer once the current transaction commits."""
    def queue() -> None:
        for pk in customer_ids:
            customer_status_refresh.delay(pk)

    if customer_ids:
        transaction.on_commit(queue)


@shared_task(name="volue.customer_status_refresh")
def customer_status_refresh(customer_id: int) -> dict:
    customer = jobs.load(VolueCustomer.objects.select_related("deployment"), customer_id,
                         what="Volue customer")
    if customer is None:
        return jobs.skipped("customer deleted")

    def body(run):
        refreshed = services.customer_status_refresh(customer=customer, client=volue_client())
        run.counts = {"enrolled": refreshed.enrolled, "eligible": refreshed.eligible}
        jobs.run_partial(run, [refreshed.status_error])

    return jobs.job_run(app="volue", job="status", key=customer_id, kind="volue.status",
                        target=str(customer), deployment=customer.deployment,
                        body=body).counts


@shared_task(name="volue.notification_process")
def notification_process(notification_id: int) -> str:
    notification = jobs.load(Notification.objects.all(), notification_id,
                             what="Volue notification")
    if notification is None:
        return "deleted"
    if notification.processed_at is not None:
        return "already processed"
    event = services.notification_process(notification=notification)
    status_refresh_queue(customers_named_in(event))
    if event.window_end is not None and event.window_end <= timezone.now():
        reports_plan.delay()  # the event's hours are already over: report without waiting
    return event.event_id


@shared_task(name="volue.events_catch_up")
def events_catch_up() -> dict:
    def body(run):
        # Stored notifications whose hand-off to a worker was lost (the broker was down).
        for pending in notifications_unprocessed(
                received_before=timezone.now() - dt.timedelta(minutes=1)):
            event = services.notification_process(notification=pending)
            status_refresh_queue(customers_named_in(event))
        result = services.events_catch_up(client=volue_client())
        status_refresh_queue(result.status_refresh)
        run.counts = {"seen": result.seen, "recorded": result.recorded,
                      "pages": result.pages, "malformed": len(result.malformed)}
        jobs.run_partial(run, result.malformed, sep="\n")
        return result

    job = jobs.job_run(app="volue", job="catch_up", kind="volue.catch_up",
                       target="GET /events", body=body)
    if job.value is not None and job.value.recorded:
        reports_plan.delay()
    return job.counts


@shared_task(name="volue.reports_plan")
def reports_plan() -> dict:
    # Every two minutes and after each event: locked, but not worth a run-log row.
    job = jobs.job_run(app="volue", job="reports_plan", log=False,
                       body=lambda run: services.reports_plan())
    if job.skipped:
        return job.counts
    result = job.value
    if result.queued:
        reports_dispatch.delay()
    return {"queued": result.queued, "waiting": result.waiting, "flagged": result.flagged}


@shared_task(name="volue.reports_dispatch")
def reports_dispatch() -> dict:
    def body(run):
        result = services.reports_dispatch(client=volue_client())
        run.counts = {"sent": result.sent, "failed": result.failed, "dead": result.dead}

    # The outbox claims each batch: two dispatches at once never send one twice.
    return jobs.job_run(app="volue", job="reports_dispatch", kind="volue.report",
                        target="POST /reports", lock=False, body=body).counts
