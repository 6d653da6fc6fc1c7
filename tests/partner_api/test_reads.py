import datetime as dt

import pytest

from apps.core.models import Reading, Site
from apps.core.services import ReadingIn, readings_ingest

from .conftest import QH, T0, ingest_usage

pytestmark = pytest.mark.django_db


def test_assets_carry_external_id_name_address_and_metadata(api, deployment):
    Site.objects.create(deployment=deployment, external_id="b-1", name="Tower", street="Gran Via 1",
                        city="Madrid", country="ES", metadata={"region": "centre"})
    [asset] = api.get("/api/v1/assets/").json()["results"]
    assert asset["external_id"] == "b-1"
    assert asset["name"] == "Tower"
    assert asset["address"] == {"street": "Gran Via 1", "city": "Madrid", "postal_code": "",
                                "country": "ES"}
    assert asset["metadata"] == {"region": "centre"}
    assert asset["active"] is True


def test_meters_carry_asset_scaler_type_subtype_unit_and_metadata(api, deployment, make_device):
    make_device(deployment, "pv-1", subtype="On-site Renewable Electricity",
                metadata={"serial": "S1"})
    [meter] = api.get("/api/v1/meters/").json()["results"]
    assert meter == {**meter, "external_id": "pv-1", "asset": "hq", "type": "Energy",
                     "subtype": "On-site Renewable Electricity", "unit": "kWh",
                     "metadata": {"serial": "S1"}, "active": True}


def test_meters_filter_by_asset(api, deployment, make_device):
    make_device(deployment, "m1")
    assert len(api.get("/api/v1/meters/", {"asset": "hq"}).json()["results"]) == 1
    assert api.get("/api/v1/meters/", {"asset": "elsewhere"}).json()["results"] == []


def test_usage_is_in_consumption_format_with_redelivery_cost_and_estimation(
        api, deployment, make_device):
    make_device(deployment, "m1")
    readings_ingest(deployment=deployment, source="t", records=[
        ReadingIn(device="m1", parameter="active_energy_delta", ts=T0, period_end=T0 + QH,
                  value=2.5, cost=0.4, currency="EUR", estimated=True),
        ReadingIn(device="m1", parameter="exported_active_energy_delta", ts=T0,
                  period_end=T0 + QH, value=0.7),
    ])
    [record] = api.get("/api/v1/usage/").json()["results"]
    assert record == {
        "meter": "m1", "parameter": "active_energy_delta",
        "start_date": None, "end_date": None,
        "period_start": "2026-03-01T00:00:00+00:00", "period_end": "2026-03-01T00:15:00+00:00",
        "value": 2.5, "unit": "kWh", "redelivery": 0.7, "production": None, "cost": 0.4,
        "currency": "EUR", "estimated": True, "updated_at": record["updated_at"],
    }
    assert dt.datetime.fromisoformat(record["updated_at"]) <= dt.datetime.now(dt.UTC)


def test_usage_of_a_renewable_meter_reports_production(api, deployment, make_device):
    make_device(deployment, "pv", subtype="On-site Renewable Electricity")
    ingest_usage(deployment, "pv", 1)
    [record] = api.get("/api/v1/usage/").json()["results"]
    assert record["production"] == record["value"]


def test_readings_are_in_reading_format(api, deployment, make_device):
    make_device(deployment, "m1")
    readings_ingest(deployment=deployment, source="t", records=[
        ReadingIn(device="m1", parameter="active_energy", ts=T0, value=1234.5)])
    [record] = api.get("/api/v1/readings/").json()["results"]
    assert record == {"meter": "m1", "parameter": "active_energy",
                      "timestamp": "2026-03-01T00:00:00+00:00", "value": 1234.5, "unit": "kWh",
                      "estimated": False, "updated_at": record["updated_at"]}
    assert record["updated_at"]
    assert api.get("/api/v1/usage/").json()["results"] == []


def test_usage_filters_by_date_range_from_inclusive_to_exclusive(api, deployment, make_device):
    make_device(deployment, "m1")
    ingest_usage(deployment, "m1", 8)
    results = api.get("/api/v1/usage/", {"from": "2026-03-01T00:30:00Z",
                                         "to": "2026-03-01T01:00:00+00:00"}).json()["results"]
    assert [r["period_start"][11:16] for r in results] == ["00:30", "00:45"]


