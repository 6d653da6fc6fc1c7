"""The simulated platform's Partner API operations, one function per `operationId`.

The dispatcher (`views.partner_api`) has already matched the path and method against the
document and validated the request; these functions apply the platform's own rules (who owns
what, conflicts, existence) and return an `Answer` the dispatcher checks against the
document before it leaves.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.sandbox.volue.models import (
    SbEvent,
    SbLocation,
    SbMeterPoint,
    SbReport,
    SbResource,
    SbUser,
    SbWebhook,
)
from apps.sandbox.volue.platform import (
    TYPES,
    auto_event_later,
    compensation_of,
    meter_point_eligible,
    report_errors,
    user_eligible,
)

FAIL_REPORTS_KEY = "sandbox:volue:fail_reports"


@dataclass(frozen=True)
class Answer:
    status: int
    payload: Any = None  # JSON; a str is sent as a JSON string, as the platform does
    problem: bool = False  # send as application/problem+json


def _iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).isoformat()


def _page(request, rows: list[Any], key: str) -> dict[str, Any]:
    page = max(1, int(request.GET.get("page") or 1))
    size = min(1000, max(1, int(request.GET.get("pageSize") or 100)))
    total = len(rows)
    pages = max(1, math.ceil(total / size))
    return {key: rows[(page - 1) * size: page * size], "pagination": {
        "totalRecords": total, "pageSize": size, "currentPage": page, "totalPages": pages,
        "nextPage": page + 1 if page < pages else None,
        "previousPage": page - 1 if page > 1 else None}}


def _user(user_id: str) -> SbUser | None:
    return SbUser.objects.filter(user_id=user_id).first()


def _no_user(user_id: str) -> Answer:
    return Answer(404, f"User {user_id} not found.")


# --- users ------------------------------------------------------------------------------


def GetUsers(request, body) -> Answer:
    rows = [{"userId": u} for u in SbUser.objects.order_by("pk").values_list("user_id",
                                                                           flat=True)]
    return Answer(200, _page(request, rows, "users"))


def _user_create(user_id: str) -> SbUser | None:
    try:
        with transaction.atomic():
            return SbUser.objects.create(user_id=user_id)
    except IntegrityError:
        return None


def PostUser(request, body) -> Answer:
    # The document lists no 409 here: a user id taken is a 400 like any refused field.
    if _user_create(body["userId"]) is None:
        return Answer(400, f"userId: user {body['userId']} already exists.")
    return Answer(201, {"userId": body["userId"]})


def PostUsers(request, body) -> Answer:
    ids = [row["userId"] for row in body["users"]]
    taken = sorted(set(SbUser.objects.filter(user_id__in=ids).values_list("user_id", flat=True)))
    if taken or len(set(ids)) != len(ids):
        return Answer(400, f"users: already exist or repeated: {', '.join(taken) or ids}")
    with transaction.atomic():
        for user_id in ids:
            SbUser.objects.create(user_id=user_id)
    return Answer(201, {"users": [{"userId": u} for u in ids]})


def GetUserById(request, body, userId: str) -> Answer:
    found = _user(userId)
    return Answer(200, {"userId": found.user_id}) if found else Answer(404)


def DeleteUserById(request, body, userId: str) -> Answer:
    found = _user(userId)
    if found is None:
        return Answer(404)
    found.delete()
    return Answer(204)


# --- locations --------------------------------------------------------------------------


def _location_json(location: SbLocation) -> dict[str, Any]:
    out = {"locationId": location.location_id, "locationType": location.location_type,
           "meterPointIds": location.meter_point_ids, "userId": location.user.user_id}
    if location.coordinates:  # `Coordinate` is not nullable: absent, not null
        out["coordinates"] = location.coordinates
    return out


def _meter_points(body: dict[str, Any]) -> list[str]:
    ids = list(body.get("meterPointIds") or [])
    if body.get("meterPointId") and body["meterPointId"] not in ids:  # deprecated field
        ids.insert(0, body["meterPointId"])
    return ids


def _meter_points_taken(ids: list[str], *, by_other_than: SbLocation | None) -> list[str]:
    taken = SbMeterPoint.objects.filter(meter_point_id__in=ids)
    if by_other_than is not None:
        taken = taken.exclude(location=by_other_than)
    return list(taken.values_list("meter_point_id", flat=True))


def _location_write(location: SbLocation, body: dict[str, Any], *, partial: bool) -> None:
    if "locationType" in body or not partial:
        location.location_type = body.get("locationType") or "Unknown"
    if "coordinates" in body or not partial:
        location.coordinates = body.get("coordinates")
    location.save()
    if "meterPointIds" in body or "meterPointId" in body or not partial:
        wanted = _meter_points(body)
        location.meter_points.exclude(meter_point_id__in=wanted).delete()
        for meter_point_id in wanted:
            SbMeterPoint.objects.get_or_create(meter_point_id=meter_point_id, location=location)


def _location_create(owner: SbUser, body: dict[str, Any]) -> SbLocation | str:
    """The new location, or why it conflicts."""
    if SbLocation.objects.filter(location_id=body["locationId"]).exists():
        return f"Location {body['locationId']} already exists."
    taken = _meter_points_taken(_meter_points(body), by_other_than=None)
    if taken:
        return f"Meter point {', '.join(taken)} is already registered to a location."
    try:
        with transaction.atomic():
            location = SbLocation.objects.create(location_id=body["locationId"], user=owner)
            _location_write(location, body, partial=False)
    except IntegrityError:
        return f"Location {body['locationId']} or one of its meter points already exists."
    return location


def PostLocation(request, body, userId: str) -> Answer:
    owner = _user(userId)
    if owner is None:
        return _no_user(userId)
    created = _location_create(owner, body)
    if isinstance(created, str):
        return Answer(409, created)
    if settings.SANDBOX_VOLUE_AUTO_EVENT:
        auto_event_later()
    return Answer(201, _location_json(created))


def PostLocations(request, body) -> Answer:
    rows = body["locations"]
    owners = {u.user_id: u for u in SbUser.objects.filter(
        user_id__in={row["userId"] for row in rows})}
    missing = sorted({row["userId"] for row in rows} - set(owners))
    if missing:
        return Answer(400, f"locations: users not found: {', '.join(missing)}")
    created = []
    try:
        with transaction.atomic():
            for i, row in enumerate(rows):
                location = _location_create(owners[row["userId"]],
                                            {k: v for k, v in row.items() if k != "userId"})
                if isinstance(location, str):
                    raise _BatchRefused(f"locations[{i}]: {location}")
                created.append(location)
    except _BatchRefused as refused:  # all or nothing, as a batch should be
        return Answer(400, str(refused))
    if settings.SANDBOX_VOLUE_AUTO_EVENT:
        auto_event_later()
    return Answer(201, {"locations": [_location_json(loc) for loc in created]})


class _BatchRefused(Exception):
    pass


def GetLocationsByUserId(request, body, userId: str) -> Answer:
    owner = _user(userId)
    if owner is None:
        return _no_user(userId)
    return Answer(200, [_location_json(loc) for loc in
                        owner.locations.prefetch_related("meter_points")])


def _location(userId: str, locationId: str) -> SbLocation | None:
    return SbLocation.objects.filter(user__user_id=userId, location_id=locationId).first()


def GetLocationByLocationId(request, body, userId: str, locationId: str) -> Answer:
    found = _location(userId, locationId)
    return Answer(200, _location_json(found)) if found else Answer(404)


def UpdateLocation(request, body, userId: str, locationId: str) -> Answer:
    found = _location(userId, locationId)
    if found is None:
        return Answer(404)
    if body["locationId"] != locationId:
        return Answer(400, f"locationId: {body['locationId']} is not the location updated "
                           f"({locationId}).")
    if _meter_points_taken(_meter_points(body), by_other_than=found):
        # The document lists no 409 for PUT: a meter point of another location is a 400.
        return Answer(400, "meterPointIds: a meter point belongs to another location.")
    _location_write(found, body, partial=False)
    return Answer(200, _location_json(found))


def PatchLocation(request, body, userId: str, locationId: str) -> Answer:
    found = _location(userId, locationId)
    if found is None:
        return Answer(404)
    if "meterPointIds" in body and _meter_points_taken(_meter_points(body), by_other_than=found):
        return Answer(409)
    _location_write(found, body, partial=True)
    return Answer(200, _location_json(found))


def DeleteLocation(request, body, userId: str, locationId: str) -> Answer:
    found = _location(userId, locationId)
    if found is None:
        return Answer(404)
    found.delete()
    return Answer(204)


# --- resources --------------------------------------------------------------------------


def _resource_json(resource: SbResource, *, bound: bool = False) -> dict[str, Any]:
    out = {"resourceId": resource.resource_id, "resourceType": resource.resource_type,
           "userId": resource.user.user_id,
           "locationId": resource.location.location_id if resource.location else None,
           "meterPointId": resource.meter_point_id or None}
    if bound and out["locationId"] is None:  # pragma: no cover - bound resources have one
        out.pop("locationId")
    return out


def _resource_create(owner: SbUser, body: dict[str, Any],
                     location: SbLocation | None) -> SbResource | None:
    try:
        with transaction.atomic():
            return SbResource.objects.create(
                resource_id=body["resourceId"], user=owner, location=location,
                resource_type=body["resourceType"], meter_point_id=body.get("meterPointId") or "",
            )
    except IntegrityError:
        return None


def PostVehicle(request, body, userId: str) -> Answer:
    owner = _user(userId)
    if owner is None:
        return Answer(400, {"title": "One or more validation errors occurred.", "status": 400,
                            "errors": {"userId": [f"User {userId} not found."]}}, problem=True)
    if body["resourceType"] != "Vehicle":
        return Answer(400, {"title": "One or more validation errors occurred.", "status": 400,
                            "errors": {"resourceType": ["A vehicle's resourceType is Vehicle."]}},
                      problem=True)
    created = _resource_create(owner, body, None)
    if created is None:
        return Answer(400, {"title": "One or more validation errors occurred.", "status": 400,
                            "errors": {"resourceId": [
                                f"Resource {body['resourceId']} already exists."]}},
                      problem=True)
    return Answer(201, _resource_json(created))


def PostLocationBoundResource(request, body, userId: str, locationId: str) -> Answer:
    location = _location(userId, locationId)
    if location is None:
        return Answer(404, f"Location {locationId} of user {userId} not found.")
    meter_point = body.get("meterPointId")
    if meter_point and meter_point not in location.meter_point_ids:
        return Answer(400, f"meterPointId: {meter_point} is not a meter point of location "
                           f"{locationId}.")
    created = _resource_create(location.user, body, location)
    if created is None:
        return Answer(400, f"resourceId: resource {body['resourceId']} already exists.")
    return Answer(201, _resource_json(created, bound=True))


def GetResourcesForUser(request, body, userId: str) -> Answer:
    owner = _user(userId)
    if owner is None:
        return Answer(404)
    return Answer(200, {"resources": [_resource_json(r) for r in
                                      owner.resources.select_related("location", "user")]})


def GetLocationBoundResources(request, body, userId: str, locationId: str) -> Answer:
    location = _location(userId, locationId)
    if location is None:
        return Answer(404)
    return Answer(200, [_resource_json(r, bound=True)
                        for r in location.resources.select_related("location", "user")])


def GetResourceById(request, body, resourceId: str) -> Answer:
    found = SbResource.objects.select_related("user", "location").filter(
        resource_id=resourceId).first()
    if found is None:
        return Answer(404, f"Resource {resourceId} not found.")
    return Answer(200, _resource_json(found))


def DeleteResourceById(request, body, resourceId: str) -> Answer:
    found = SbResource.objects.filter(resource_id=resourceId).first()
    if found is None:
        return Answer(404)
    found.delete()
    return Answer(204)


# --- enrollment, eligibility, compensation ----------------------------------------------


def _enrollment_json(user: SbUser) -> dict[str, Any]:
    return {"isEnrolled": user.enrolled_at is not None, "userId": user.user_id,
            "enrollmentId": str(user.enrollment_id) if user.enrollment_id else None,
            "enrollmentDate": _iso(user.enrolled_at) if user.enrolled_at else None}


def GetUserEnrollmentByUserId(request, body, userId: str) -> Answer:
    owner = _user(userId)
    return Answer(200, _enrollment_json(owner)) if owner else Answer(404)


def PostUserEnrollment(request, body, userId: str) -> Answer:
    owner = _user(userId)
    if owner is None:
        return Answer(404)
    if not user_eligible(owner):
        return Answer(400, f"userId: user {userId} is not eligible: register a location with "
                           "an eligible meter point first.")
    if owner.enrolled_at is None:  # enrolling twice keeps the first enrollment
        owner.enrollment_id, owner.enrolled_at = uuid.uuid4(), timezone.now()
        owner.save(update_fields=["enrollment_id", "enrolled_at"])
    return Answer(200, _enrollment_json(owner))


def DeleteUserEnrollment(request, body, userId: str) -> Answer:
    owner = _user(userId)
    if owner is None or owner.enrolled_at is None:
        return Answer(404)
    owner.enrollment_id, owner.enrolled_at = None, None
    owner.save(update_fields=["enrollment_id", "enrolled_at"])
    return Answer(204)


def GetUserEligibilityByUserId(request, body, userId: str) -> Answer:
    owner = _user(userId)
    if owner is None:
        return Answer(404)
    return Answer(200, {"userId": owner.user_id, "isEligible": user_eligible(owner)})


def GetEligibleUsers(request, body) -> Answer:
    rows = [{"userId": u.user_id} for u in SbUser.objects.order_by("pk") if user_eligible(u)]
    return Answer(200, _page(request, rows, "users"))


def FetchUserCompensation(request, body, userId: str) -> Answer:
    owner = _user(userId)
    if owner is None:
        return Answer(404)
    return Answer(200, compensation_of(owner, now=timezone.now()))


def GetMpidEligibility(request, body, mpid: str) -> Answer:
    return Answer(200, {"meterPointId": mpid, "isEligible": meter_point_eligible(mpid)})


# --- webhooks ---------------------------------------------------------------------------


def _webhook_json(hook: SbWebhook) -> dict[str, Any]:
    return {"webhookId": hook.webhook_id, "webhookUrl": hook.url, "name": hook.name,
            "notificationTypes": hook.notification_types, "enabled": hook.enabled,
            "status": "Healthy", "modifiedDate": _iso(hook.modified_at),
            "createdDate": _iso(hook.created_at)}


def _hook(webhook_id: str) -> SbWebhook | None:
    return SbWebhook.objects.filter(webhook_id=webhook_id).first()


def GetWebhooks(request, body) -> Answer:
    return Answer(200, {"webhooks": [_webhook_json(h) for h in SbWebhook.objects.all()]})


def PostWebhook(request, body) -> Answer:
    hook = SbWebhook.objects.create(
        webhook_id=str(uuid.uuid4()), name=body.get("name") or "", url=body["webhookUrl"],
        secret=body.get("webhookSecret") or "",
        notification_types=body.get("notificationTypes") or list(TYPES),
    )
    return Answer(201, _webhook_json(hook))


def GetWebhookById(request, body, webhookId: str) -> Answer:
    hook = _hook(webhookId)
    return Answer(200, _webhook_json(hook)) if hook else Answer(404)


def _webhook_write(hook: SbWebhook, body: dict[str, Any]) -> None:
    hook.url = body.get("webhookUrl") or hook.url
    hook.name = body.get("name") or hook.name
    hook.secret = body.get("webhookSecret") or hook.secret
    hook.notification_types = body.get("notificationTypes") or hook.notification_types
    if "enabled" in body:
        hook.enabled = bool(body["enabled"])
    hook.save()


def UpdateWebhookById(request, body, webhookId: str) -> Answer:
    hook = _hook(webhookId)
    if hook is None:
        return Answer(404)
    _webhook_write(hook, body)
    return Answer(200, _webhook_json(hook))


PatchWebhookById = UpdateWebhookById


def DeleteWebhookById(request, body, webhookId: str) -> Answer:
    hook = _hook(webhookId)
    if hook is None:
        return Answer(404, f"Webhook {webhookId} not found.")
    hook.delete()
    return Answer(204)


# --- events and reports -----------------------------------------------------------------


def _event_json(event: SbEvent) -> dict[str, Any]:
    return {"id": event.event_id, "createdAt": _iso(event.created_at), "payload": event.payload}


def GetAllEvents(request, body) -> Answer:
    return Answer(200, _page(request, [_event_json(e) for e in SbEvent.objects.all()], "events"))


def GetEventById(request, body, eventId: str) -> Answer:
    found = SbEvent.objects.filter(event_id=eventId).first()
    return Answer(200, _event_json(found)) if found else Answer(404)


def PostReport(request, body) -> Answer:
    failures = cache.get(FAIL_REPORTS_KEY) or 0
    if failures > 0:
        # A fault the test knobs switch on; the real service's outages are not in the document.
        cache.set(FAIL_REPORTS_KEY, failures - 1, timeout=3600)
        return Answer(503, {"title": "Service Unavailable", "status": 503})
    error = report_errors(body)
    if error:
        return Answer(400, error)
    saved = SbReport.objects.create(report_id=str(uuid.uuid4()),
                                    event_id=body.get("eventId") or "", body=body)
    return Answer(200, {"id": saved.report_id, "eventId": saved.event_id,
                        "createdAt": _iso(saved.received_at)})


# operationId -> implementation; the document's other operations (simulation, webhook logs,
# enabling a webhook) answer 501 from the dispatcher.
OPERATIONS: dict[str, Callable[..., Answer]] = {
    "GetUsers": GetUsers,
    "PostUser": PostUser,
    "PostUsers": PostUsers,
    "GetUserById": GetUserById,
    "DeleteUserById": DeleteUserById,
    "PostLocation": PostLocation,
    "PostLocations": PostLocations,
    "GetLocationsByUserId": GetLocationsByUserId,
    "GetLocationByLocationId": GetLocationByLocationId,
    "UpdateLocation": UpdateLocation,
    "PatchLocation": PatchLocation,
    "DeleteLocation": DeleteLocation,
    "PostVehicle": PostVehicle,
    "PostLocationBoundResource": PostLocationBoundResource,
    "GetResourcesForUser": GetResourcesForUser,
    "GetLocationBoundResources": GetLocationBoundResources,
    "GetResourceById": GetResourceById,
    "DeleteResourceById": DeleteResourceById,
    "GetUserEnrollmentByUserId": GetUserEnrollmentByUserId,
    "PostUserEnrollment": PostUserEnrollment,
    "DeleteUserEnrollment": DeleteUserEnrollment,
    "GetUserEligibilityByUserId": GetUserEligibilityByUserId,
    "GetEligibleUsers": GetEligibleUsers,
    "FetchUserCompensation": FetchUserCompensation,
    "GetMpidEligibility": GetMpidEligibility,
    "GetWebhooks": GetWebhooks,
    "PostWebhook": PostWebhook,
    "GetWebhookById": GetWebhookById,
    "UpdateWebhookById": UpdateWebhookById,
    "PatchWebhookById": PatchWebhookById,
    "DeleteWebhookById": DeleteWebhookById,
    "GetAllEvents": GetAllEvents,
    "GetEventById": GetEventById,
    "PostReport": PostReport,
}
