"""Reads: hourly energy from a device's readings, and what a customer should register."""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Q, QuerySet

from apps.core.models import Device, Parameter, Reading
from apps.volue.models import Event, Notification, VolueCustomer

HOUR = dt.timedelta(hours=1)
# In order of preference: measured interval energy is exact, a register difference next,
# integrated power last (it depends on the sampling).
INTERVAL, CUMULATIVE, POWER = "active_energy_delta", "active_energy", "active_power"
ENERGY_SOURCES = (INTERVAL, CUMULATIVE, POWER)
_TO_KWH = {"kWh": 1.0, "Wh": 0.001, "MWh": 1000.0}
_TO_KW = {"kW": 1.0, "W": 0.001, "MW": 1000.0}


@dataclass(slots=True)
class HourlyEnergy:
    """Energy used in each UTC hour of a window; hours without enough data are `missing`."""

    source: str
    hours: list[tuple[dt.datetime, float]] = field(default_factory=list)
    missing: list[tuple[dt.datetime, str]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return bool(self.hours) and not self.missing

    def missing_text(self) -> str:
        if not self.missing:
            return ""
        first, reason = self.missing[0]
        more = f" and {len(self.missing) - 1} more hour(s)" if len(self.missing) > 1 else ""
        return f"{first:%Y-%m-%d %H:00}Z ({reason}){more}"


def hour_floor(ts: dt.datetime) -> dt.datetime:
    return ts.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def _hours(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    hours, h = [], hour_floor(start)
    while h < end:
        hours.append(h)
        h += HOUR
    return hours


class _Series:
    """Point readings of one parameter, with values at any instant within the allowed gap."""

    def __init__(self, rows: list[tuple[dt.datetime, float]], max_gap: dt.timedelta) -> None:
        self.ts = [ts for ts, _ in rows]
        self.values = [v for _, v in rows]
        self.max_gap = max_gap

    def at(self, instant: dt.datetime) -> float | None:
        i = bisect.bisect_left(self.ts, instant)
        if i < len(self.ts) and self.ts[i] == instant:
            return self.values[i]
        if i == 0 or i == len(self.ts):
            return None
        before, after = self.ts[i - 1], self.ts[i]
        if after - before > self.max_gap:
            return None
        share = (instant - before) / (after - before)
        return self.values[i - 1] + share * (self.values[i] - self.values[i - 1])

    def inside(self, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, float]]:
        lo, hi = bisect.bisect_right(self.ts, start), bisect.bisect_left(self.ts, end)
        return list(zip(self.ts[lo:hi], self.values[lo:hi], strict=True))


def _add_hour(result: HourlyEnergy, hour: dt.datetime, kwh: float) -> None:
    # Readings are finite, but a difference or a sum of huge ones need not be; Volue's JSON
    # takes no infinity, so such an hour is missing (and visible) rather than a failed report.
    if math.isfinite(kwh):
        result.hours.append((hour, kwh))
    else:
        result.missing.append((hour, "the readings give no finite energy (implausible values)"))


def _from_register(series: _Series, hours: list[dt.datetime], scale: float) -> HourlyEnergy:
    result = HourlyEnergy(source=CUMULATIVE)
    for h in hours:
        first, last = series.at(h), series.at(h + HOUR)
        if first is None or last is None:
            result.missing.append((h, "no register reading at or around the hour boundary"))
        elif last < first:
            result.missing.append((h, "register went backwards (reset or meter swap)"))
        else:
            _add_hour(result, h, (last - first) * scale)
    return result


def _from_power(series: _Series, hours: list[dt.datetime], scale: float) -> HourlyEnergy:
    result = HourlyEnergy(source=POWER)
    for h in hours:
        first, last = series.at(h), series.at(h + HOUR)
        if first is None or last is None:
            result.missing.append((h, "no power reading at or around the hour boundary"))
            continue
        points = [(h, first), *series.inside(h, h + HOUR), (h + HOUR, last)]
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(points)]
        if max(gaps) > series.max_gap:
            result.missing.append((h, f"power readings more than {series.max_gap} apart"))
            continue
        # Hours as a float first: a float times a timedelta overflows on huge values.
        kwh = sum(
            (a[1] + b[1]) / 2 * ((b[0] - a[0]) / HOUR)
            for a, b in itertools.pairwise(points)
        )
        _add_hour(result, h, kwh * scale)
    return result


