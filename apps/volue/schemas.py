"""Volue Energy Coordination's wire formats, as the hub reads and writes them: registration
shapes (users, locations, resources, enrollment, compensation) and refusals; the webhook's
signature and notifications; events (`/events`) and reports (`/reports`). `client.py` sends
them and does nothing else."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from apps.core.http import PermanentError
from apps.core.jsonbody import unstorable_find

# --- registration ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocationIn:
    """One location: the place of one metering point (`PostLocationRequest`)."""

    location_id: str
    meter_point_ids: tuple[str, ...]
    location_type: str
    latitude: float | None = None
    longitude: float | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"locationId": self.location_id,
                                "locationType": self.location_type,
                                "meterPointIds": list(self.meter_point_ids)}
        if self.latitude is not None and self.longitude is not None:
            # `Coordinate` is not nullable: a location without a position leaves it out.
            body["coordinates"] = {"latitude": self.latitude, "longitude": self.longitude}
        return body

    def fingerprint(self) -> str:
        raw = json.dumps(self.body(), sort_keys=True).encode()
        return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class RemoteLocation:
    location_id: str
    meter_point_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResourceIn:
    """A vehicle (user-bound) or a resource bound to one of the user's locations."""

    resource_id: str
    resource_type: str
    location_id: str = ""  # empty for a vehicle
    meter_point_id: str = ""

    @property
    def vehicle(self) -> bool:
        return not self.location_id

    def fingerprint(self) -> str:
        raw = json.dumps([self.resource_id, self.resource_type, self.location_id,
                          self.meter_point_id]).encode()
        return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class RemoteResource:
    resource_id: str
    resource_type: str
    user_id: str
    location_id: str
    meter_point_id: str


@dataclass(frozen=True, slots=True)
class Enrollment:
    enrolled: bool
    enrollment_id: str
    enrolled_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class LocationCompensationIn:
    location_id: str
    active_amount: float
    blocked_amount: float
    currency: str
    problems: list[str]


@dataclass(frozen=True, slots=True)
class CompensationIn:
    period_from: str
    period_to: str
    locations: list[LocationCompensationIn]


class VolueRefused(PermanentError):
    """A 4xx from Volue, reworded to name the operation and the fields it refused."""


def refusal_reason(body: str) -> str:
    """What a 4xx body says, field by field: the document answers either a JSON string or
    an `HttpValidationProblemDetails` with `errors: {field: [message]}`."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return " ".join(body[:300].split())
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, dict) and errors:
            return "; ".join(
                f"{name}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
                for name, msgs in errors.items())
        return str(data.get("detail") or data.get("title") or data)
    return "no reason given"


def is_conflict(exc: PermanentError) -> bool:
    """The platform already has what we tried to create. The document gives 409 only for
    locations; users and resources that exist are refused with a 400."""
    return exc.status_code in (400, 409)


def is_gone(exc: PermanentError) -> bool:
    return exc.status_code == 404


# --- webhook, events and reports ------------------------------------------------------

SIGNATURE_HEADER = "X-Payload-Signature"
NOTIFICATION_TYPES = (
    "PriceCurveCreated", "UserEligibilityUpdated", "LocationLPCRequested",
    "ResourceLPCRequested", "LPCReservationCreated",
)
PAYLOAD_TYPES = ("PriceCurve", "UserEligibility", "LocationLPC", "ResourceLPC", "LPCReservation")
# Events asking for flexibility over some hours; the platform compensates from our reports.
REPORTABLE_TYPES = ("PriceCurve", "LocationLPC", "ResourceLPC", "LPCReservation")
HOUR = dt.timedelta(hours=1)
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?$")


class MalformedPayload(ValueError):
    """A notification or event the platform sent does not follow the documented shape."""


# --- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetIn:
    location_id: str = ""
    meter_point_id: str = ""
    resource_id: str = ""
    resolution: str = ""
    points: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EventIn:
    event_id: str
    created_at: dt.datetime | None
    payload_type: str
    payload: dict[str, Any]
    targets: list[TargetIn]
    window_start: dt.datetime | None = None
    window_end: dt.datetime | None = None
    # UserEligibility
    added_users: list[str] = field(default_factory=list)
    removed_users: list[str] = field(default_factory=list)
    last_updated: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class NotificationIn:
    notification_id: str
    notification_type: str
    sent_at: dt.datetime | None
    event: EventIn
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EventsPage:
    events: list[EventIn]
    next_page: int | None
    malformed: list[str] = field(default_factory=list)


def signature_of(body: bytes, secret: str) -> str:
    """`X-Payload-Signature`: Base64 of the HMAC-SHA256 of the raw body under the secret."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_valid(body: bytes, signature: str, secrets: Iterable[str]) -> bool:
    """Whether `signature` signs `body` under one of `secrets`, compared in constant time."""
    given = signature.strip().encode()
    ok = False
    for secret in secrets:  # every secret is tried, so timing says nothing about which
        ok |= hmac.compare_digest(given, signature_of(body, secret).encode())
    return ok


