"""`readings_ingest`: validation, quarantine, idempotency, counts."""

import datetime as dt
from decimal import Decimal

import pytest

from apps.core.models import DailyIngestStat, Quarantine, Reading
from apps.core.services import ReadingIn, readings_ingest

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
QH = dt.timedelta(minutes=15)


@pytest.fixture
def meter(deployment, make_device):
    return make_device(deployment, "meter-1")


def ingest(deployment, *records, **kwargs):
    return readings_ingest(deployment=deployment, records=list(records), source="test", **kwargs)


def only_reason(deployment):
    (entry,) = Quarantine.objects.filter(deployment=deployment)
    return entry.reason


def test_stores_a_valid_cumulative_reading(deployment, meter):
    result = ingest(deployment, ReadingIn("meter-1", "active_energy", T0, 1234.5))
    assert (result.inserted, result.quarantined) == (1, 0)
    reading = Reading.objects.get()
    assert (reading.device, reading.parameter.key, reading.ts, reading.value) == (
        meter, "active_energy", T0, 1234.5)


def test_stores_timestamps_in_utc_whatever_offset_they_arrive_with(deployment, meter):
    ingest(deployment, ReadingIn("meter-1", "active_energy", "2026-06-01T02:00:00+02:00", 1))
    assert Reading.objects.get().ts == T0


def test_accepts_zulu_timestamps_as_text(deployment, meter):
    result = ingest(deployment, ReadingIn("meter-1", "active_energy", "2026-06-01T00:00:00Z", 1))
    assert result.inserted == 1


def test_quarantines_a_naive_timestamp(deployment, meter):
    result = ingest(deployment, ReadingIn("meter-1", "active_energy", "2026-06-01T00:00:00", 1))
    assert (result.inserted, result.quarantined) == (0, 1)
    assert "no UTC offset" in only_reason(deployment)


def test_quarantines_a_naive_datetime_object(deployment, meter):
    result = ingest(deployment, ReadingIn("meter-1", "active_energy", dt.datetime(2026, 6, 1), 1))
    assert result.quarantined == 1
    assert "no UTC offset" in only_reason(deployment)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "NaN", "Infinity"])
def test_quarantines_a_value_that_is_not_finite(deployment, meter, value):
    result = ingest(deployment, ReadingIn("meter-1", "active_energy", T0, value))
    assert result.quarantined == 1
    assert "not a finite number" in only_reason(deployment)
    assert Reading.objects.count() == 0


def test_quarantined_nan_keeps_its_raw_value_as_text(deployment, meter):
    ingest(deployment, ReadingIn("meter-1", "active_energy", T0, float("nan")))
    assert Quarantine.objects.get().payload["value"] == "nan"


@pytest.mark.parametrize("value", [None, True, "12 kWh", [1]])
def test_quarantines_a_value_that_is_not_a_number(deployment, meter, value):
    assert ingest(deployment, ReadingIn("meter-1", "active_energy", T0, value)).quarantined == 1


def test_accepts_numeric_text_and_decimals(deployment, meter):
    result = ingest(deployment, ReadingIn("meter-1", "active_energy", T0, "12.5"),
                    ReadingIn("meter-1", "active_energy", T0 + QH, Decimal("13.25")))
    assert result.inserted == 2


def test_quarantines_an_unknown_device(deployment, meter):
    result = ingest(deployment, ReadingIn("meter-9", "active_energy", T0, 1))
    assert result.quarantined == 1
    assert "unknown device 'meter-9'" in only_reason(deployment)


def test_quarantines_a_device_of_another_deployment(deployment, other_deployment, make_device):
    make_device(other_deployment, "their-meter")
    result = ingest(deployment, ReadingIn("their-meter", "active_energy", T0, 1))
    assert (result.inserted, result.quarantined) == (0, 1)
    # The reason does not reveal that the device exists elsewhere.
    assert only_reason(deployment).startswith("unknown device 'their-meter' in deployment 'acme'")
    assert Reading.objects.count() == 0


def test_quarantines_an_unknown_parameter(deployment, meter):
    assert ingest(deployment, ReadingIn("meter-1", "watts", T0, 1)).quarantined == 1
    assert "unknown parameter 'watts'" in only_reason(deployment)


def test_stores_an_interval_reading_with_its_period(deployment, meter):
    ingest(deployment, ReadingIn("meter-1", "active_energy_delta", T0, 2.5, period_end=T0 + QH))
    assert Reading.objects.get().period_end == T0 + QH


