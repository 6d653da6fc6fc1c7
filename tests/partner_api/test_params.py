"""Scaler's names and formats, and strict query parameters."""

import datetime as dt

import pytest

from apps.core.models import Device, Site
from apps.core.services import ReadingIn, readings_ingest

from .conftest import QH, T0, ingest_usage

pytestmark = pytest.mark.django_db
DAY = dt.timedelta(days=1)
MADRID_MIDNIGHT = dt.datetime(2026, 3, 1, 23, 0, tzinfo=dt.UTC)  # 2026-03-02 00:00 CET


def ingest_days(deployment, meter, starts_and_ends):
    readings_ingest(deployment=deployment, source="t", records=[
        ReadingIn(device=meter, parameter="active_energy_delta", ts=start, period_end=end,
                  value=1.0) for start, end in starts_and_ends])


@pytest.fixture
def madrid_meter(deployment, make_device):
    site = Site.objects.create(deployment=deployment, external_id="mad", name="Madrid",
                               timezone="Europe/Madrid")
    return make_device(deployment, "m1", site=site)


def test_a_whole_local_day_carries_scaler_dates_in_the_meters_zone(api, deployment,
                                                                   madrid_meter):
    ingest_days(deployment, "m1", [(MADRID_MIDNIGHT, MADRID_MIDNIGHT + DAY)])
    [record] = api.get("/api/v1/usage/").json()["results"]
    # Truncating the UTC instant would say 2026-03-01.
    assert (record["start_date"], record["end_date"]) == ("2026-03-02", "2026-03-03")
    assert record["period_start"] == "2026-03-01T23:00:00+00:00"
    assert record["period_end"] == "2026-03-02T23:00:00+00:00"


def test_the_short_day_of_the_clock_change_is_still_one_local_day(api, deployment,
                                                                  madrid_meter):
    # 29 March 2026: Madrid moves to CEST, the day has 23 hours.
    start = dt.datetime(2026, 3, 28, 23, 0, tzinfo=dt.UTC)
    ingest_days(deployment, "m1", [(start, start + dt.timedelta(hours=23))])
    [record] = api.get("/api/v1/usage/").json()["results"]
    assert (record["start_date"], record["end_date"]) == ("2026-03-29", "2026-03-30")


def test_a_month_is_whole_local_days_too(api, deployment, madrid_meter):
    start = dt.datetime(2026, 4, 30, 22, 0, tzinfo=dt.UTC)  # 1 May, CEST
    ingest_days(deployment, "m1", [(start, dt.datetime(2026, 5, 31, 22, 0, tzinfo=dt.UTC))])
    [record] = api.get("/api/v1/usage/").json()["results"]
    assert (record["start_date"], record["end_date"]) == ("2026-05-01", "2026-06-01")


def test_a_period_shorter_than_a_day_has_no_dates_but_its_instants(api, deployment,
                                                                    madrid_meter):
    ingest_days(deployment, "m1", [(MADRID_MIDNIGHT, MADRID_MIDNIGHT + QH)])
    [record] = api.get("/api/v1/usage/").json()["results"]
    assert (record["start_date"], record["end_date"]) == (None, None)
    assert record["period_end"] == "2026-03-01T23:15:00+00:00"


def test_a_utc_day_is_not_a_madrid_day(api, deployment, madrid_meter):
    start = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    ingest_days(deployment, "m1", [(start, start + DAY)])
    [record] = api.get("/api/v1/usage/").json()["results"]
    assert record["start_date"] is None


def test_a_meter_without_an_asset_uses_the_deployments_zone(api, deployment, make_device):
    make_device(deployment, "loose", site=None)
    ingest_days(deployment, "loose", [(MADRID_MIDNIGHT, MADRID_MIDNIGHT + DAY)])
    [record] = api.get("/api/v1/usage/").json()["results"]
    assert record["start_date"] == "2026-03-02"


@pytest.mark.parametrize(("start", "end"), [("from", "to"), ("start_date", "end_date"),
                                            ("start_date", "to"), ("from", "end_date")])
def test_start_date_and_end_date_filter_like_from_and_to(api, deployment, make_device,
                                                         start, end):
    make_device(deployment, "m1")
    ingest_usage(deployment, "m1", 8)
    results = api.get("/api/v1/usage/", {start: "2026-03-01T00:30:00Z",
                                         end: "2026-03-01T01:00:00Z"}).json()["results"]
    assert [r["period_start"][11:16] for r in results] == ["00:30", "00:45"]


def test_a_date_only_start_date_is_midnight_in_the_deployments_zone(api, deployment,
                                                                    make_device):
    make_device(deployment, "m1")
    ingest_usage(deployment, "m1", 2, start=dt.datetime(2026, 3, 1, 22, 45, tzinfo=dt.UTC))
    results = api.get("/api/v1/usage/", {"start_date": "2026-03-02",
                                         "end_date": "2026-03-03"}).json()["results"]
    assert [r["period_start"][11:16] for r in results] == ["23:00"]


def error_of(response, status=400):
    assert response.status_code == status, response.content
    return response.json()["error"]


@pytest.mark.parametrize("path", ["/api/v1/usage/", "/api/v1/readings/", "/api/v1/meters/",
                                  "/api/v1/assets/"])