def timestamp_parse(value: Any, what: str) -> dt.datetime:
    if not isinstance(value, str):
        raise MalformedPayload(f"{what} must be an ISO 8601 timestamp, not {value!r}")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise MalformedPayload(f"{what} is not an ISO 8601 timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        raise MalformedPayload(f"{what} has no offset: {value!r}")
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:
        raise MalformedPayload(f"{what} is outside the calendar in UTC: {value!r}") from None


def timespan_parse(value: str) -> dt.timedelta:
    """A .NET time span ("01:00:00", "1.00:00:00") as a timedelta."""
    match = _TIMESPAN.match(value or "")
    if not match:
        raise MalformedPayload(f"resolution is not a time span like 01:00:00: {value!r}")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    try:
        span = dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise MalformedPayload(f"resolution is too long: {value!r}") from None
    if span <= dt.timedelta(0):
        raise MalformedPayload(f"resolution must be positive: {value!r}")
    return span


def _window(points: Sequence[tuple[dt.datetime, dt.timedelta]]) -> tuple[
    dt.datetime | None, dt.datetime | None
]:
    if not points:
        return None, None
    return min(ts for ts, _ in points), max(ts + step for ts, step in points)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


# The longest ids and fields the hub stores (apps/volue/models.py); longer is malformed.
ID_MAX = 128
_TARGET_MAX = {"locationId": 128, "meterPointId": 64, "resourceId": 128, "resolution": 16}


def _bounded(value: str, name: str, limit: int) -> str:
    if len(value) > limit:
        raise MalformedPayload(f"{name} has {len(value):,} characters, more than {limit}")
    return value


def event_parse(event_id: Any, created_at: Any, payload: Any) -> EventIn:
    """An event (from a notification or from GET /events) in the hub's terms."""
    if not isinstance(event_id, str) or not event_id:
        raise MalformedPayload("the event has no id")
    _bounded(event_id, "eventId", ID_MAX)
    found = unstorable_find(payload)  # events come from pages of GET /events too
    if found:
        raise MalformedPayload(f"event {event_id}: payload.{found[0]} {found[1]}")
    if not isinstance(payload, dict) or payload.get("payloadType") not in PAYLOAD_TYPES:
        kind = payload.get("payloadType") if isinstance(payload, dict) else None
        raise MalformedPayload(f"event {event_id}: unknown payloadType {kind!r}")
    kind = payload["payloadType"]
    created = timestamp_parse(created_at, "createdAt") if created_at else None
    if kind == "UserEligibility":
        added, removed = payload.get("addedUsers"), payload.get("removedUsers")
        if not isinstance(added, list) or not isinstance(removed, list):
            raise MalformedPayload(f"event {event_id}: addedUsers/removedUsers must be lists")
        return EventIn(
            event_id=event_id, created_at=created, payload_type=kind, payload=payload,
            targets=[], added_users=[str(u) for u in added],
            removed_users=[str(u) for u in removed],
            last_updated=timestamp_parse(payload.get("lastUpdated"), "lastUpdated"),
        )
    raw_targets = payload.get("targets")
    if not isinstance(raw_targets, list):
        raise MalformedPayload(f"event {event_id}: targets must be a list")
    spans: list[tuple[dt.datetime, dt.timedelta]] = []
    targets = []
    for raw in raw_targets:
        if not isinstance(raw, dict):
            raise MalformedPayload(f"event {event_id}: a target is not an object")
        for name, limit in _TARGET_MAX.items():
            _bounded(_text(raw.get(name)), f"event {event_id}: {name}", limit)
        points = raw.get("points") or []
        resolution = _text(raw.get("resolution"))
        if points:
            step = timespan_parse(resolution) if resolution else HOUR
            for point in points:
                if not isinstance(point, dict):
                    raise MalformedPayload(f"event {event_id}: a point is not an object")
                spans.append((timestamp_parse(point.get("timestamp"), "point timestamp"), step))
        targets.append(TargetIn(
            location_id=_text(raw.get("locationId")),
            meter_point_id=_text(raw.get("meterPointId")),
            resource_id=_text(raw.get("resourceId")),
            resolution=resolution,
            points=list(points),
        ))
    if kind == "PriceCurve":
        curve = payload.get("priceCurveDelta")
        if not isinstance(curve, dict) or not isinstance(curve.get("points"), list):
            raise MalformedPayload(f"event {event_id}: priceCurveDelta.points is missing")
        resolution = _text(curve.get("resolution"))
        step = timespan_parse(resolution) if resolution else HOUR
        for point in curve["points"]:
            if not isinstance(point, dict):
                raise MalformedPayload(f"event {event_id}: a price point is not an object")
            spans.append((timestamp_parse(point.get("timestamp"), "price timestamp"), step))
    try:
        start, end = _window(spans)
    except OverflowError:
        raise MalformedPayload(f"event {event_id}: its points end past the calendar") from None
    return EventIn(
        event_id=event_id, created_at=created, payload_type=kind, payload=payload,
        targets=targets, window_start=start, window_end=end,
    )


def _not_a_json_number(name: str) -> float:
    raise MalformedPayload(f"{name} is not a JSON number")


def notification_parse(body: bytes) -> NotificationIn:
    """A webhook body (`EventNotification`); `MalformedPayload` if it is not one."""
    # The body is stored as JSON: refuse what PostgreSQL's jsonb and text cannot hold.
    if b"\\u0000" in body:
        raise MalformedPayload("the body contains a NUL character (\\u0000)")
    try:
        data = json.loads(body, parse_constant=_not_a_json_number)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedPayload(f"the body is not JSON: {exc}") from exc
    except RecursionError:
        raise MalformedPayload("the body is nested too deeply") from None
    if not isinstance(data, dict):
        raise MalformedPayload("the body is not a JSON object")
    found = unstorable_find(data, body, nul=False)
    if found:
        raise MalformedPayload(f"{found[0]} {found[1]}")
    required = ("notificationId", "eventId", "eventCreatedAtUtc", "notificationSentUtc",
                "notificationType", "payload")
    missing = [name for name in required if name not in data]
    if missing:
        raise MalformedPayload(f"missing {', '.join(missing)}")
    notification_id = data["notificationId"]
    if not isinstance(notification_id, str) or not notification_id:
        raise MalformedPayload("notificationId must be a non-empty string")
    _bounded(notification_id, "notificationId", ID_MAX)
    if data["notificationType"] not in NOTIFICATION_TYPES:
        raise MalformedPayload(f"unknown notificationType {data['notificationType']!r}")
    event = event_parse(data["eventId"], data["eventCreatedAtUtc"], data["payload"])
    return NotificationIn(
        notification_id=notification_id,
        notification_type=data["notificationType"],
        sent_at=timestamp_parse(data["notificationSentUtc"], "notificationSentUtc"),
        event=event,
        body=data,
    )


# --- reports -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnergyUsageIn:
    """Energy used per hour by one target over an event's hours (UTC hour starts, kWh)."""

    resource_id: str
    location_id: str
    meter_point_id: str
    hours: list[tuple[dt.datetime, float]]


def report_body(*, event_id: str, usages: Sequence[EnergyUsageIn]) -> dict[str, Any]:
    """`POST /reports` body: one `EnergyUsage` payload per target, hourly resolution."""
    return {
        "eventId": event_id,
        "payloads": [
            {
                "payloadType": "EnergyUsage",
                # resourceId is required by the schema; a whole-location target has none,
                # so its location id stands in for it.
                "resourceId": usage.resource_id or usage.location_id,
                "locationId": usage.location_id or None,
                "meterPointId": usage.meter_point_id or None,
                "resolution": "01:00:00",
                "points": [
                    {"timestamp": ts.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
                     "kiloWattHours": round(kwh, 6)}
                    for ts, kwh in usage.hours
                ],
            }
            for usage in usages
        ],
    }


def enrollment_parse(answer: Any) -> Enrollment:
    when = answer.get("enrollmentDate")
    return Enrollment(
        enrolled=bool(answer.get("isEnrolled")),
        enrollment_id=str(answer.get("enrollmentId") or ""),
        enrolled_at=timestamp_parse(when, "enrollmentDate") if when else None,
    )
