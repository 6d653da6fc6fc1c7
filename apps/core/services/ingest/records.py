"""What goes into and comes out of `readings_ingest`: the incoming record and the result."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from apps.core.models import Reading

# The columns a valid record becomes, in the order of the row tuples the engines write.
_FIELDS = ("device_id", "parameter_id", "ts", "period_end", "value", "estimated", "quality",
           "cost", "currency")


@dataclass(slots=True)
class ReadingIn:
    """One incoming reading, as an edge (API, sync, replay) hands it over."""

    device: str  # the device's external id
    parameter: str  # the parameter key, e.g. "active_energy_delta"
    ts: dt.datetime | str
    value: Any
    period_end: dt.datetime | str | None = None
    estimated: bool = False
    quality: int = Reading.Quality.GOOD
    cost: Any = None
    currency: str = ""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ReadingIn:
        """Build from a raw dict; missing keys become values the validation refuses."""
        return cls(
            device=data.get("device", ""),
            parameter=data.get("parameter", ""),
            ts=data.get("ts", ""),
            value=data.get("value"),
            period_end=data.get("period_end"),
            estimated=data.get("estimated", False),
            quality=data.get("quality", Reading.Quality.GOOD),
            cost=data.get("cost"),
            currency=data.get("currency") or "",
        )

    def as_payload(self) -> dict[str, Any]:
        """A JSON-safe copy for the quarantine (NaN and infinity kept as text)."""
        return {
            "device": _json_safe(self.device),
            "parameter": _json_safe(self.parameter),
            "ts": _json_safe(self.ts),
            "value": _json_safe(self.value),
            "period_end": _json_safe(self.period_end),
            "estimated": _json_safe(self.estimated),
            "quality": _json_safe(self.quality),
            "cost": _json_safe(self.cost),
            "currency": _json_safe(self.currency),
        }


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    reason: str
    # The ReadingIn field the reason is about ("ts", "value", "currency", …).
    field: str | None = None


@dataclass(slots=True)
class IngestResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    # Repeats of a natural key within one call: the last one wins, the earlier are counted here.
    duplicates: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def as_counts(self) -> dict[str, int]:
        return {
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "quarantined": self.quarantined,
            "duplicates": self.duplicates,
        }


class InvalidReading(ValueError):
    """A record the hub refuses; `field` names the ReadingIn field at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _text_safe(value: str) -> str:
    # PostgreSQL text and jsonb cannot hold NUL; keep it visible instead of failing the batch.
    return value.replace("\x00", "\\x00")


def _json_safe(value: Any) -> Any:
    if isinstance(value, str):
        return _text_safe(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return _text_safe(repr(value))
