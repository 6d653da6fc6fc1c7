"""Packet building: fields, units, local time with offset and milliseconds, one line."""

import datetime as dt

import pytest

from apps.wattics.schemas import (
    UnitError,
    build_packet,
    convert,
    local_timestamp,
    packet_line,
    unit_factor,
)


@pytest.mark.parametrize(("field", "unit", "value", "expected"), [
    ("aP_1", "kW", 1.5, 1500), ("aP_2", "W", 230.5, 230.5), ("aP_3", "MW", 0.002, 2000),
    ("rP_1", "kVAr", 0.25, 250), ("rP_2", "VAr", 12, 12),
    ("apP_1", "kVA", 2, 2000), ("apP_3", "VA", 7, 7),
    ("v_1", "V", 230.1, 230.1), ("v_2", "kV", 0.4, 400), ("v_12", "V", 400, 400),
    ("v_13", "kV", 0.398, 398), ("v_23", "V", 401, 401),
    ("c_1", "A", 12.5, 12.5), ("c_3", "mA", 500, 0.5),
    ("pC_1", "kWh", 1234.567, 1234567), ("pC_2", "Wh", 10, 10), ("pC_3", "MWh", 1.5, 1500000),
])
def test_converts_each_field_to_its_wattics_unit(field, unit, value, expected):
    assert convert(value, unit_factor(field, unit)) == expected


def test_single_value_is_sent_as_stored():
    assert unit_factor("value", "m³") == 1.0


def test_refuses_a_unit_that_does_not_fit_the_field():
    with pytest.raises(UnitError, match="pC_1 is sent in Wh"):
        unit_factor("pC_1", "m³")


def test_electricity_packet_lists_id_timestamp_then_fields_in_wattics_order():
    ts = dt.datetime(2017, 12, 1, 12, 0, tzinfo=dt.UTC)
    packet = build_packet("m1", ts, "UTC", {"pC_1": 5, "aP_1": 1, "v_23": 3, "c_2": 2})
    assert list(packet) == ["id", "tsISO8601", "aP_1", "c_2", "pC_1", "v_23"]
    assert packet["tsISO8601"] == "2017-12-01T12:00:00.000+00:00"


def test_single_value_packet_has_id_timestamp_and_value_only():
    ts = dt.datetime(2017, 12, 1, 12, 0, tzinfo=dt.UTC)
    assert build_packet("gas-1", ts, "UTC", {"value": 123}) == {
        "id": "gas-1", "tsISO8601": "2017-12-01T12:00:00.000+00:00", "value": 123}


def test_packet_goes_on_one_compact_line():
    line = packet_line({"id": "a\nb", "tsISO8601": "2017-12-01T12:00:00.000+00:00", "value": 1})
    assert "\n" not in line
    assert line == '{"id":"a\\nb","tsISO8601":"2017-12-01T12:00:00.000+00:00","value":1}'


def test_timestamp_carries_milliseconds_and_a_negative_offset():
    ts = dt.datetime(2016, 2, 10, 10, 45, 31, 70999, tzinfo=dt.UTC)
    assert local_timestamp(ts, "America/New_York") == "2016-02-10T05:45:31.070-05:00"


def test_timestamp_with_half_hour_offset():
    ts = dt.datetime(2016, 2, 10, 10, 45, 31, 70000, tzinfo=dt.UTC)
    assert local_timestamp(ts, "Australia/Adelaide") == "2016-02-10T21:15:31.070+10:30"


def test_local_time_around_spring_forward_skips_the_missing_hour():
    # Madrid, 29 March 2026: 02:00 CET becomes 03:00 CEST (00:45-01:15 UTC).
    start = dt.datetime(2026, 3, 29, 0, 45, tzinfo=dt.UTC)
    stamps = [local_timestamp(start + i * dt.timedelta(minutes=15), "Europe/Madrid")
              for i in range(3)]
    assert stamps == ["2026-03-29T01:45:00.000+01:00", "2026-03-29T03:00:00.000+02:00",
                      "2026-03-29T03:15:00.000+02:00"]


def test_local_time_around_fall_back_repeats_the_hour_with_another_offset():
    # Madrid, 25 October 2026: 03:00 CEST becomes 02:00 CET; 02:xx happens twice.
    start = dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC)
    stamps = [local_timestamp(start + i * dt.timedelta(minutes=30), "Europe/Madrid")
              for i in range(4)]
    assert stamps == ["2026-10-25T02:30:00.000+02:00", "2026-10-25T02:00:00.000+01:00",
                      "2026-10-25T02:30:00.000+01:00", "2026-10-25T03:00:00.000+01:00"]
    instants = [dt.datetime.fromisoformat(s) for s in stamps]
    assert instants == sorted(instants)


def test_refuses_a_naive_timestamp():
    with pytest.raises(ValueError, match="timezone-aware"):
        local_timestamp(dt.datetime(2026, 1, 1), "UTC")
