"""The simulated platform's behaviour behind its endpoints: events aimed at what is
registered, signed webhook deliveries (three retries, then dropped), report validation."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import math
import threading
import time
import uuid
from typing import Any

from django.core.cache import cache
from django.db import close_old_connections
from django.utils import timezone

from apps.core.http import ApiClient, HubHTTPError, RetryPolicy
from apps.sandbox.volue.models import (
    SbDelivery,
    SbEvent,
    SbLocation,
    SbReport,
    SbResource,
    SbUser,
    SbWebhook,
)

DELIVERY_TRIES = 1 + 3  # the first try and three retries, then the notification is dropped
TYPES = {
    "PriceCurveCreated": "PriceCurve",
    "UserEligibilityUpdated": "UserEligibility",
    "LocationLPCRequested": "LocationLPC",
    "ResourceLPCRequested": "ResourceLPC",
    "LPCReservationCreated": "LPCReservation",
}


def _iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).isoformat()


def _hours(start: dt.datetime, hours: int) -> list[str]:
    return [_iso(start + dt.timedelta(hours=i)) for i in range(hours)]


def _location_of(resource: SbResource) -> SbLocation | None:
    """A location-bound resource's own location; a vehicle charges at its user's first."""
    return resource.location or resource.user.locations.order_by("pk").first()


def _first_meter_point(location: SbLocation) -> str | None:
    first = location.meter_points.order_by("pk").first()
    return first.meter_point_id if first else None


def event_payload(notification_type: str, start: dt.datetime, hours: int) -> dict:
    """A payload of `notification_type` aimed at everything registered, over the hours."""
    kind = TYPES[notification_type]
    slots = _hours(start, hours)
    if kind == "UserEligibility":
        return {"payloadType": kind, "lastUpdated": _iso(timezone.now()),
                "addedUsers": list(SbUser.objects.values_list("user_id", flat=True)),
                "removedUsers": []}
    if kind == "PriceCurve":
        targets = []
        for res in SbResource.objects.select_related("user", "location"):
            location = _location_of(res)
            targets.append({"resourceId": res.resource_id,
                            "locationId": location.location_id if location else None})
        return {"payloadType": kind, "priceArea": "NO1", "targets": targets,
                "priceCurveDelta": {"energyUnit": "kWh", "currency": "NOK",
                                    "resolution": "01:00:00",
                                    "points": [{"timestamp": ts, "price": round(0.8 + 0.1 * i, 2)}
                                               for i, ts in enumerate(slots)]}}
    limits = [{"timestamp": ts, "maxPowerInKiloWatts": 25.0 + 5 * (i % 2)}
              for i, ts in enumerate(slots)]
    if kind == "ResourceLPC":
        targets = []
        for res in SbResource.objects.select_related("user", "location"):
            location = _location_of(res)
            if location is not None:
                targets.append({"resourceId": res.resource_id,
                                "locationId": location.location_id,
                                "meterPointId": _first_meter_point(location),
                                "resolution": "01:00:00", "points": limits})
        return {"payloadType": kind, "targets": targets}
    targets = [{"locationId": loc.location_id, "meterPointId": _first_meter_point(loc),
                "resolution": "01:00:00", "points": limits}
               for loc in SbLocation.objects.prefetch_related("meter_points")]
    return {"payloadType": kind, "targets": targets}


def event_create(notification_type: str, start: dt.datetime, hours: int) -> SbEvent:
    return SbEvent.objects.create(
        event_id=str(uuid.uuid4()), notification_type=notification_type,
        payload=event_payload(notification_type, start, hours), created_at=timezone.now(),
    )


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def notify(event: SbEvent, *, retry_pause: float = 0.05) -> list[dict]:
    """Send the event to every subscribed webhook, signed; retried 3 times, then dropped."""
    results = []
    hooks = SbWebhook.objects.filter(enabled=True)
    for hook in hooks:
        if event.notification_type not in hook.notification_types:
            continue
        delivery = SbDelivery.objects.create(
            notification_id=str(uuid.uuid4()), event=event, webhook=hook
        )
        body = json.dumps({
            "notificationId": delivery.notification_id, "eventId": event.event_id,
            "eventCreatedAtUtc": _iso(event.created_at),
            "notificationSentUtc": _iso(timezone.now()),
            "notificationType": event.notification_type, "payload": event.payload,
        }).encode()
        headers = {"Content-Type": "application/json",
                   "X-Payload-Signature": sign(body, hook.secret)}
        with ApiClient(hook.url, name="sandbox-volue-webhook", retry=RetryPolicy(max_retries=0),
                       timeout=(2, 10)) as client:
            for attempt in range(DELIVERY_TRIES):
                delivery.attempts = attempt + 1
                try:
                    response = client.post(hook.url, data=body, headers=headers)
                    delivery.last_status, delivery.delivered = response.status_code, True
                    break
                except HubHTTPError as exc:
                    delivery.last_status = exc.status_code
                    time.sleep(retry_pause * 2 ** attempt)
        delivery.save()
        results.append({"webhookId": hook.webhook_id, "notificationId": delivery.notification_id,
                        "status": delivery.last_status, "attempts": delivery.attempts,
                        "delivered": delivery.delivered})
    return results


def auto_event_later() -> None:
    """Demo: the first registered meter gets a power-limit event over the past hours."""
    if not cache.add("sandbox:volue:auto_event", "1", timeout=None):
        return

    def run() -> None:
        time.sleep(3)  # let the hub finish its registration round first
        try:
            start = timezone.now().replace(minute=0, second=0, microsecond=0)
            notify(event_create("LocationLPCRequested", start - dt.timedelta(hours=4), 3))
        finally:
            close_old_connections()

    threading.Thread(target=run, daemon=True, name="sandbox-volue-auto-event").start()


def _point_errors(index: int, point: Any) -> str:
    if not isinstance(point, dict):
        return f"payloads[{index}]: a point is not an object"
    try:
        ts = dt.datetime.fromisoformat(str(point.get("timestamp")))
    except ValueError:
        return f"payloads[{index}]: timestamp {point.get('timestamp')!r} is not ISO 8601"
    if ts.tzinfo is None:
        return f"payloads[{index}]: timestamp {point['timestamp']} has no offset"
    if ts.minute or ts.second or ts.microsecond:
        return f"payloads[{index}]: timestamp {point['timestamp']} is not an hour start"
    kwh = point.get("kiloWattHours")
    if isinstance(kwh, bool) or not isinstance(kwh, int | float) or not math.isfinite(kwh):
        return f"payloads[{index}]: kiloWattHours must be a finite number"
    return ""


def report_errors(body: Any) -> str:
    """Why a POST /reports body is not a valid EnergyUsage report ("" when valid)."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    event_id = body.get("eventId")
    if event_id is not None and not SbEvent.objects.filter(event_id=event_id).exists():
        return f"Event {event_id} not found."
    payloads = body.get("payloads")
    if not isinstance(payloads, list) or not payloads:
        return "payloads must be a non-empty list."
    for i, payload in enumerate(payloads):
        if not isinstance(payload, dict) or payload.get("payloadType") != "EnergyUsage":
            return f"payloads[{i}]: payloadType must be EnergyUsage"
        if not isinstance(payload.get("resourceId"), str) or not payload["resourceId"]:
            return f"payloads[{i}]: resourceId is required"
        if payload.get("resolution") != "01:00:00":
            return f"payloads[{i}]: resolution must be 01:00:00"
        points = payload.get("points")
        if not isinstance(points, list) or not points:
            return f"payloads[{i}]: points must be a non-empty list"
        for point in points:
            error = _point_errors(i, point)
            if error:
                return error
    return ""