@pytest.mark.parametrize("name", ["form", "per_page", "pageSize", "since", "start"])
def test_an_unknown_query_parameter_is_named_and_the_accepted_ones_listed(api, path, name):
    error = error_of(api.get(path, {name: "2026-03-01"}))
    assert error["code"] == "unknown_parameter"
    assert f"'{name}'" in error["message"]
    assert "limit" in error["message"] and "updated_since" in error["message"]
    assert error["fields"] == {name: ["unknown parameter"]}


def test_detail_endpoints_refuse_list_parameters(api, deployment, make_device):
    make_device(deployment, "m1")
    error = error_of(api.get("/api/v1/meters/m1/", {"limit": "5"}))
    assert "accepts: deployment" in error["message"]


def test_a_post_refuses_unknown_query_parameters(api, deployment, make_device):
    response = api.post("/api/v1/readings/?dry_run=1", {"readings": []}, format="json")
    assert error_of(response)["code"] == "unknown_parameter"


def test_a_single_parameter_repeated_with_different_values_is_refused(api):
    error = error_of(api.get("/api/v1/usage/?limit=5&limit=10"))
    assert "'limit' is given 2 times with different values (10, 5)" in error["message"]


def test_a_single_parameter_repeated_with_the_same_value_is_that_value(api, deployment,
                                                                       make_device):
    make_device(deployment, "m1")
    ingest_usage(deployment, "m1", 3)
    body = api.get("/api/v1/usage/?limit=2&limit=2").json()
    assert len(body["results"]) == 2


@pytest.mark.parametrize(("params", "code", "field"), [
    ({"to": "2026-03-01"}, "invalid_range", "to"),
    ({"end_date": "2026-03-01"}, "invalid_range", "end_date"),
    ({"from": "2000-01-01"}, "range_too_long", "to"),
    ({"start_date": "2025-01-01", "end_date": "2026-03-01"}, "range_too_long", "end_date"),
    ({"from": "2026-03-01", "to": "2027-03-03"}, "range_too_long", "to"),
    ({"from": "2026-03-02", "end_date": "2026-03-01"}, "invalid_range", "end_date"),
    ({"from": "2026-03-01", "start_date": "2026-03-01"}, "invalid", "start_date"),
    ({"to": "2026-03-02", "end_date": "2026-03-02", "from": "2026-03-01"}, "invalid",
     "end_date"),
    ({"start_date": "2026-02-30", "end_date": "2026-03-01"}, "invalid_date", "start_date"),
    ({"page": "0"}, "invalid", "page"),
    ({"page": "x"}, "invalid", "page"),
    ({"page_size": "1001"}, "invalid", "page_size"),
    ({"page": "2", "offset": "10"}, "invalid", "page"),
    ({"limit": "10", "page_size": "10"}, "invalid", "page_size"),
    ({"cursor": "djIuMS5pMQ", "offset": "3"}, "invalid", "cursor"),
    ({"cursor": "cDE6MA"}, "invalid_cursor", "cursor"),  # a v1 cursor (seq-ordered)
    ({"include_deleted": "maybe"}, "unknown_parameter", "include_deleted"),
    ({"updated_since": "0001-01-01T00:00:00+14:00"}, "invalid_date", "updated_since"),
    ({"updated_since": "9999-12-31T23:59:59-14:00"}, "invalid_date", "updated_since"),
])
def test_every_range_and_paging_rule_applies_to_every_combination(api, params, code, field):
    error = error_of(api.get("/api/v1/usage/", params))
    assert error["code"] == code, error
    assert field in error["fields"], error


def test_the_whole_allowed_range_is_accepted(api, deployment, make_device):
    make_device(deployment, "m1")
    response = api.get("/api/v1/usage/", {"from": "2026-01-01", "to": "2027-01-02"})
    assert response.status_code == 200


def test_a_cursor_of_the_meters_list_is_refused_by_usage(api, deployment, make_device):
    make_device(deployment, "m1")
    make_device(deployment, "m2")
    Device.objects.update(updated_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    cursor = api.get("/api/v1/meters/", {"limit": 1, "updated_since": "2020-01-01"}).json()[
        "next_cursor"]
    assert cursor
    assert error_of(api.get("/api/v1/usage/", {"cursor": cursor}))["code"] == "invalid_cursor"


@pytest.mark.parametrize("path", ["/api/v1/meters/", "/api/v1/assets/"])
def test_include_deleted_must_be_a_boolean(api, path):
    error = error_of(api.get(path, {"include_deleted": "maybe"}))
    assert error["fields"] == {"include_deleted": ["true or false"]}


def test_the_last_page_number_is_short_and_has_no_next(api, deployment,
                                                        make_device):
    make_device(deployment, "m1")
    ingest_usage(deployment, "m1", 3, start=T0)
    body = api.get("/api/v1/usage/", {"page": 2, "page_size": 2}).json()
    assert [r["period_start"] for r in body["results"]] == [(T0 + 2 * QH).isoformat()]
    assert body["next"] is None


@pytest.mark.parametrize("path", ["/api/v1/usage/", "/api/v1/readings/"])
def test_an_empty_parameter_filter_is_refused_not_read_as_every_parameter(api, path):
    error = error_of(api.get(path, {"parameter": ""}))
    assert (error["code"], error["fields"]) == ("invalid", {"parameter": ["empty"]}), error
