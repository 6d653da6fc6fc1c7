"""Volue Energy Coordination's Partner API calls, and nothing else.

Every call is an operation of the Partner API (v1, 2026; `apps/volue/openapi/partner-v1.json`):
users, locations, vehicles and location-bound resources, enrollment, eligibility and
compensation, webhooks, `/events` and `/reports`. The rest of the app speaks the dataclasses
of `schemas.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from django.conf import settings

from apps.core.http import (
    ApiClient,
    ClientCredentialsAuth,
    PermanentError,
    RetryPolicy,
    response_json,
)
from apps.volue.schemas import (
    CompensationIn,
    Enrollment,
    EventsPage,
    LocationCompensationIn,
    LocationIn,
    MalformedPayload,
    RemoteLocation,
    RemoteResource,
    ResourceIn,
    VolueRefused,
    enrollment_parse,
    event_parse,
    is_gone,
    refusal_reason,
)


class VolueClient:
    """One method per Partner API operation (v1); answers come back as `schemas`' dataclasses.

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
        return enrollment_parse(self._call("GetUserEnrollmentByUserId", "GET",
                                      f"users/{user_id}/enrollment"))

    def enrollment_create(self, *, user_id: str) -> Enrollment:
        return enrollment_parse(self._call("PostUserEnrollment", "POST",
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
        once = replace(self.api.retry, repeat_unanswered=False)
        answer = self._call("PostReport", "POST", "reports", json=body, retry=once)
        return str(answer.get("id", "")) if isinstance(answer, dict) else ""


def volue_client(**api_options: Any) -> VolueClient:
    """The client configured from settings; tokens are shared by every worker via the cache."""
    auth = ClientCredentialsAuth(
        settings.VOLUE_AUTH_URL, settings.VOLUE_CLIENT_ID, settings.VOLUE_CLIENT_SECRET,
        **{k: api_options[k] for k in ("clock", "sleep") if k in api_options},
    )
    retry = {"max_retries": 2, "backoff_base": 0.5, "max_wait": 30}
    retry.update({k: api_options.pop(k) for k in list(api_options) if k in retry})
    return VolueClient(ApiClient(settings.VOLUE_API_URL, name="volue", auth=auth,
                                 retry=RetryPolicy(**retry), **api_options))