# --- eligibility and compensation -------------------------------------------------------

COMPENSATION_PER_KWH = 0.5  # NOK per reported kWh: the sandbox's flat stand-in for a tariff


def meter_point_eligible(meter_point_id: str) -> bool:
    """The sandbox's rule: an 18-digit (GSRN) metering point id in the Norwegian range."""
    return len(meter_point_id) == 18 and meter_point_id.isdigit() and \
        meter_point_id.startswith("70705")


def user_eligible(user: SbUser) -> bool:
    """Eligible once one of the user's locations has an eligible metering point."""
    return any(meter_point_eligible(mp.meter_point_id)
               for location in user.locations.prefetch_related("meter_points")
               for mp in location.meter_points.all())


def compensation_of(user: SbUser, *, now: dt.datetime) -> dict:
    """`GetUserCompensationForCurrentMonthResponse`: reported kWh of this month, per location,
    paid only while the user is enrolled."""
    start = now.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    kwh: dict[str, float] = {}
    for report in SbReport.objects.filter(received_at__gte=start, received_at__lt=end):
        for payload in report.body.get("payloads") or []:
            location_id = payload.get("locationId")
            if location_id:
                kwh[location_id] = kwh.get(location_id, 0.0) + sum(
                    p.get("kiloWattHours", 0) for p in payload.get("points") or [])
    rows = []
    for location in user.locations.prefetch_related("meter_points"):
        mpids = location.meter_point_ids
        amount = round(kwh.get(location.location_id, 0.0) * COMPENSATION_PER_KWH, 2)
        problems = [] if mpids else [{"problemType": "MissingMpidOnLocation",
                                      "message": "The location has no meter point id."}]
        active = amount if user.enrolled_at and mpids else 0.0
        rows.append({"locationId": location.location_id, "meterPointIds": mpids,
                     "activeAmount": active, "blockedAmount": round(amount - active, 2),
                     "currency": "NOK", "problems": problems})
    return {"userId": user.user_id,
            "period": {"from": start.date().isoformat(),
                       "to": (end - dt.timedelta(days=1)).date().isoformat()},
            "locationCompensations": rows}
