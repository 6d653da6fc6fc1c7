"""EnergyUsage reports: planned once an event's hours are over and the data is complete,
then sent through the core delivery outbox (recorded before sending, retried until accepted).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.http import HubHTTPError
from apps.core.models import Device, OutboundBatch
from apps.core.services import Outcome, batch_enqueue, link_get_or_create, outbox_dispatch
from apps.core.services.outbox import DispatchResult
from apps.volue.client import VolueClient
from apps.volue.models import EnergyReport, Event, EventTarget, VolueCustomer, VolueMeter
from apps.volue.schemas import REPORTABLE_TYPES, EnergyUsageIn, report_body
from apps.volue.selectors import hourly_energy

logger = logging.getLogger(__name__)
PLATFORM = "volue"
# Events older than this are no longer re-checked (a flagged report stays visible in the admin).
REPORT_LOOKBACK = dt.timedelta(days=14)


@dataclass(slots=True)
class PlanResult:
    queued: int = 0
    waiting: int = 0
    flagged: int = 0


def _customer_of(target: EventTarget) -> VolueCustomer | None:
    if target.matched_resource is not None:
        return target.matched_resource.customer
    return target.matched_meter.customer if target.matched_meter is not None else None


def _meter_of(target: EventTarget) -> VolueMeter | None:
    resource = target.matched_resource
    return target.matched_meter or (resource.meter if resource is not None else None)


def _device_of(target: EventTarget) -> Device | None:
    if target.matched_resource is not None and target.matched_resource.device is not None:
        return target.matched_resource.device  # a sub-meter of the resource itself
    meter = _meter_of(target)
    return meter.device if meter is not None else None


def _usages(event: Event, targets: list[EventTarget]) -> tuple[list[EnergyUsageIn], list[str]]:
    usages, missing = [], []
    for target in targets:
        meter = _meter_of(target)
        label = target.resource_id or (meter.meter_point_id if meter else target.location_id)
        device = _device_of(target)
        if device is None:
            missing.append(f"{label}: no hub device measures it any more")
            continue
        energy = hourly_energy(device=device, start=event.window_start, end=event.window_end)
        if not energy.complete:
            missing.append(f"{label} ({device.external_id}): {energy.missing_text()}")
            continue
        usages.append(EnergyUsageIn(
            resource_id=target.resource_id,
            location_id=target.location_id or (meter.remote_id if meter else ""),
            meter_point_id=target.meter_point_id or (meter.meter_point_id if meter else ""),
            hours=energy.hours,
        ))
    return usages, missing


def report_plan(
    *, event: Event, customer: VolueCustomer, targets: list[EventTarget], now: dt.datetime
) -> EnergyReport:
    """Queue the customer's report of `event` if its data is complete; else wait or flag."""
    report, _ = EnergyReport.objects.get_or_create(event=event, customer=customer)
    usages, missing = _usages(event, targets)
    if report.state == EnergyReport.State.QUEUED:
        _report_recheck(report=report, usages=usages, missing=missing, now=now)
        return report
    report.checked_at = now
    if missing:
        deadline = event.window_end + dt.timedelta(hours=settings.VOLUE_REPORT_DEADLINE_HOURS)
        report.state = (EnergyReport.State.FLAGGED if now >= deadline
                        else EnergyReport.State.WAITING)
        report.missing = "\n".join(missing)
        report.save(update_fields=["state", "missing", "checked_at"])
        return report
    body = report_body(event_id=event.event_id, usages=usages)
    with transaction.atomic():
        link = link_get_or_create(
            platform=PLATFORM, name=f"{customer.deployment.slug} reports",
            deployment=customer.deployment, ordered=False,
        )
        report.batch = batch_enqueue(
            link=link, payload=body, item_count=len(usages),
            key=f"{PLATFORM}:{link.pk}:report:{event.event_id}:{customer.pk}",
        )
        report.state, report.payload, report.missing = EnergyReport.State.QUEUED, body, ""
        report.save(update_fields=["state", "payload", "missing", "checked_at", "batch"])
    return report


def _report_recheck(
    *, report: EnergyReport, usages: list[EnergyUsageIn], missing: list[str], now: dt.datetime
) -> None:
    """A queued report whose readings were corrected since: replace what is still unsent,
    mark what Volue already has (or may have), so the admin shows it differs."""
    if missing:  # readings never go away, so this is a meter no longer matched: say so
        body, changed = None, "; ".join(missing)
    else:
        body = report_body(event_id=report.event.event_id, usages=usages)
        changed = "" if body == report.payload else _difference(report.payload, body)
    # Already marked with this very difference: the first time it was seen stays.
    if not changed or report.superseded.partition(": ")[2] == changed:
        return
    with transaction.atomic():
        replaced = body is not None and report.batch is not None and (
            OutboundBatch.objects.filter(
                pk=report.batch_id,
                state__in=[OutboundBatch.State.PENDING, OutboundBatch.State.RETRY],
                attempts=0,
            ).update(payload=body)
        )
        if replaced:
            report.payload, report.superseded = body, ""
        else:
            report.superseded = f"{now:%Y-%m-%d %H:%M}Z: {changed}"
        report.checked_at = now
        report.save(update_fields=["payload", "superseded", "checked_at"])


