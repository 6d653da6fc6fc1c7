"""Simulated meters for the demo: plausible office-building readings, deterministic per
device and instant so a re-run produces the same values (ingest sees them as unchanged)."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterator
from functools import lru_cache

from apps.core.services import ReadingIn

QUARTER = dt.timedelta(minutes=15)
# Energy per quarter hour since this instant is what the cumulative index adds up.
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _noise(device: str, ts: dt.datetime) -> float:
    digest = hashlib.blake2b(f"{device}@{ts.isoformat()}".encode(), digest_size=4).digest()
    return int.from_bytes(digest) / 2**32 - 0.5


def _power_kw(device: str, ts: dt.datetime, base_kw: float) -> float:
    hour = ts.hour + ts.minute / 60
    daytime = max(0.0, math.sin((hour - 6) / 14 * math.pi)) if 6 <= hour <= 20 else 0.0
    weekday = 1.0 if ts.weekday() < 5 else 0.35
    return round(base_kw * (0.25 + 0.75 * daytime * weekday) * (1 + 0.1 * _noise(device, ts)), 3)


def base_load_kw(device: str) -> float:
    """A meter's size, fixed by its id: the same meter always gives the same readings."""
    return 20.0 + round((_noise(device, EPOCH) + 0.5) * 60, 1)


def quarter_floor(ts: dt.datetime) -> dt.datetime:
    return ts.replace(minute=ts.minute - ts.minute % 15, second=0, microsecond=0)


@lru_cache(maxsize=4096)
def _day_kwh(device: str, day: dt.date, base_kw: float) -> float:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return sum(round(_power_kw(device, start + i * QUARTER, base_kw) / 4, 4) for i in range(96))


def _index_at(device: str, ts: dt.datetime, base_kw: float) -> float:
    """The register at `ts`: every quarter's energy since EPOCH, so index and deltas agree."""
    day = EPOCH.date()
    total = 0.0
    while day < ts.date():
        total += _day_kwh(device, day, base_kw)
        day += dt.timedelta(days=1)
    q = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    while q < ts:
        total += round(_power_kw(device, q, base_kw) / 4, 4)
        q += QUARTER
    return round(total, 3)


def meter_readings(
    device: str, start: dt.datetime, end: dt.datetime, *, base_kw: float = 40.0
) -> Iterator[ReadingIn]:
    """Quarter-hourly power, interval energy, cumulative index and temperature."""
    ts = quarter_floor(start)
    while ts < end:
        kw = _power_kw(device, ts, base_kw)
        kwh = round(kw / 4, 4)
        yield ReadingIn(device, "active_power", ts, kw * 1000)
        yield ReadingIn(device, "active_energy_delta", ts, kwh, period_end=ts + QUARTER)
        yield ReadingIn(device, "active_energy", ts, _index_at(device, ts, base_kw))
        yield ReadingIn(device, "temperature", ts,
                        round(21 + 2 * math.sin(ts.hour / 24 * 2 * math.pi)
                              + _noise(device, ts), 2))
        ts += QUARTER


def live_power(
    device: str, start: dt.datetime, end: dt.datetime, *, base_kw: float = 40.0
) -> Iterator[ReadingIn]:
    """Per-minute active power, so the demo shows new readings on every tick."""
    ts = start.replace(second=0, microsecond=0)
    while ts < end:
        if ts.minute % 15:  # quarter-hour instants come from meter_readings
            yield ReadingIn(device, "active_power", ts, _power_kw(device, ts, base_kw) * 1000)
        ts += dt.timedelta(minutes=1)