def test_quarantines_an_interval_reading_whose_end_is_before_its_start(deployment, meter):
    result = ingest(deployment,
                    ReadingIn("meter-1", "active_energy_delta", T0, 2.5, period_end=T0 - QH))
    assert result.quarantined == 1
    assert "is not after ts" in only_reason(deployment)


def test_quarantines_an_interval_reading_whose_end_equals_its_start(deployment, meter):
    result = ingest(deployment, ReadingIn("meter-1", "active_energy_delta", T0, 2, period_end=T0))
    assert result.quarantined == 1


def test_quarantines_an_interval_reading_without_a_period(deployment, meter):
    assert ingest(deployment, ReadingIn("meter-1", "active_energy_delta", T0, 2)).quarantined == 1
    assert "needs a period_end" in only_reason(deployment)


def test_quarantines_a_point_reading_that_carries_a_period(deployment, meter):
    result = ingest(deployment, ReadingIn("meter-1", "active_energy", T0, 2, period_end=T0 + QH))
    assert result.quarantined == 1
    assert "has no period_end" in only_reason(deployment)


def test_quarantines_cost_without_currency(deployment, meter):
    assert ingest(deployment, ReadingIn("meter-1", "active_energy", T0, 2, cost=3)).quarantined == 1
    assert "without currency" in only_reason(deployment)


def test_quarantines_a_currency_that_is_not_iso_4217(deployment, meter):
    result = ingest(deployment, ReadingIn("meter-1", "active_energy", T0, 2, cost=3, currency="€"))
    assert result.quarantined == 1


def test_stores_cost_with_its_currency(deployment, meter):
    ingest(deployment, ReadingIn("meter-1", "active_energy", T0, 2, cost=3.5, currency="EUR"))
    reading = Reading.objects.get()
    assert (reading.cost, reading.currency) == (3.5, "EUR")


def test_quarantine_keeps_the_raw_payload_and_the_source(deployment):
    readings_ingest(deployment=deployment, records=[ReadingIn("x", "active_energy", T0, 1)],
                    source="partner-api")
    entry = Quarantine.objects.get()
    assert entry.source == "partner-api"
    assert entry.payload["device"] == "x"
    assert entry.payload["ts"] == T0.isoformat()
    assert entry.status == Quarantine.Status.OPEN


def test_same_batch_twice_changes_nothing(deployment, meter):
    batch = [ReadingIn("meter-1", "active_energy", T0 + i * QH, 100 + i) for i in range(50)]
    first = ingest(deployment, *batch)
    rows_before = list(Reading.objects.order_by("id").values_list("id", "value", "seq"))
    second = ingest(deployment, *batch)
    assert (first.inserted, first.updated, first.unchanged) == (50, 0, 0)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 50)
    assert list(Reading.objects.order_by("id").values_list("id", "value", "seq")) == rows_before


def test_changed_value_is_an_update_with_a_new_seq(deployment, meter):
    ingest(deployment, ReadingIn("meter-1", "active_energy", T0, 1))
    old_seq = Reading.objects.get().seq
    result = ingest(deployment, ReadingIn("meter-1", "active_energy", T0, 2))
    assert (result.inserted, result.updated) == (0, 1)
    reading = Reading.objects.get()
    assert reading.value == 2
    assert reading.seq > old_seq


def test_repeated_key_within_one_call_keeps_the_last_value(deployment, meter):
    result = ingest(deployment, ReadingIn("meter-1", "active_energy", T0, 1),
                    ReadingIn("meter-1", "active_energy", T0, 7))
    assert (result.inserted, result.duplicates) == (1, 1)
    assert Reading.objects.get().value == 7


@pytest.mark.parametrize("order", ["ascending", "descending", "shuffled"])
def test_repeats_apart_and_out_of_order_keep_the_last_value_each(deployment, make_device, order):
    make_device(deployment, "meter-1")
    make_device(deployment, "meter-2")
    first = [ReadingIn(f"meter-{m}", "active_energy", T0 + i * QH, i) for m in (1, 2)
             for i in range(6)]
    if order == "descending":
        first.reverse()
    elif order == "shuffled":
        first = first[::2] + first[1::2]
    # Each key of meter-1 once more, later in the batch and apart from its first delivery.
    again = [ReadingIn("meter-1", "active_energy", T0 + i * QH, 100 + i) for i in range(6)]
    result = ingest(deployment, *first, *again)
    assert (result.inserted, result.duplicates, result.updated) == (12, 6, 0)
    stored = dict(Reading.objects.filter(device__external_id="meter-1")
                  .values_list("ts", "value"))
    assert stored == {T0 + i * QH: 100 + i for i in range(6)}
    assert Reading.objects.filter(device__external_id="meter-2").count() == 6


