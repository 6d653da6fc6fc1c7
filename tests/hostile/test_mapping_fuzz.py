"""Parameter mapping and packet building of every integration, on arbitrary well-typed
input: nothing crashes, and what comes out satisfies the platform's documented contract
(/work/shared/seeds): IS3 codes, aligned interval starts and offsets; Wattics' one-line JSON
packets with local time, offset and milliseconds; Volue's hourly, finite report points; the
pull mapping's aware UTC instants and finite numbers.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from apps.core.models import Parameter
from apps.dexma.client import Is3Value, is3_body
from apps.dexma.schemas import (
    FREQUENCY_DIGIT,
    OPERATION_DIGIT,
    Channel,
    Is3MappingError,
    frequency_of,
    misalignment,
)
from apps.dexma.services.batches import Converter
from apps.pull import schemas as pull
from apps.volue.schemas import EnergyUsageIn, report_body
from apps.volue.selectors import HOUR, _from_intervals, _from_power, _from_register, _Series
from apps.wattics.models import ELECTRICITY_FIELDS
from apps.wattics.schemas import (
    UnitError,
    build_packet,
    convert,
    local_timestamp,
    packet_line,
    unit_factor,
)

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
ZONES = ["UTC", "Europe/Madrid", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
         "Pacific/Kiritimati", "Pacific/Pago_Pago", "America/St_Johns"]
zones = st.sampled_from(ZONES)
# Readings hold instants ingest accepted; a day away from the ends of Python's calendar (an
# instant in the last hours of 9999 cannot be written in a +14:00 zone: see
# test_an_instant_at_the_end_of_the_calendar_is_refused_before_delivery).
instants = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                        timezones=st.just(dt.UTC))
finite = st.floats(allow_nan=False, allow_infinity=False)
UNITS = ["W", "kW", "MW", "mW", "VAr", "var", "kVAr", "kvar", "MVAr", "VA", "kVA", "MVA", "V",
         "kV", "mV", "A", "kA", "mA", "Wh", "kWh", "MWh", "GWh", "m³", "", "°C", "kw"]
WATTICS_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")
IS3_OFFSET = re.compile(r"([+-]\d\d:\d\d(:\d\d(\.\d+)?)?|Z)$")


# --- DEXMA: codes, alignment, the IS3 body ---------------------------------------------------


@pytest.fixture
def catalogue(db) -> list[Parameter]:
    return list(Parameter.objects.exclude(dexma_code=None))


def _aligned(ts: dt.datetime, frequency: str, zone: ZoneInfo) -> bool:
    """The seed's rule, written out: an interval starts on its boundary in local time."""
    local = ts.astimezone(zone)
    minutes = {"FM": 5, "TM": 10, "QH": 15, "HH": 30, "H": 60}
    if frequency in minutes:
        # Sub-daily boundaries are whole minutes of the local clock (the hour for H).
        return local.minute % minutes[frequency] == 0 and local.second == 0 \
            and local.microsecond == 0
    midnight = local.time() == dt.time(0)
    if frequency == "D":
        return midnight
    if frequency == "W":
        return midnight and local.weekday() == 0
    return midnight and local.day == 1


