"""Hourly energy (UTC hour starts, kWh) from each kind of reading, across DST changes."""

import datetime as dt

import pytest

from apps.core.services import ReadingIn, readings_ingest
from apps.volue.selectors import hourly_energy

pytestmark = pytest.mark.django_db
Q = dt.timedelta(minutes=15)
H = dt.timedelta(hours=1)
# Europe/Madrid springs forward at 01:00 UTC on 29 March 2026 and falls back at 01:00 UTC
# on 25 October 2026: the local night has 23 and 25 hours, the UTC hours stay hours.
SPRING = dt.datetime(2026, 3, 28, 23, tzinfo=dt.UTC)
AUTUMN = dt.datetime(2026, 10, 24, 22, tzinfo=dt.UTC)


def kw_at(ts: dt.datetime) -> float:
    """A load that changes every hour, so hours are told apart: 10, 11, 12, … kW."""
    return 10.0 + ts.hour


def ingest(deployment, records):
    result = readings_ingest(deployment=deployment, records=records, source="test")
    assert result.quarantined == 0


def quarters(start, hours):
    return [start + i * Q for i in range(hours * 4 + 1)]


@pytest.fixture
def meter(deployment, make_device):
    return make_device(deployment, "main-01")


def expected(start, hours):
    return [(start + i * H, kw_at(start + i * H)) for i in range(hours)]


@pytest.mark.parametrize("start", [SPRING, AUTUMN], ids=["spring-forward", "fall-back"])
def test_interval_energy_is_summed_per_utc_hour(deployment, meter, start):
    ingest(deployment, [ReadingIn("main-01", "active_energy_delta", ts, kw_at(ts) / 4,
                                  period_end=ts + Q) for ts in quarters(start, 4)[:-1]])

    result = hourly_energy(device=meter, start=start, end=start + 4 * H)

    assert result.source == "active_energy_delta" and result.complete
    assert [ts for ts, _ in result.hours] == [ts for ts, _ in expected(start, 4)]
    assert [kwh for _, kwh in result.hours] == pytest.approx([v for _, v in expected(start, 4)])


@pytest.mark.parametrize("start", [SPRING, AUTUMN], ids=["spring-forward", "fall-back"])
def test_cumulative_register_differences_give_each_hour(deployment, meter, start):
    register, rows = 1000.0, []
    for ts in quarters(start, 4):
        rows.append(ReadingIn("main-01", "active_energy", ts, register))
        register += kw_at(ts) / 4
    ingest(deployment, rows)

    result = hourly_energy(device=meter, start=start, end=start + 4 * H)

    assert result.source == "active_energy" and result.complete
    assert [ts for ts, _ in result.hours] == [start + i * H for i in range(4)]
    assert [kwh for _, kwh in result.hours] == pytest.approx([kw_at(start + i * H)
                                                               for i in range(4)])


def test_power_in_watts_is_integrated_to_kwh(deployment, meter):
    start = SPRING
    minutes = [start + dt.timedelta(minutes=m) for m in range(0, 4 * 60 + 1, 5)]
    # Constant within each hour: the hour's boundary sample belongs to the next hour.
    ingest(deployment, [ReadingIn("main-01", "active_power", ts, kw_at(ts) * 1000)
                        for ts in minutes])

    result = hourly_energy(device=meter, start=start, end=start + 4 * H)

    assert result.source == "active_power" and result.complete
    # Trapezoids: the last 5 minutes ramp to the next hour's level.
    for (ts, kwh), (_, level) in zip(result.hours, expected(start, 4), strict=True):
        nxt = kw_at(ts + H)
        assert kwh == pytest.approx(level * 55 / 60 + (level + nxt) / 2 * 5 / 60)


def test_register_between_samples_is_interpolated_at_the_hour(deployment, meter):
    start = SPRING
    ingest(deployment, [ReadingIn("main-01", "active_energy", start - 10 * dt.timedelta(
        minutes=1), 100.0), ReadingIn("main-01", "active_energy", start + 10 * dt.timedelta(
            minutes=1), 120.0), ReadingIn("main-01", "active_energy", start + H, 150.0)])

    result = hourly_energy(device=meter, start=start, end=start + H)

    assert result.hours == [(start, pytest.approx(40.0))]  # 150 - 110


def test_interval_data_is_preferred_to_power(deployment, meter):
    start = SPRING
    ingest(deployment, [ReadingIn("main-01", "active_energy_delta", ts, 1.0, period_end=ts + Q)
                        for ts in quarters(start, 1)[:-1]]
           + [ReadingIn("main-01", "active_power", ts, 99_000.0) for ts in quarters(start, 1)])

    result = hourly_energy(device=meter, start=start, end=start + H)

    assert result.source == "active_energy_delta" and result.hours == [(start, 4.0)]


def test_a_missing_quarter_leaves_the_hour_missing_not_guessed(deployment, meter):
    start = SPRING
    rows = [ReadingIn("main-01", "active_energy_delta", ts, 1.0, period_end=ts + Q)
            for ts in quarters(start, 2)[:-1] if ts != start + 5 * Q]
    ingest(deployment, rows)

    result = hourly_energy(device=meter, start=start, end=start + 2 * H)

    assert not result.complete
    assert result.hours == [(start, 4.0)]
    assert result.missing[0][0] == start + H
    assert "15 min" in result.missing_text()


def test_a_gap_longer_than_allowed_is_not_interpolated(deployment, meter, settings):
    settings.VOLUE_MAX_GAP_MINUTES = 30
    start = SPRING
    ingest(deployment, [ReadingIn("main-01", "active_energy", start - H, 1.0),
                        ReadingIn("main-01", "active_energy", start + H, 9.0)])

    result = hourly_energy(device=meter, start=start, end=start + H)

    assert not result.complete and result.missing[0][0] == start


def test_register_that_goes_backwards_is_missing(deployment, meter):
    start = SPRING
    ingest(deployment, [ReadingIn("main-01", "active_energy", start, 500.0),
                        ReadingIn("main-01", "active_energy", start + H, 3.0)])

    result = hourly_energy(device=meter, start=start, end=start + H)

    assert "backwards" in result.missing_text()


def test_no_readings_at_all_is_missing_every_hour(meter):
    result = hourly_energy(device=meter, start=SPRING, end=SPRING + 3 * H)
    assert result.source == "" and len(result.missing) == 3