def test_counts_add_up_across_chunks(deployment, meter):
    batch = [ReadingIn("meter-1", "active_energy", T0 + i * QH, i) for i in range(25)]
    batch.insert(10, ReadingIn("ghost", "active_energy", T0, 1))
    result = ingest(deployment, *batch, chunk_size=7)
    assert (result.inserted, result.quarantined) == (25, 1)
    assert result.rejections[0].index == 10


def test_seq_follows_ingest_order_across_calls(deployment, meter):
    ingest(deployment, ReadingIn("meter-1", "active_energy", T0 + QH, 1))
    ingest(deployment, ReadingIn("meter-1", "active_energy", T0, 1))  # late reading
    late, early = Reading.objects.order_by("-ts")
    assert late.ts > early.ts and late.seq < early.seq


def test_ingest_is_all_or_nothing(deployment, meter, monkeypatch):
    from apps.core.services.ingest import service as ingest_module

    def boom(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(ingest_module, "_count_day", boom)
    with pytest.raises(RuntimeError):
        ingest(deployment, ReadingIn("meter-1", "active_energy", T0, 1),
               ReadingIn("ghost", "active_energy", T0, 1))
    assert Reading.objects.count() == 0
    assert Quarantine.objects.count() == 0


def test_daily_stat_counts_accepted_and_quarantined(deployment, meter):
    ingest(deployment, ReadingIn("meter-1", "active_energy", T0, 1),
           ReadingIn("ghost", "active_energy", T0, 1))
    ingest(deployment, ReadingIn("meter-1", "active_energy", T0 + QH, 1))
    stat = DailyIngestStat.objects.get(deployment=deployment)
    assert (stat.accepted, stat.quarantined) == (2, 1)


def test_without_quarantine_rejections_are_only_reported(deployment, meter):
    result = ingest(deployment, ReadingIn("ghost", "active_energy", T0, 1), quarantine=False)
    assert [r.index for r in result.rejections] == [0]
    assert Quarantine.objects.count() == 0


def test_from_mapping_with_missing_fields_is_quarantined_not_raised(deployment, meter):
    result = ingest(deployment, ReadingIn.from_mapping({"device": "meter-1"}))
    assert result.quarantined == 1


def test_quarantines_a_record_with_a_nul_character_instead_of_failing_the_batch(deployment, meter):
    result = ingest(deployment, ReadingIn("meter\x00-1", "active_energy", T0, 1),
                    ReadingIn("meter-1", "active_energy", T0, 2))
    assert (result.inserted, result.quarantined) == (1, 1)
    entry = Quarantine.objects.get()
    assert entry.payload["device"] == "meter\\x00-1"
    assert "\x00" not in entry.reason


@pytest.mark.parametrize(("record", "field"), [
    (ReadingIn("ghost", "active_energy", T0, 1), "device"),
    (ReadingIn("meter-1", "no_such_parameter", T0, 1), "parameter"),
    (ReadingIn("meter-1", "active_energy", "yesterday", 1), "ts"),
    (ReadingIn("meter-1", "active_energy", T0, "12 kWh"), "value"),
    (ReadingIn("meter-1", "active_energy", T0, 1, period_end=T0 + QH), "period_end"),
    (ReadingIn("meter-1", "active_energy_delta", T0, 1), "period_end"),
    (ReadingIn("meter-1", "active_energy_delta", T0, 1, period_end=T0), "period_end"),
    (ReadingIn("meter-1", "active_energy", T0, 1, cost=float("nan"), currency="EUR"), "cost"),
    (ReadingIn("meter-1", "active_energy", T0, 1, cost=2.0), "currency"),
    (ReadingIn("meter-1", "active_energy", T0, 1, cost=2.0, currency="euro"), "currency"),
    (ReadingIn("meter-1", "active_energy", T0, 1, estimated="yes"), "estimated"),
    (ReadingIn("meter-1", "active_energy", T0, 1, quality=99), "quality"),
])
def test_a_rejection_names_the_field_it_is_about(deployment, meter, record, field):
    good = ReadingIn("meter-1", "active_energy", T0 - QH, 1)
    result = ingest(deployment, good, record)
    assert [(r.index, r.field) for r in result.rejections] == [(1, field)]
    assert result.inserted == 1
