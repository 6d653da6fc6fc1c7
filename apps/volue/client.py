"""Volue Energy Coordination's wire format, and nothing else.

Every call is an operation of the Partner API (v1, 2026; `apps/volue/openapi/partner-v1.json`):
users, locations, vehicles and location-bound resources, enrollment, eligibility and
compensation, webhooks, `/events` and `/reports`. The rest of the app speaks the dataclasses
below.
"""

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

from django.conf import settings

from apps.core.http import ApiClient, ClientCredentialsAuth, PermanentError, response_json
from apps.core.jsonbody import unstorable_find
from apps.volue.schemas import (
    CompensationIn,
    Enrollment,
    LocationCompensationIn,
    LocationIn,
    RemoteLocation,
    RemoteResource,
    ResourceIn,
    VolueRefused,
    is_gone,
    refusal_reason,
)

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


# --- the client --------------------------------------------------------------------------


class VolueClient:
    """One method per Partner API operation (v1); answers come back as the dataclasses above.

    Paths and bodies are the document's (`apps/volue/openapi/partner-v1.json`) and nothing
    else: the 2023 quickstart's `/users/{userId}/meters` is gone from it, and the quickstart
    documents no way to list, update or delete a meter, so the hub no longer speaks it.
    """

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    def _call(self, operation: str, method: str, path: str, **kwargs: Any) -> Any:
        """Send one operation; a 4xx is re-raised naming the operation and what it refused."""
        try:
            response = self.api.request(method, path, **kwargs)
        except PermanentError as exc:
            if exc.status_code is None or not 400 <= exc.status_code < 500 or \
                    exc.status_code in (401, 403):
                raise
            reason = refusal_reason(exc.body) if exc.status_code != 404 else "not found"
            raise VolueRefused(
                f"Volue refused {operation} ({method} /{path}) with {exc.status_code}: {reason}",
                status_code=exc.status_code, body=exc.body, url=exc.url,
            ) from exc
        if response.status_code == 204 or not response.content:
            return None
        return response_json(response)

    # users

    def user_create(self, *, user_id: str) -> str:
        answer = self._call("PostUser", "POST", "users", json={"userId": user_id})
        return str((answer or {}).get("userId") or user_id)

    def users_create(self, *, user_ids: Sequence[str]) -> list[str]:
        """`POST /users/batch`: all of them or none."""
        answer = self._call("PostUsers", "POST", "users/batch",
                            json={"users": [{"userId": u} for u in user_ids]})
        return [str(row["userId"]) for row in (answer or {}).get("users") or []]

    def user_exists(self, *, user_id: str) -> bool:
        try:
            self._call("GetUserById", "GET", f"users/{user_id}")
        except VolueRefused as exc:
            if is_gone(exc):
                return False
            raise
        return True

    def user_delete(self, *, user_id: str) -> None:
        self._call("DeleteUserById", "DELETE", f"users/{user_id}")

    # locations

    def location_create(self, *, user_id: str, location: LocationIn) -> str:
        answer = self._call("PostLocation", "POST", f"users/{user_id}/locations",
                            json=location.body())
        return str((answer or {}).get("locationId") or location.location_id)

    def locations_create(self, *, items: Sequence[tuple[str, LocationIn]]) -> list[str]:
        """`POST /users/locations/batch` for (user id, location) pairs: all of them or none."""
        body = {"locations": [{**location.body(), "userId": user_id}
                              for user_id, location in items]}
        answer = self._call("PostLocations", "POST", "users/locations/batch", json=body)
        return [str(row["locationId"]) for row in (answer or {}).get("locations") or []]

    def locations_list(self, *, user_id: str) -> list[RemoteLocation]:
        answer = self._call("GetLocationsByUserId", "GET", f"users/{user_id}/locations")
        return [
            RemoteLocation(location_id=str(row["locationId"]),
                           meter_point_ids=tuple(str(m) for m in row.get("meterPointIds") or []))
            for row in answer or [] if isinstance(row, dict) and row.get("locationId")
        ]

    def location_exists(self, *, user_id: str, location_id: str) -> bool:
        try:
            self._call("GetLocationByLocationId", "GET",
                       f"users/{user_id}/locations/{location_id}")
        except VolueRefused as exc:
            if is_gone(exc):
                return False
            raise
        return True

    def location_update(self, *, user_id: str, location: LocationIn) -> None:
        self._call("UpdateLocation", "PUT", f"users/{user_id}/locations/{location.location_id}",
                   json=location.body())

    def location_delete(self, *, user_id: str, location_id: str) -> None:
        self._call("DeleteLocation", "DELETE", f"users/{user_id}/locations/{location_id}")

    # resources

    def resource_create(self, *, user_id: str, resource: ResourceIn) -> None:
        if resource.vehicle:
            self._call("PostVehicle", "POST", f"users/{user_id}/vehicles",
                       json={"resourceId": resource.resource_id,
                             "resourceType": resource.resource_type})
            return
        body = {"resourceId": resource.resource_id, "resourceType": resource.resource_type}
        if resource.meter_point_id:
            body["meterPointId"] = resource.meter_point_id
        self._call("PostLocationBoundResource", "POST",
                   f"users/{user_id}/locations/{resource.location_id}/resources", json=body)

    def resource_get(self, *, resource_id: str) -> RemoteResource | None:
        try:
            row = self._call("GetResourceById", "GET", f"resources/{resource_id}")
        except VolueRefused as exc:
            if is_gone(exc):
                return None
            raise
        return RemoteResource(
            resource_id=str(row["resourceId"]), resource_type=str(row.get("resourceType")),
            user_id=str(row.get("userId") or ""), location_id=str(row.get("locationId") or ""),
            meter_point_id=str(row.get("meterPointId") or ""),
        )

    def resource_delete(self, *, resource_id: str) -> None:
        self._call("DeleteResourceById", "DELETE", f"resources/{resource_id}")

    # enrollment, eligibility, compensation

    def enrollment_get(self, *, user_id: str) -> Enrollment:
        return _enrollment(self._call("GetUserEnrollmentByUserId", "GET",
                                      f"users/{user_id}/enrollment"))

    def enrollment_create(self, *, user_id: str) -> Enrollment:
        return _enrollment(self._call("PostUserEnrollment", "POST",
                                      f"users/{user_id}/enrollment"))

    def enrollment_delete(self, *, user_id: str) -> None:
        self._call("DeleteUserEnrollment", "DELETE", f"users/{user_id}/enrollment")

    def eligibility_get(self, *, user_id: str) -> bool:
        answer = self._call("GetUserEligibilityByUserId", "GET", f"users/{user_id}/eligibility")
        return bool(answer["isEligible"])

    def meter_point_eligible(self, *, meter_point_id: str) -> bool:
        answer = self._call("GetMpidEligibility", "GET", f"meters/{meter_point_id}/eligible")
        return bool(answer["isEligible"])

    def compensation_get(self, *, user_id: str) -> CompensationIn:
        answer = self._call("FetchUserCompensation", "GET", f"users/{user_id}/compensation")
        period = answer.get("period") or {}
        return CompensationIn(
            period_from=str(period.get("from") or ""), period_to=str(period.get("to") or ""),
            locations=[
                LocationCompensationIn(
                    location_id=str(row.get("locationId") or ""),
                    active_amount=float(row.get("activeAmount") or 0),
                    blocked_amount=float(row.get("blockedAmount") or 0),
                    currency=str(row.get("currency") or ""),
                    problems=[str(p.get("message")) for p in row.get("problems") or []],
                )
                for row in answer.get("locationCompensations") or []
            ],
        )

    # webhooks, events, reports

    def webhook_create(self, *, name: str, url: str, secret: str, types: Sequence[str]) -> str:
        body = {"name": name, "webhookSecret": secret, "webhookUrl": url,
                "notificationTypes": list(types)}
        answer = self._call("PostWebhook", "POST", "webhooks", json=body)
        return str(answer["webhookId"])

    def webhook_update(
        self, *, webhook_id: str, name: str, url: str, secret: str, types: Sequence[str]
    ) -> None:
        body = {"name": name, "webhookSecret": secret, "webhookUrl": url,
                "notificationTypes": list(types)}
        self._call("UpdateWebhookById", "PUT", f"webhooks/{webhook_id}", json=body)

    def webhook_delete(self, *, webhook_id: str) -> None:
        self._call("DeleteWebhookById", "DELETE", f"webhooks/{webhook_id}")

    def events_page(self, *, page: int = 1, page_size: int = 100) -> EventsPage:
        """One page of GET /events, newest first (the platform caps pageSize at 1000)."""
        params = {"page": page, "pageSize": min(page_size, 1000)}
        answer = self._call("GetAllEvents", "GET", "events", params=params) or {}
        events, malformed = [], []
        for row in answer.get("events") or []:
            try:
                events.append(event_parse(row.get("id"), row.get("createdAt"), row.get("payload")))
            except (MalformedPayload, AttributeError) as exc:
                malformed.append(f"{row.get('id') if isinstance(row, dict) else row!r}: {exc}")
        next_page = (answer.get("pagination") or {}).get("nextPage")
        return EventsPage(
            events=events, next_page=int(next_page) if next_page else None, malformed=malformed
        )

    def report_send(self, *, body: dict[str, Any]) -> str:
        """POST /reports; the platform's report id.

        Sent once per call: the Partner API cannot look a report up or replace it, so a
        POST that lost its answer is not repeated here (the caller decides)."""
        answer = self._call("PostReport", "POST", "reports", json=body, retry_unanswered=False)
        return str(answer.get("id", "")) if isinstance(answer, dict) else ""


def _enrollment(answer: Any) -> Enrollment:
    when = answer.get("enrollmentDate")
    return Enrollment(
        enrolled=bool(answer.get("isEnrolled")),
        enrollment_id=str(answer.get("enrollmentId") or ""),
        enrolled_at=timestamp_parse(when, "enrollmentDate") if when else None,
    )


def volue_client(**api_options: Any) -> VolueClient:
    """The client configured from settings; tokens are shared by every worker via the cache."""
    auth = ClientCredentialsAuth(
        settings.VOLUE_AUTH_URL, settings.VOLUE_CLIENT_ID, settings.VOLUE_CLIENT_SECRET,
        **{k: api_options[k] for k in ("clock", "sleep") if k in api_options},
    )
    options = {"max_retries": 2, "backoff_base": 0.5, "max_wait": 30, **api_options}
    return VolueClient(ApiClient(settings.VOLUE_API_URL, name="volue", auth=auth, **options))