def test_a_date_only_bound_is_midnight_in_the_deployments_zone(api, deployment, make_device):
    make_device(deployment, "m1")
    # Madrid is UTC+1 in March: 2026-03-02 starts at 2026-03-01T23:00Z.
    ingest_usage(deployment, "m1", 2, start=dt.datetime(2026, 3, 1, 22, 45, tzinfo=dt.UTC))
    results = api.get("/api/v1/usage/", {"from": "2026-03-02", "to": "2026-03-03"}).json()[
        "results"]
    assert [r["period_start"][11:16] for r in results] == ["23:00"]


def test_an_unencoded_plus_in_an_offset_is_understood(api, deployment, make_device):
    make_device(deployment, "m1")
    ingest_usage(deployment, "m1", 8)
    response = api.get("/api/v1/usage/?from=2026-03-01T02:30:00+02:00&to=2026-03-02")
    assert len(response.json()["results"]) == 6


@pytest.mark.parametrize(("params", "code"), [
    ({"from": "2026-03-02", "to": "2026-03-01"}, "invalid_range"),
    ({"from": "2026-03-01", "to": "2026-03-01"}, "invalid_range"),
    ({"from": "2025-01-01", "to": "2026-03-01"}, "range_too_long"),
    ({"from": "2026-13-01"}, "invalid_date"),
    ({"from": "yesterday"}, "invalid_date"),
    ({"from": "2026-03-01T00:00:00"}, "invalid_date"),
    ({"updated_since": "2026-03-01T00:00:00"}, "invalid_date"),
    ({"limit": "5000"}, "invalid"),
    ({"cursor": "not-a-cursor"}, "invalid_cursor"),
])
@pytest.mark.parametrize("path", ["/api/v1/usage/", "/api/v1/readings/"])
def test_bad_dates_and_paging_answer_400_with_a_clear_message(api, path, params, code):
    response = api.get(path, params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]


def test_updated_since_on_assets_uses_their_change_time(api, deployment):
    now = dt.datetime.now(dt.UTC)
    Site.objects.create(deployment=deployment, external_id="old", name="Old")
    Site.objects.filter(external_id="old").update(updated_at=now - dt.timedelta(minutes=2))
    since = (now - dt.timedelta(minutes=1)).isoformat()
    assert api.get("/api/v1/assets/", {"updated_since": since}).json()["results"] == []
    Site.objects.filter(external_id="old").update(name="Renamed",
                                                  updated_at=now - dt.timedelta(seconds=30))
    [asset] = api.get("/api/v1/assets/", {"updated_since": since}).json()["results"]
    assert asset["name"] == "Renamed"


@pytest.mark.parametrize("flt", [
    {}, {"meters": ("m2",)}, {"start": T0 + 2 * QH, "end": T0 + 5 * QH}, {"after_seq": 3},
])
@pytest.mark.parametrize("after", [None, 2])
def test_the_portable_usage_query_returns_what_the_postgresql_one_does(
        deployment, make_device, flt, after):
    from apps.partner_api import selectors
    from apps.partner_api.params import PageRequest

    for meter in ("m1", "m2"):
        make_device(deployment, meter)
        ingest_usage(deployment, meter, 6)
    ingest_usage(deployment, "m2", 6, parameter="exported_active_energy_delta", cost=1.0,
                 currency="EUR")
    flt = selectors.SeriesFilter(**flt)
    if after:
        after = Reading.objects.order_by("id").values_list("id", flat=True)[after]
    page = PageRequest(4, 0, after) if after else PageRequest(4, 2)
    bound = selectors._series_bound(deployment, page, incremental=flt.after_seq is not None)
    args = {"deployment": deployment, "flt": flt, "page": page, "cat": selectors.catalogue(),
            "bound": bound}
    rows = selectors._usage_rows_postgresql(**args)
    assert rows == selectors._usage_rows_generic(**args)
    assert rows