def _difference(sent: dict | None, now_body: dict) -> str:
    """Which hours' kWh Volue has (or may have) that the readings no longer give."""
    def hours(body):
        return {(p.get("locationId"), pt["timestamp"]): pt["kiloWattHours"]
                for p in (body or {}).get("payloads", []) for pt in p["points"]}

    old, new = hours(sent), hours(now_body)
    diffs = [f"{loc} {ts}: sent {old.get((loc, ts))} kWh, readings now give {kwh} kWh"
             for (loc, ts), kwh in sorted(new.items()) if old.get((loc, ts)) != kwh]
    more = f" and {len(diffs) - 3} more hour(s)" if len(diffs) > 3 else ""
    return "readings corrected after the report went out: " + "; ".join(diffs[:3]) + more


def reports_plan(*, now: dt.datetime | None = None) -> PlanResult:
    """Plan reports for every finished event whose targets the hub meters."""
    now = now or timezone.now()
    result = PlanResult()
    events = (
        Event.objects.filter(
            payload_type__in=REPORTABLE_TYPES, window_end__lte=now,
            window_end__gte=now - REPORT_LOOKBACK,
        )
        .filter(Q(targets__matched_meter__isnull=False)
                | Q(targets__matched_resource__isnull=False))
        .distinct()
    )
    for event in events:
        by_customer: dict[int, list[EventTarget]] = defaultdict(list)
        customers: dict[int, VolueCustomer] = {}
        targets = event.targets.select_related(
            "matched_meter__device", "matched_meter__customer__deployment",
            "matched_resource__device", "matched_resource__meter__device",
            "matched_resource__customer__deployment",
        )
        for target in targets:
            customer = _customer_of(target)
            if customer is not None:
                customers[customer.pk] = customer
                by_customer[customer.pk].append(target)
        for pk, customer_targets in by_customer.items():
            # A queued report is checked again: readings corrected since must not go unseen.
            was_queued = EnergyReport.objects.filter(
                event=event, customer_id=pk, state=EnergyReport.State.QUEUED).exists()
            report = report_plan(event=event, customer=customers[pk],
                                 targets=customer_targets, now=now)
            result.queued += not was_queued and report.state == EnergyReport.State.QUEUED
            result.waiting += report.state == EnergyReport.State.WAITING
            result.flagged += report.state == EnergyReport.State.FLAGGED
    return result


UNKNOWN_OUTCOME = (
    "an earlier POST /reports (attempt {attempt}) got no answer (connection lost or worker "
    "stopped): Volue may hold this report, and the Partner API can neither look a report up "
    "nor replace it, so it is not sent again (a second one would be counted twice). Check "
    "with Volue; requeue the batch only if they have none."
)


def report_send(*, batch: OutboundBatch, client: VolueClient) -> Outcome:
    """Send one queued report, at most once: errors with an answer (5xx, 429) are retried by
    the outbox; one without (a lost connection, a worker stopped mid-call) ends it dead with
    the reason, as Volue may have stored it."""
    report = EnergyReport.objects.filter(batch=batch).only("pk", "posted_attempt").first()
    if report is not None and report.posted_attempt is not None and \
            report.posted_attempt < batch.attempts:
        return Outcome(ok=False, undeliverable=True,
                       error=UNKNOWN_OUTCOME.format(attempt=report.posted_attempt))
    # Written (committed) before the call: a worker that dies in it leaves the mark behind.
    EnergyReport.objects.filter(batch=batch).update(posted_attempt=batch.attempts)
    try:
        report_id = client.report_send(body=batch.payload)
    except HubHTTPError as exc:
        if exc.status_code is not None or "/reports" not in (exc.url or ""):
            # Answered (or failed before the POST, at the token): Volue stored nothing.
            EnergyReport.objects.filter(batch=batch).update(posted_attempt=None)
        raise
    return Outcome(ok=True, status=200, body=f"report id {report_id}")


def reports_dispatch(
    *, client: VolueClient, limit: int = 50, now: dt.datetime | None = None
) -> DispatchResult:
    return outbox_dispatch(
        send=lambda batch: report_send(batch=batch, client=client), platform=PLATFORM,
        limit=limit, now=now,
    )
