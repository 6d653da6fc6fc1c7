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

from apps.core.http import ApiClient, HubHTTPError
from apps.sandbox.volue.models import SbDelivery, SbEvent, SbMeter, SbResource, SbUser, SbWebhook

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


def _first_meter(owner: SbUser) -> SbMeter | None:
    return owner.meters.order_by("pk").first()


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
        for res in SbResource.objects.select_related("user"):
            location = _first_meter(res.user)
            targets.append({"resourceId": res.resource_id,
                            "locationId": location.meter_id if location else None})
        return {"payloadType": kind, "priceArea": "NO1", "targets": targets,
                "priceCurveDelta": {"energyUnit": "kWh", "currency": "NOK",
                                    "resolution": "01:00:00",
                                    "points": [{"timestamp": ts, "price": round(0.8 + 0.1 * i, 2)}
                                               for i, ts in enumerate(slots)]}}
    limits = [{"timestamp": ts, "maxPowerInKiloWatts": 25.0 + 5 * (i % 2)}
              for i, ts in enumerate(slots)]
    if kind == "ResourceLPC":
        targets = []
        for res in SbResource.objects.select_related("user"):
            location = _first_meter(res.user)
            if location is not None:
                targets.append({"resourceId": res.resource_id, "locationId": location.meter_id,
                                "meterPointId": location.meter_point_id,
                                "resolution": "01:00:00", "points": limits})
        return {"payloadType": kind, "targets": targets}
    targets = [{"locationId": m.meter_id, "meterPointId": m.meter_point_id,
                "resolution": "01:00:00", "points": limits} for m in SbMeter.objects.all()]
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
        with ApiClient(hook.url, name="sandbox-volue-webhook", max_retries=0,
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