def _from_intervals(
    rows: list[tuple[dt.datetime, dt.datetime | None, float]],
    hours: list[dt.datetime],
    scale: float,
) -> HourlyEnergy:
    result = HourlyEnergy(source=INTERVAL)
    for h in hours:
        end = h + HOUR
        covered, kwh = dt.timedelta(0), 0.0
        for ts, period_end, value in rows:
            if period_end is None or period_end <= h or ts >= end:
                continue
            overlap = min(period_end, end) - max(ts, h)
            # An interval straddling the hour is shared in proportion to its overlap.
            kwh += value * (overlap / (period_end - ts))
            covered += overlap
        if covered < HOUR:
            minutes = int((HOUR - covered).total_seconds() // 60)
            result.missing.append((h, f"{minutes} min of the hour has no interval reading"))
        else:
            _add_hour(result, h, kwh * scale)
    return result


def _rows(device: Device, parameter: Parameter, start: dt.datetime, end: dt.datetime):
    return Reading.objects.filter(
        device=device, parameter=parameter, ts__gte=start, ts__lt=end
    ).order_by("ts")


def hourly_energy(
    *, device: Device, start: dt.datetime, end: dt.datetime, max_gap: dt.timedelta | None = None
) -> HourlyEnergy:
    """Energy `device` used in each UTC hour of [start, end), in kWh, from its readings.

    Uses the first of interval energy, register differences and integrated power that
    covers every hour; with none complete, the one missing the fewest hours (never a guess).
    """
    max_gap = max_gap or dt.timedelta(minutes=settings.VOLUE_MAX_GAP_MINUTES)
    hours = _hours(start, end)
    parameters = {p.key: p for p in Parameter.objects.filter(key__in=ENERGY_SOURCES)}
    candidates: list[HourlyEnergy] = []
    for key in ENERGY_SOURCES:
        parameter = parameters.get(key)
        if parameter is None or not hours:
            continue
        lo, hi = hours[0] - max_gap, hours[-1] + HOUR + max_gap
        if key == INTERVAL:
            scale = _TO_KWH.get(parameter.unit, 1.0)
            rows = list(
                _rows(device, parameter, lo, hi).values_list("ts", "period_end", "value")
            )
            if not rows:
                continue
            found = _from_intervals(rows, hours, scale)
        else:
            series = _Series(
                list(_rows(device, parameter, lo, hi).values_list("ts", "value")), max_gap
            )
            if not series.ts:
                continue
            if key == CUMULATIVE:
                found = _from_register(series, hours, _TO_KWH.get(parameter.unit, 1.0))
            else:
                found = _from_power(series, hours, _TO_KW.get(parameter.unit, 1.0))
        if found.complete:
            return found
        candidates.append(found)
    if not candidates:
        return HourlyEnergy(source="", missing=[(h, "no energy readings") for h in hours])
    return min(candidates, key=lambda c: len(c.missing))


def customer_devices(*, customer: VolueCustomer) -> QuerySet[Device]:
    """The active energy meters of the customer's sites and datasources (all when none
    is chosen)."""
    devices = Device.objects.filter(
        deployment=customer.deployment, is_active=True, commodity="energy", site__isnull=False
    ).select_related("site")
    site_ids = list(customer.sites.values_list("pk", flat=True))
    if site_ids:
        devices = devices.filter(site_id__in=site_ids)
    datasource_ids = list(customer.datasources.values_list("pk", flat=True))
    if datasource_ids:
        devices = devices.filter(datasource_id__in=datasource_ids)
    return devices.order_by("external_id")


def customers_to_sync() -> QuerySet[VolueCustomer]:
    """Customers with work: active ones, and removed ones not yet gone from the platform."""
    return VolueCustomer.objects.filter(
        Q(is_active=True) | Q(removed_at__isnull=True)
    ).select_related("deployment")


def active_secrets() -> list[str]:
    """Secrets of the hub's webhook subscriptions; a notification must be signed by one."""
    from apps.volue.models import WebhookSubscription

    return [s.secret for s in WebhookSubscription.objects.filter(is_active=True) if s.secret]


def notifications_unprocessed(*, received_before: dt.datetime) -> QuerySet[Notification]:
    """Stored notifications never processed (their hand-off to a worker was lost), oldest
    first."""
    return Notification.objects.filter(
        processed_at__isnull=True, received_at__lt=received_before
    ).order_by("received_at")


def customers_named_in(event: Event) -> list[int]:
    """Ids of the customers an eligibility event adds or removes (none for other events)."""
    if event.payload_type != "UserEligibility":
        return []
    payload = event.payload or {}
    named = [*(payload.get("addedUsers") or []), *(payload.get("removedUsers") or [])]
    return list(VolueCustomer.objects.filter(remote_user_id__in=[str(u) for u in named])
                .values_list("pk", flat=True))
