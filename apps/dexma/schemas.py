"""Which IS3 parameter id a reading goes out as, and whether IS3 would keep it.

Seed, step 5: cumulative and instantaneous readings use the three-digit base code; interval
readings use the five-digit `SSSFO` code (base, frequency, operation). An interval reading
must start on its interval boundary in the datasource's time zone: IS3 answers 200 OK to a
misaligned one and silently discards it, so the hub refuses it here instead.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from apps.core.models import Parameter

MAX_DID = 25
MAX_VALUES = 5000  # IS3: at most 5,000 readings per message

# Frequency digit F of SSSFO, and the APIv3 read-back resolution of the same interval.
FREQUENCY_DIGIT = {"QH": 0, "H": 1, "D": 2, "W": 3, "M": 4, "HH": 6, "TM": 7, "FM": 8}
FREQUENCY_LABEL = {"FM": "5 min", "TM": "10 min", "QH": "15 min", "HH": "30 min", "H": "hour",
                   "D": "day", "W": "week", "M": "month"}
_MINUTES = {5: "FM", 10: "TM", 15: "QH", 30: "HH", 60: "H"}
OPERATION_DIGIT = {Parameter.Operation.DELTA: 1, Parameter.Operation.AVG: 2,
                   Parameter.Operation.MAX: 3, Parameter.Operation.MIN: 4}
_OPERATION_FOR_NATURE = {
    Parameter.Nature.ACCUMULATED: {Parameter.Operation.DELTA},
    Parameter.Nature.INSTANTANEOUS: {Parameter.Operation.AVG, Parameter.Operation.MAX,
                                     Parameter.Operation.MIN},
}


class Is3MappingError(ValueError):
    """What DEXMA's IS3 cannot take; the message says what to change. (Not pull's
    `MappingError`, a provider record the hub cannot read.)"""


def frequency_of(start: dt.datetime, end: dt.datetime | None) -> str:
    """The DEXMA frequency of an interval from its length (days, weeks and months vary by an
    hour across DST changes, months by their length)."""
    if end is None:
        raise Is3MappingError("interval reading without a period end: its frequency is unknown")
    seconds = (end - start).total_seconds()
    minutes = seconds / 60
    if minutes in _MINUTES:
        return _MINUTES[minutes]
    hours = seconds / 3600
    if 23 <= hours <= 25:
        return "D"
    if 167 <= hours <= 169:
        return "W"
    if 28 * 24 - 1 <= hours <= 31 * 24 + 1:
        return "M"
    raise Is3MappingError(
        f"no DEXMA code for a {end - start} interval: IS3 takes 5, 10, 15 and 30 minutes, "
        "hours, days, weeks and months"
    )


def code_for(parameter: Parameter, frequency: str | None = None) -> int:
    """The IS3 parameter id `p`: the base code, or SSSFO for interval data."""
    if parameter.dexma_code is None:
        raise Is3MappingError(f"parameter '{parameter.key}' has no DEXMA code")
    if parameter.kind != Parameter.Kind.INTERVAL:
        return parameter.dexma_code
    allowed = _OPERATION_FOR_NATURE.get(parameter.nature, set())
    if parameter.operation not in OPERATION_DIGIT or parameter.operation not in allowed:
        raise Is3MappingError(
            f"parameter '{parameter.key}': no DEXMA code for operation "
            f"'{parameter.operation or 'none'}' on {parameter.nature} data (delta for "
            "accumulated, avg/max/min for instantaneous)"
        )
    if frequency not in FREQUENCY_DIGIT:
        raise Is3MappingError(f"parameter '{parameter.key}': no DEXMA code for frequency "
                              f"'{frequency}'")
    return (parameter.dexma_code * 100 + FREQUENCY_DIGIT[frequency] * 10
            + OPERATION_DIGIT[parameter.operation])


def _local_midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=zone)


def interval_bounds(start: dt.datetime, frequency: str, zone: ZoneInfo) -> tuple[dt.datetime,
                                                                                 dt.datetime]:
    """The boundary an interval containing `start` begins on, and the next one (local time)."""
    local = start.astimezone(zone)
    if frequency in ("FM", "TM", "QH", "HH", "H"):
        # Sub-daily boundaries are whole minutes of the local clock; the interval length is
        # fixed in real time (a QH is 15 minutes even across a DST change).
        step = {"FM": 5, "TM": 10, "QH": 15, "HH": 30, "H": 60}[frequency]
        minute = local.minute - local.minute % step
        begin = local.replace(minute=minute, second=0, microsecond=0).astimezone(dt.UTC)
        return begin, begin + dt.timedelta(minutes=step)
    day = local.date()
    if frequency == "D":
        return _local_midnight(day, zone), _local_midnight(day + dt.timedelta(days=1), zone)
    if frequency == "W":  # weeks begin on Monday
        monday = day - dt.timedelta(days=day.weekday())
        return _local_midnight(monday, zone), _local_midnight(monday + dt.timedelta(days=7),
                                                              zone)
    if frequency == "M":
        first = day.replace(day=1)
        following = (first + dt.timedelta(days=32)).replace(day=1)
        return _local_midnight(first, zone), _local_midnight(following, zone)
    raise Is3MappingError(f"unknown frequency '{frequency}'")


def misalignment(start: dt.datetime, end: dt.datetime | None, frequency: str,
                 zone: ZoneInfo) -> str:
    """Why IS3 would discard this interval reading ("" when it is aligned)."""
    begin, following = interval_bounds(start, frequency, zone)
    if start != begin:
        local = start.astimezone(zone)
        return (f"misaligned {FREQUENCY_LABEL[frequency]} interval: starts at "
                f"{local.isoformat()} in {zone.key}, not on its boundary "
                f"{begin.isoformat()}; IS3 silently discards misaligned interval readings")
    if end is not None and end != following:
        return (f"interval {start.astimezone(zone).isoformat()} to "
                f"{end.astimezone(zone).isoformat()} does not end on the next "
                f"{FREQUENCY_LABEL[frequency]} boundary {following.isoformat()} in {zone.key}")
    return ""


@dataclass(frozen=True, slots=True)
class Channel:
    """One device parameter as the platform knows it."""

    device_id: int
    parameter_id: int
    did: str
    parameter: Parameter
    frequency: str | None = None  # fixed for interval parameters once known

    @property
    def interval(self) -> bool:
        return self.parameter.kind == Parameter.Kind.INTERVAL

    def code(self, frequency: str | None = None) -> int:
        return code_for(self.parameter, frequency or self.frequency)


def did_check(did: str) -> None:
    if not did:
        raise Is3MappingError("the device has no local id (DEXMA did)")
    if len(did) > MAX_DID:
        raise Is3MappingError(f"device local id '{did}' is {len(did)} characters; DEXMA's did "
                              f"takes at most {MAX_DID}")


def timestamp(ts: dt.datetime, zone: ZoneInfo) -> str:
    """IS3 wants ISO 8601 with an explicit offset: the datasource's local time."""
    return ts.astimezone(zone).isoformat()