def test_dexma_conversion_is_a_value_ready_for_is3_or_a_reason(catalogue):
    @given(parameter=st.sampled_from(catalogue), zone=zones, ts=instants,
           length=st.one_of(st.sampled_from([5, 10, 15, 30, 60, 1440, 10080, 43200, 44640]),
                            st.integers(-100, 50_000)),
           value=finite, did=st.text(min_size=1, max_size=25))
    @FUZZ
    def check(parameter, zone, ts, length, value, did):
        end = ts + dt.timedelta(minutes=length)
        zone = ZoneInfo(zone)
        channel = Channel(device_id=1, parameter_id=parameter.pk, did=did, parameter=parameter)
        try:
            out = Converter(zone).value(channel, ts, end, value)
        except Is3MappingError as exc:
            assert str(exc)  # no code for this parameter: refused when selected, with words
            return
        if isinstance(out, str):
            assert out.strip() and parameter.kind == Parameter.Kind.INTERVAL
            return
        assert isinstance(out, Is3Value)
        assert out.did == did and out.v == value
        stamp = dt.datetime.fromisoformat(out.ts)
        assert IS3_OFFSET.search(out.ts) and stamp == ts
        if parameter.kind != Parameter.Kind.INTERVAL:
            assert out.p == parameter.dexma_code
            return
        frequency = frequency_of(ts, end)
        assert out.p // 100 == parameter.dexma_code
        assert (out.p // 10) % 10 == FREQUENCY_DIGIT[frequency]
        assert out.p % 10 == OPERATION_DIGIT[parameter.operation]
        assert _aligned(ts, frequency, zone), (ts.astimezone(zone), frequency)
        assert misalignment(ts, end, frequency, zone) == ""

    check()


def test_is3_body_is_json_with_one_message_per_device_and_instant():
    values = st.builds(Is3Value, did=st.text(min_size=1, max_size=25),
                       ts=instants.map(lambda t: t.astimezone(ZoneInfo("Europe/Madrid"))
                                       .isoformat()),
                       p=st.integers(100, 99999), v=finite)

    @given(batch=st.lists(values, max_size=60))
    @FUZZ
    def check(batch):
        body = json.loads(is3_body(batch), parse_constant=lambda c: pytest.fail(c))
        assert sum(len(m["values"]) for m in body) == len(batch)
        assert len({(m["did"], m["ts"]) for m in body}) == len(body)
        sent = sorted((m["did"], m["ts"], v["p"], v["v"]) for m in body for v in m["values"])
        assert sent == sorted(tuple(v) for v in batch)
        assert all(m["sqn"] == 1 and IS3_OFFSET.search(m["ts"]) for m in body)

    check()


def test_is3_body_refuses_a_non_finite_value():
    with pytest.raises(ValueError, match="finite"):
        is3_body([Is3Value("d", "2026-01-01T00:00:00+01:00", 402, math.inf)])


# --- Wattics: units, packets ----------------------------------------------------------------


def test_wattics_packet_is_one_line_of_json_in_local_time_with_milliseconds():
    fields = st.sampled_from(["value", *ELECTRICITY_FIELDS])

    @given(channels=st.dictionaries(fields, st.tuples(st.sampled_from(UNITS), finite),
                                    min_size=1, max_size=6),
           ts=instants, zone=zones, meter=st.text(min_size=1, max_size=40))
    @FUZZ
    def check(channels, ts, zone, meter):
        values = {}
        for field, (unit, value) in channels.items():
            try:
                factor = unit_factor(field, unit)
            except UnitError as exc:
                assert field in str(exc)
                continue
            converted = convert(value, factor)
            if not math.isfinite(converted):
                # Overflowed in the unit conversion: the planner quarantines such a reading
                # (test_delivery_fuzz.py::test_a_wattics_reading_too_large_for_its_unit...).
                assert abs(value * factor) > 1e300
                continue
            values[field] = converted
        assume(values)
        packet = build_packet(meter, ts, zone, values)
        line = packet_line(packet)
        assert "\n" not in line
        decoded = json.loads(line, parse_constant=lambda c: pytest.fail(c))
        assert decoded["id"] == meter
        assert WATTICS_STAMP.match(decoded["tsISO8601"]), decoded["tsISO8601"]
        sent_at = dt.datetime.fromisoformat(decoded["tsISO8601"])
        assert abs(sent_at - ts) < dt.timedelta(milliseconds=1)
        zone_offset = ts.astimezone(ZoneInfo(zone)).utcoffset().total_seconds()
        # Whole minutes: local mean time before ~1900 is written at the nearest minute.
        assert sent_at.utcoffset() == dt.timedelta(minutes=round(zone_offset / 60))
        assert all(math.isfinite(v) for k, v in decoded.items() if k not in ("id",
                                                                            "tsISO8601"))

    check()


def test_wattics_refuses_naive_timestamps():
    with pytest.raises(ValueError, match="aware"):
        local_timestamp(dt.datetime(2026, 1, 1), "UTC")


# --- Volue: hourly energy and the report body --------------------------------------------------


hours_start = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1),
                           timezones=st.just(dt.UTC)).map(
    lambda t: t.replace(minute=0, second=0, microsecond=0))


@st.composite
def series(draw):
    start = draw(hours_start)
    offsets = sorted(set(draw(st.lists(st.integers(-90, 6 * 60), min_size=1, max_size=40))))
    rows = [(start + dt.timedelta(minutes=m), draw(finite)) for m in offsets]
    hours = [start + i * HOUR for i in range(draw(st.integers(1, 5)))]
    return start, rows, hours


