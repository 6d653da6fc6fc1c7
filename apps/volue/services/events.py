"""Store what the platform notifies once, apply it, and catch up on what the webhook missed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.volue.client import VolueClient
from apps.volue.models import (
    Event,
    EventTarget,
    Notification,
    VolueCustomer,
    VolueMeter,
    VolueResource,
)
from apps.volue.schemas import EventIn, NotificationIn, event_parse
from apps.volue.selectors import customers_named_in

logger = logging.getLogger(__name__)


def notification_store(*, notification: NotificationIn) -> Notification | None:
    """Keep a verified notification; None when it was already received (a replay)."""
    try:
        with transaction.atomic():
            return Notification.objects.create(
                notification_id=notification.notification_id,
                event_id=notification.event.event_id,
                notification_type=notification.notification_type,
                body=notification.body,
                sent_at=notification.sent_at,
            )
    except IntegrityError:
        return None


def notification_process(*, notification: Notification) -> Event:
    """Record the notification's event (once, whichever way it came first)."""
    body = notification.body
    parsed = event_parse(body["eventId"], body["eventCreatedAtUtc"], body["payload"])
    event, _ = event_record(event=parsed, source=Event.Source.WEBHOOK)
    Notification.objects.filter(pk=notification.pk).update(processed_at=timezone.now())
    return event


def _match(target) -> tuple[VolueMeter | None, VolueResource | None]:
    resource = None
    if target.resource_id:
        resource = (VolueResource.objects.filter(resource_id=target.resource_id)
                    .select_related("meter").first())
    meter = resource.meter if resource is not None else None
    if meter is None and (target.location_id or target.meter_point_id):
        wanted = Q()
        if target.location_id:
            wanted |= Q(remote_id=target.location_id)
        if target.meter_point_id:
            wanted |= Q(meter_point_id=target.meter_point_id)
        meter = VolueMeter.objects.filter(wanted, removed_at__isnull=True).first()
    return meter, resource


def _eligibility_apply(*, event: EventIn) -> None:
    when = event.last_updated or event.created_at or timezone.now()
    for user_ids, eligible in ((event.added_users, True), (event.removed_users, False)):
        if not user_ids:
            continue
        # Only newer news changes a user: catch-up may bring an older update late.
        VolueCustomer.objects.filter(remote_user_id__in=user_ids).filter(
            Q(eligibility_updated_at__isnull=True) | Q(eligibility_updated_at__lt=when)
        ).update(eligible=eligible, eligibility_updated_at=when)
    # Enrollment and compensation follow from the platform: the tasks queue a status refresh
    # of the customers the event names (`selectors.customers_named_in`).


def event_record(*, event: EventIn, source: str) -> tuple[Event, bool]:
    """Store an event and apply it, unless it is already stored; (event, created)."""
    existing = Event.objects.filter(event_id=event.event_id).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            row = Event.objects.create(
                event_id=event.event_id, payload_type=event.payload_type,
                created_at_remote=event.created_at, source=source, payload=event.payload,
                window_start=event.window_start, window_end=event.window_end,
            )
            for target in event.targets:
                meter, resource = _match(target)
                EventTarget.objects.create(
                    event=row, location_id=target.location_id,
                    meter_point_id=target.meter_point_id, resource_id=target.resource_id,
                    resolution=target.resolution, points=target.points,
                    matched_meter=meter, matched_resource=resource,
                )
            if event.payload_type == "UserEligibility":
                _eligibility_apply(event=event)
            row.processed_at = timezone.now()
            row.save(update_fields=["processed_at"])
    except IntegrityError:  # a concurrent worker stored it first
        return Event.objects.get(event_id=event.event_id), False
    return row, True


@dataclass(slots=True)
class CatchUpResult:
    seen: int = 0
    recorded: int = 0
    pages: int = 0
    malformed: list[str] = field(default_factory=list)
    # Customers named by the new eligibility events: their status is worth reading again.
    status_refresh: list[int] = field(default_factory=list)


def events_catch_up(*, client: VolueClient) -> CatchUpResult:
    """Read GET /events (newest first) and record what the webhook did not deliver.

    The platform drops a notification after three failed tries, so this is how a missed
    one still arrives. Reading stops at the first page that brings nothing new.
    """
    result = CatchUpResult()
    page = 1
    while page and result.pages < settings.VOLUE_CATCH_UP_MAX_PAGES:
        answer = client.events_page(page=page, page_size=settings.VOLUE_CATCH_UP_PAGE_SIZE)
        result.pages += 1
        result.malformed.extend(answer.malformed)
        new = 0
        for event in answer.events:
            result.seen += 1
            row, created = event_record(event=event, source=Event.Source.CATCH_UP)
            if created:
                new += 1
                result.status_refresh.extend(customers_named_in(row))
        result.recorded += new
        if not new:
            break
        page = answer.next_page
    return result
