"""`readings_ingest` on arbitrary records: it never raises, and every record is accounted
for — stored, quarantined with a reason, or counted as a repeat of a key in the same call.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.core.models import Deployment, Device, Parameter, Quarantine, Reading
from apps.core.services import ReadingIn, readings_ingest
from apps.dexma.services.batches import Converter
from apps.wattics.schemas import local_timestamp

pytestmark = pytest.mark.django_db

# Years 2..9998: at the very edge of the calendar `astimezone` overflows (a known bug, see
# test_records_at_the_edge_of_the_calendar_are_quarantined).
SAFE_DATES = {"min_value": dt.datetime(2, 1, 1), "max_value": dt.datetime(9998, 12, 31)}
KNOWN_DEVICES = ["fz-meter-1", "fz-meter-2"]

offsets = st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=14)),
                           dt.timezone(dt.timedelta(hours=-12, minutes=-30))])
aware = st.datetimes(**SAFE_DATES, timezones=offsets)
naive = st.datetimes(**SAFE_DATES)
junk = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                 st.binary(max_size=6), st.tuples(st.integers()))
timestamps = st.one_of(aware, naive, aware.map(dt.datetime.isoformat),
                       naive.map(dt.datetime.isoformat), st.just(""), junk)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(10**400),
                                                                max_value=10**400),
    st.decimals(allow_nan=True, allow_infinity=True), st.sampled_from(["1.5", "nan", "-inf",
                                                                       "1e999", "x", ""]),
    st.booleans(), st.none(), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


@st.composite
def records(draw, parameters: list[str]) -> ReadingIn:
    # Only hashable devices and parameters, and text currencies: the others are known bugs
    # (test_unhashable_keys_and_odd_currencies_are_quarantined).
    device = draw(st.one_of(st.sampled_from(KNOWN_DEVICES), st.text(max_size=30),
                            st.text(max_size=5).map(lambda s: s + "\x00"), st.integers(),
                            st.none()))
    parameter = draw(st.one_of(st.sampled_from(parameters), st.text(max_size=20),
                               st.integers()))
    ts = draw(timestamps)
    if isinstance(ts, dt.datetime) and draw(st.booleans()):
        period_end = ts + draw(st.sampled_from([dt.timedelta(minutes=15), dt.timedelta(0),
                                                -dt.timedelta(hours=1)]))
    else:
        period_end = draw(st.one_of(st.none(), timestamps))
    return ReadingIn(
        device=device, parameter=parameter, ts=ts, value=draw(numbers), period_end=period_end,
        estimated=draw(st.one_of(st.booleans(), junk)),
        quality=draw(st.one_of(st.sampled_from(Reading.Quality.values), junk)),
        cost=draw(st.one_of(st.none(), st.just(None), numbers)),
        currency=draw(st.one_of(st.just(""), st.sampled_from(["EUR", "eur", "EU", "€UR"]),
                                st.text(max_size=4))),
    )


@st.composite
def valid_records(draw, interval: list[str], point: list[str]) -> ReadingIn:
    """Records ingest should store, with the odd legal variation (text instants, offsets,
    integers and decimals, cost with currency)."""
    ts = draw(st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1),
                           timezones=offsets))
    interval_kind = draw(st.booleans())
    parameter = draw(st.sampled_from(interval if interval_kind else point))
    period_end = ts + dt.timedelta(minutes=15) if interval_kind else None
    value = draw(st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                           st.integers(-(10**15), 10**15),
                           st.decimals(allow_nan=False, allow_infinity=False, places=3)))
    cost = draw(st.one_of(st.none(), st.floats(-1e6, 1e6)))
    return ReadingIn(
        device=draw(st.sampled_from(KNOWN_DEVICES)), parameter=parameter,
        ts=ts.isoformat() if draw(st.booleans()) else ts, value=value, period_end=period_end,
        estimated=draw(st.booleans()), quality=draw(st.sampled_from(Reading.Quality.values)),
        cost=cost, currency="EUR" if cost is not None else "",
    )


@pytest.fixture
def fuzz_deployment(db):
    from apps.core.models import Datasource

    deployment = Deployment.objects.create(slug="fuzz", name="Fuzz", timezone="UTC")
    datasource = Datasource.objects.create(deployment=deployment, key="gw", name="Gateway")
    for external_id in KNOWN_DEVICES:
        Device.objects.create(deployment=deployment, datasource=datasource,
                              external_id=external_id, local_id=external_id, name=external_id,
                              commodity="energy", unit="kWh")
    return deployment


def test_arbitrary_records_are_stored_or_quarantined_and_every_one_is_counted(fuzz_deployment):
    parameters = list(Parameter.objects.values_list("key", flat=True))
    interval = [p.key for p in Parameter.objects.filter(kind=Parameter.Kind.INTERVAL)]
    point = [p.key for p in Parameter.objects.exclude(kind=Parameter.Kind.INTERVAL)]
    outcomes: list[tuple[int, int]] = []
    kept_once: list[int] = []  # batches whose refused records were already kept

    @given(batch=st.lists(st.one_of(records(parameters), valid_records(interval, point)),
                          min_size=1, max_size=12))
    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(batch):
        quarantined_before = Quarantine.objects.filter(deployment=fuzz_deployment).count()
        readings_before = Reading.objects.count()

        result = readings_ingest(deployment=fuzz_deployment, records=batch, source="fuzz")
        outcomes.append((result.accepted, len(result.rejections)))

        assert result.accepted + len(result.rejections) + result.duplicates == len(batch)
        # A record refused again while its entry is still open is kept once, not twice.
        assert result.quarantined <= len(result.rejections)
        if result.quarantined < len(result.rejections):
            kept_once.append(len(outcomes))
        assert [r.index for r in result.rejections] == sorted({r.index for r in
                                                               result.rejections})
        assert all(r.reason.strip() for r in result.rejections)
        entries = list(Quarantine.objects.filter(deployment=fuzz_deployment)
                       .order_by("-pk")[:result.quarantined])
        assert Quarantine.objects.filter(
            deployment=fuzz_deployment).count() == quarantined_before + result.quarantined
        assert all(e.reason and "\x00" not in e.reason for e in entries)
        # Every refused record has an open entry, this batch's or an earlier one's
        # (compared as PostgreSQL compares JSON: 1e20 and 100000000000000000000 are one).
        kept = Quarantine.objects.filter(deployment=fuzz_deployment, source="fuzz",
                                         status=Quarantine.Status.OPEN)
        assert all(kept.filter(payload=batch[r.index].as_payload()).exists()
                   for r in result.rejections)
        assert Reading.objects.count() == readings_before + result.inserted
        for reading in Reading.objects.filter(device__deployment=fuzz_deployment):
            assert math.isfinite(reading.value)
            assert reading.ts.utcoffset() == dt.timedelta(0)
            assert reading.period_end is None or reading.period_end > reading.ts

    check()
    # The generator reaches both paths, so the invariants were checked on each.
    stored = sum(1 for accepted, _ in outcomes if accepted)
    assert stored >= 10 and sum(1 for _, rejected in outcomes if rejected) >= 10, stored
    assert kept_once, "no batch refused a record already kept: the de-duplication went unchecked"
    print(f"{len(outcomes)} batches, {stored} with stored readings")


def test_a_valid_record_among_hostile_ones_is_stored(fuzz_deployment):
    ts = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    batch = [
        ReadingIn(device="fz-meter-1", parameter="active_energy", ts=ts, value=float("nan")),
        ReadingIn(device="fz-meter-1", parameter="active_energy", ts=ts.replace(tzinfo=None),
                  value=1.0),
        ReadingIn(device="fz-meter-1\x00", parameter="active_energy", ts=ts, value=1.0),
        ReadingIn(device="fz-meter-1", parameter="active_energy", ts=ts, value=10**400),
        ReadingIn(device="fz-meter-1", parameter="active_energy", ts=ts, value=Decimal("2.5")),
    ]
    result = readings_ingest(deployment=fuzz_deployment, records=batch, source="fuzz")
    assert result.inserted == 1
    assert [r.index for r in result.rejections] == [0, 1, 2, 3]
    assert Reading.objects.get().value == 2.5


@pytest.mark.parametrize("record", [
    {"device": ["fz-meter-1"]},
    {"parameter": {"key": "active_energy"}},
    {"cost": 1.0, "currency": 978},
    {"ts": dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(-dt.timedelta(hours=14)))},
    {"ts": "0001-01-01T00:00:00+14:00"},
    {"ts": dt.datetime(9999, 12, 31, 23, tzinfo=dt.UTC)},
    {"ts": "1899-12-31T23:59:59Z"},
], ids=["list-device", "dict-parameter", "number-currency", "past-9999-in-utc",
        "before-year-1-in-utc", "last-hour-of-the-calendar", "before-1900"])
def test_unhashable_keys_odd_currencies_and_calendar_edges_are_quarantined(fuzz_deployment,
                                                                          record):
    fields = {"device": "fz-meter-1", "parameter": "active_energy",
              "ts": dt.datetime(2026, 3, 1, tzinfo=dt.UTC), "value": 1.0, **record}
    result = readings_ingest(deployment=fuzz_deployment, records=[ReadingIn(**fields)],
                             source="fuzz")
    assert len(result.rejections) == 1


def test_an_instant_no_zone_can_write_never_reaches_delivery(fuzz_deployment):
    """DEXMA's and Wattics' local stamps cannot write the calendar's last hour east of UTC:
    the ingest refuses such instants, so delivery never meets one."""
    last_hour = dt.datetime(9999, 12, 31, 23, tzinfo=dt.UTC)
    with pytest.raises(OverflowError):
        Converter(ZoneInfo("Pacific/Kiritimati")).stamp(last_hour)
    with pytest.raises(OverflowError):
        local_timestamp(last_hour, "Pacific/Kiritimati")

    result = readings_ingest(deployment=fuzz_deployment, source="fuzz", records=[
        ReadingIn(device="fz-meter-1", parameter="active_energy", ts=last_hour, value=1.0)])

    assert (result.accepted, result.quarantined) == (0, 1)
    assert "outside the accepted range" in result.rejections[0].reason
