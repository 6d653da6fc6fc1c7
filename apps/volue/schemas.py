"""The Partner API's registration shapes (users, locations, resources, enrollment,
compensation) and its refusals, as the hub reads and writes them; `client.py` sends them."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from apps.core.http import PermanentError

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
