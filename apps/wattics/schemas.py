"""The Wattics wire format: packet fields, units, local timestamps, one-line JSON.

Seed rules: electricity packets carry per-phase fields in W, VAr, VA, V, A and Wh (energy
since the meter's start); a single total goes on phase 1 (`pC_1`); other quantities use
`{id, tsISO8601, value}`; timestamps are the meter's local time with offset and
milliseconds; one packet per POST, on one line.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from functools import lru_cache

from apps.wattics.models import ELECTRICITY_FIELDS

# Unit families: the Wattics unit of each field prefix, and factors into it.
_FAMILIES: dict[str, dict[str, float]] = {
    "W": {"W": 1, "kW": 1e3, "MW": 1e6, "mW": 1e-3},
    "VAr": {"VAr": 1, "var": 1, "kVAr": 1e3, "kvar": 1e3, "MVAr": 1e6},
    "VA": {"VA": 1, "kVA": 1e3, "MVA": 1e6},
    "V": {"V": 1, "kV": 1e3, "mV": 1e-3},
    "A": {"A": 1, "kA": 1e3, "mA": 1e-3},
    "Wh": {"Wh": 1, "kWh": 1e3, "MWh": 1e6, "GWh": 1e9},
}
FIELD_UNIT = {"aP": "W", "rP": "VAr", "apP": "VA", "v": "V", "c": "A", "pC": "Wh"}
# Parameters a default electricity stream maps, totals on phase 1.
DEFAULT_ELECTRICITY_CHANNELS = {
    "aP_1": "active_power",
    "rP_1": "inductive_reactive_power",
    "apP_1": "apparent_power",
    "v_1": "voltage",
    "c_1": "current",
    "pC_1": "active_energy",
}


class UnitError(ValueError):
    pass


def field_unit(field: str) -> str | None:
    """The Wattics unit of a packet field; None for `value` (sent as stored)."""
    if field == "value":
        return None
    if field not in ELECTRICITY_FIELDS:
        raise UnitError(f"'{field}' is not a Wattics packet field")
    return FIELD_UNIT[field.split("_")[0]]


def unit_factor(field: str, source_unit: str) -> float:
    """Factor from `source_unit` to the field's Wattics unit (kW → W is 1000)."""
    target = field_unit(field)
    if target is None:
        return 1.0
    factors = _FAMILIES[target]
    if source_unit not in factors:
        known = ", ".join(factors)
        raise UnitError(
            f"{field} is sent in {target}; a reading in '{source_unit or 'no unit'}' cannot "
            f"be converted (map a parameter measured in one of: {known})"
        )
    return float(factors[source_unit])


def convert(value: float, factor: float) -> float | int:
    converted = round(value * factor, 6)
    return int(converted) if converted.is_integer() and abs(converted) < 2**53 else converted


@lru_cache(maxsize=256)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def local_timestamp(ts: dt.datetime, zone: str) -> str:
    """`yyyy-MM-ddTHH:mm:ss.SSS±hh:mm` in the meter's zone (never `Z`)."""
    if ts.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    local = ts.astimezone(_zone(zone))
    offset = local.utcoffset() or dt.timedelta(0)
    if offset.seconds % 60:
        # Local mean time (before ~1900) has offsets in seconds, which ±hh:mm cannot carry:
        # write the instant at the offset rounded to the minute instead.
        offset = dt.timedelta(minutes=round(offset.total_seconds() / 60))
        local = ts.astimezone(dt.timezone(offset))
    sign = "-" if offset < dt.timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    # Four-digit years: strftime's %Y does not pad years before 1000.
    return (f"{local.year:04d}-{local:%m-%dT%H:%M:%S}.{local.microsecond // 1000:03d}"
            f"{sign}{minutes // 60:02d}:{minutes % 60:02d}")


def parse_timestamp(text: str) -> dt.datetime:
    """The instant of a `tsISO8601` value (an offset is required)."""
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"'{text}' has no UTC offset")
    return value


def build_packet(meter_id: str, ts: dt.datetime, zone: str, fields: dict[str, float]) -> dict:
    """One packet: id and local timestamp first, then the fields in Wattics' order."""
    packet: dict = {"id": meter_id, "tsISO8601": local_timestamp(ts, zone)}
    if "value" in fields:
        packet["value"] = fields["value"]
        return packet
    for name in ELECTRICITY_FIELDS:
        if name in fields:
            packet[name] = fields[name]
    return packet


def packet_line(packet: dict) -> str:
    """The packet as sent: compact JSON on one line (json never emits raw newlines)."""
    return json.dumps(packet, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