def _check_hours(found, hours):
    covered = [h for h, _ in found.hours] + [h for h, _ in found.missing]
    assert sorted(covered) == hours  # every hour either measured or missing with a reason
    assert all(reason for _, reason in found.missing)
    for h, kwh in found.hours:
        assert math.isfinite(kwh), (h, kwh)
        assert h.minute == h.second == 0 and h.utcoffset() == dt.timedelta(0)


def test_volue_hourly_energy_is_finite_or_missing_with_a_reason():
    @given(data=series(), scale=st.sampled_from([1.0, 0.001, 1000.0]),
           kind=st.sampled_from(["register", "power", "interval"]),
           length=st.sampled_from([15, 30, 60, 7]))
    @FUZZ
    def check(data, scale, kind, length):
        _, rows, hours = data
        if kind == "interval":
            intervals = [(ts, ts + dt.timedelta(minutes=length), v) for ts, v in rows]
            found = _from_intervals(intervals, hours, scale)
        else:
            build = _from_register if kind == "register" else _from_power
            found = build(_Series(rows, dt.timedelta(minutes=60)), hours, scale)
        _check_hours(found, hours)
        body = report_body(event_id="e-1", usages=[EnergyUsageIn(
            resource_id="r-1", location_id="l-1", meter_point_id="mp-1", hours=found.hours)])
        text = json.dumps(body, allow_nan=False)
        for point in json.loads(text)["payloads"][0]["points"]:
            assert point["timestamp"].endswith(":00:00Z")

    check()


# --- Pull sync: instants, numbers, units, categories, paths ---------------------------------


def test_pull_instants_are_aware_utc_or_a_mapping_error():
    @given(text=st.one_of(instants.map(dt.datetime.isoformat),
                          st.datetimes().map(dt.datetime.isoformat),
                          st.dates().map(dt.date.isoformat), st.text(max_size=30)),
           zone=zones)
    @FUZZ
    def check(text, zone):
        try:
            instant = pull.parse_instant(text, "ts", ZoneInfo(zone))
        except pull.MappingError as exc:
            assert "ts" in str(exc)
            return
        assert instant.utcoffset() == dt.timedelta(0)

    check()


def test_pull_numbers_are_finite_floats_or_a_mapping_error():
    @given(value=st.one_of(st.floats(), st.integers(-(10**400), 10**400), st.text(max_size=12),
                           st.decimals(), st.booleans(), st.none(), st.lists(st.integers()),
                           st.sampled_from(["1e400", "-1e999", "nan", "0x10", " 7 "])))
    @FUZZ
    def check(value):
        try:
            number = pull.parse_number(value, "value")
        except pull.MappingError as exc:
            assert "value" in str(exc)
            return
        assert isinstance(number, float) and math.isfinite(number)

    check()


def test_pull_units_categories_and_paths_never_crash(db):
    json_values = st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), finite, st.text(max_size=8)),
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(st.text(max_size=6), inner, max_size=4)),
        max_leaves=20)
    paths = st.one_of(st.text(max_size=20), st.sampled_from(
        ["$.a.b", "a.0.b", "$['odd key']", "$.items[3]", "[0]", "..", "$", "a[-1]"]))

    @given(unit=st.one_of(st.text(max_size=40), st.integers(), st.none()),
           kind=st.one_of(st.text(max_size=20), st.none(), st.integers()),
           subtype=st.one_of(st.text(max_size=20), st.none()),
           type_map=st.dictionaries(st.text(max_size=10), st.sampled_from(
               ["energy", "energy/Off-site Electricity", "water", "nonsense/x", "waste/"]),
               max_size=3),
           fields=st.dictionaries(st.text(min_size=1, max_size=6), paths, max_size=4),
           record=json_values)
    @FUZZ
    def check(unit, kind, subtype, type_map, fields, record):
        try:
            text = pull.check_unit(unit)
            assert text and text == text.strip()
        except pull.MappingError:
            pass
        try:
            commodity, chosen = pull.category(kind, subtype, type_map)
            assert commodity in ("energy", "water", "waste") and isinstance(chosen, str)
        except (pull.MappingError, KeyError) as exc:
            # A type map naming a commodity that does not exist is refused where it is saved.
            assert isinstance(exc, pull.MappingError) or "nonsense" in str(exc)
        mapper = pull.RecordMapper(fields)
        try:
            mapped = mapper(record)
        except pull.MappingError:
            assert not isinstance(record, dict)
            return
        assert set(mapped) == {name for name, path in fields.items() if path}
        assert isinstance(mapper.leftovers(record), dict)

    check()

