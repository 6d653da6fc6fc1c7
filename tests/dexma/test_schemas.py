"""IS3 parameter ids and interval alignment (seed, step 5)."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from apps.core.models import Parameter
from apps.dexma.schemas import Is3MappingError, code_for, frequency_of, misalignment, timestamp

MADRID = ZoneInfo("Europe/Madrid")
pytestmark = pytest.mark.django_db


def local(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=MADRID)


def p(key: str) -> Parameter:
    return Parameter.objects.get(key=key)


def test_cumulative_parameter_uses_the_three_digit_code():
    assert code_for(p("active_energy")) == 402


def test_instantaneous_parameter_uses_the_three_digit_code():
    assert code_for(p("active_power")) == 401
    assert code_for(p("temperature")) == 301


@pytest.mark.parametrize(("frequency", "code"), [
    ("QH", 40201), ("H", 40211), ("D", 40221), ("W", 40231), ("M", 40241),
    ("HH", 40261), ("TM", 40271), ("FM", 40281),
])
def test_interval_delta_uses_sssfo_with_the_frequency_digit(frequency, code):
    assert code_for(p("active_energy_delta"), frequency) == code


@pytest.mark.parametrize(("key", "code"), [
    ("active_power_avg", 40102), ("active_power_max", 40103), ("active_power_min", 40104),
])
def test_interval_of_instantaneous_data_uses_avg_max_min_operation_digit(key, code):
    assert code_for(p(key), "QH") == code


def test_interval_without_a_known_frequency_has_no_code():
    with pytest.raises(Is3MappingError, match="frequency"):
        code_for(p("active_energy_delta"), None)


def test_delta_on_instantaneous_data_has_no_code():
    parameter = Parameter(key="odd", kind=Parameter.Kind.INTERVAL, dexma_code=401,
                          nature=Parameter.Nature.INSTANTANEOUS,
                          operation=Parameter.Operation.DELTA)
    with pytest.raises(Is3MappingError, match="operation"):
        code_for(parameter, "QH")


def test_two_minute_interval_has_no_frequency_code():
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(Is3MappingError, match="no DEXMA code"):
        frequency_of(start, start + dt.timedelta(minutes=2))


@pytest.mark.parametrize(("start", "end", "frequency"), [
    (local(2026, 3, 29), local(2026, 3, 30), "D"),     # 23 hours: clocks go forward
    (local(2026, 10, 25), local(2026, 10, 26), "D"),   # 25 hours: clocks go back
    (local(2026, 2, 1), local(2026, 3, 1), "M"),
    (local(2026, 3, 1), local(2026, 4, 1), "M"),       # includes the DST change
    (local(2026, 3, 23), local(2026, 3, 30), "W"),
])
def test_frequency_follows_local_calendar_lengths(start, end, frequency):
    assert frequency_of(start, end) == frequency


def test_day_starting_at_local_midnight_on_the_spring_dst_change_is_aligned():
    assert misalignment(local(2026, 3, 29), local(2026, 3, 30), "D", MADRID) == ""


def test_day_starting_at_local_midnight_on_the_autumn_dst_change_is_aligned():
    assert misalignment(local(2026, 10, 25), local(2026, 10, 26), "D", MADRID) == ""


def test_day_starting_at_utc_midnight_is_misaligned_in_madrid():
    start = dt.datetime(2026, 3, 29, tzinfo=dt.UTC)
    reason = misalignment(start, start + dt.timedelta(days=1), "D", MADRID)
    assert "misaligned" in reason and "Europe/Madrid" in reason


def test_day_after_the_change_starting_an_hour_off_is_misaligned():
    # 24 hours after local midnight on the 23-hour day lands at 01:00 local time.
    start = local(2026, 3, 29).astimezone(dt.UTC) + dt.timedelta(hours=24)
    assert misalignment(start, start + dt.timedelta(days=1), "D", MADRID)


def test_quarter_hours_across_the_autumn_change_are_aligned():
    start = dt.datetime(2026, 10, 25, 0, 0, tzinfo=dt.UTC)  # 02:00 CEST, repeated hour
    for i in range(12):
        ts = start + dt.timedelta(minutes=15 * i)
        assert misalignment(ts, ts + dt.timedelta(minutes=15), "QH", MADRID) == ""


def test_quarter_hour_starting_at_minute_seven_is_misaligned():
    ts = local(2026, 6, 1, 10, 7)
    assert "misaligned" in misalignment(ts, ts + dt.timedelta(minutes=15), "QH", MADRID)


def test_month_starting_on_the_first_at_local_midnight_is_aligned_at_month_ends():
    assert misalignment(local(2026, 1, 1), local(2026, 2, 1), "M", MADRID) == ""
    assert misalignment(local(2026, 12, 1), local(2027, 1, 1), "M", MADRID) == ""


def test_month_starting_on_the_last_day_is_misaligned():
    assert misalignment(local(2026, 1, 31), local(2026, 3, 1), "M", MADRID)


def test_month_ending_a_day_late_is_refused():
    assert "does not end" in misalignment(local(2026, 4, 1), local(2026, 5, 2), "M", MADRID)


def test_week_must_start_on_monday():
    assert misalignment(local(2026, 3, 23), local(2026, 3, 30), "W", MADRID) == ""
    assert misalignment(local(2026, 3, 24), local(2026, 3, 31), "W", MADRID)


def test_timestamp_carries_the_datasource_offset():
    assert timestamp(dt.datetime(2026, 6, 1, 8, tzinfo=dt.UTC), MADRID) == \
        "2026-06-01T10:00:00+02:00"
