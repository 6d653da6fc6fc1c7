import pytest
from django.test import override_settings

from apps.core.models import Device, Quarantine, Reading, Run, Site

pytestmark = pytest.mark.django_db

GOOD = {"meter": "m1", "parameter": "active_energy_delta", "ts": "2026-03-01T00:00:00+01:00",
        "period_end": "2026-03-01T00:15:00+01:00", "value": 1.5}


@pytest.fixture
def meter(deployment, make_device):
    return make_device(deployment, "m1")


def test_a_valid_batch_is_stored_and_counted(api, meter):
    second = {**GOOD, "ts": "2026-03-01T00:15:00+01:00", "period_end": "2026-03-01T00:30:00+01:00"}
    response = api.post("/api/v1/readings/", {"readings": [GOOD, second]}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["received"], body["accepted"], body["inserted"], body["rejected"]) == (2, 2, 2, 0)
    assert Reading.objects.filter(device=meter).count() == 2
    assert Run.objects.get(kind="partner_api.push").counts["inserted"] == 2


def test_a_batch_that_stores_nothing_new_answers_200(api, meter):
    api.post("/api/v1/readings/", {"readings": [GOOD]}, format="json")
    again = api.post("/api/v1/readings/", {"readings": [GOOD]}, format="json")
    changed = api.post("/api/v1/readings/", {"readings": [{**GOOD, "value": GOOD["value"] + 1}]},
                       format="json")
    refused = api.post("/api/v1/readings/", {"readings": [{**GOOD, "meter": "ghost"}]},
                       format="json")
    assert [again.status_code, changed.status_code, refused.status_code] == [200, 200, 200]
    assert (again.json()["inserted"], changed.json()["updated"], refused.json()["rejected"]) == (
        0, 1, 1)


def test_a_partial_batch_stores_the_valid_and_reports_the_invalid_by_index(api, meter):
    readings = [
        GOOD,
        {**GOOD, "ts": "2026-03-01T01:00:00"},  # naive
        "not an object",
        {**GOOD, "ts": "2026-03-01T02:00:00Z", "period_end": "2026-03-01T02:15:00Z",
         "meter": "ghost"},
        {**GOOD, "ts": "2026-03-01T03:00:00Z", "period_end": "2026-03-01T03:15:00Z"},
    ]
    body = api.post("/api/v1/readings/", {"readings": readings}, format="json").json()
    assert body["accepted"] == 2
    assert [r["index"] for r in body["rejections"]] == [1, 2, 3]
    assert [r["field"] for r in body["rejections"]] == ["ts", None, "meter"]
    reasons = [r["reason"] for r in body["rejections"]]
    assert "no UTC offset" in reasons[0]
    assert "JSON object" in reasons[1]
    assert "unknown device 'ghost'" in reasons[2]
    assert Reading.objects.filter(device=meter).count() == 2
    assert Quarantine.objects.filter(deployment=meter.deployment).count() == 3
    assert Run.objects.get(kind="partner_api.push").status == Run.Status.PARTIAL


def test_an_idempotent_retry_returns_the_first_answer_and_stores_nothing_again(api, meter):
    readings = [GOOD, {**GOOD, "meter": "ghost"}]
    first = api.post("/api/v1/readings/", {"readings": readings}, format="json",
                     HTTP_IDEMPOTENCY_KEY="batch-1")
    seq = list(Reading.objects.values_list("seq", flat=True))
    retry = api.post("/api/v1/readings/", {"readings": readings}, format="json",
                     HTTP_IDEMPOTENCY_KEY="batch-1")
    assert retry.status_code == first.status_code == 201
    assert retry.json() == first.json()
    assert first.headers["Idempotent-Replayed"] == "false"
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert list(Reading.objects.values_list("seq", flat=True)) == seq
    assert Quarantine.objects.count() == 1
    assert Run.objects.filter(kind="partner_api.push").count() == 1


def test_an_idempotency_key_reused_for_other_data_is_refused(api, meter):
    api.post("/api/v1/readings/", {"readings": [GOOD]}, format="json",
             HTTP_IDEMPOTENCY_KEY="batch-1")
    response = api.post("/api/v1/readings/", {"readings": [{**GOOD, "value": 2}]},
                        format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Reading.objects.get().value == 1.5


def test_without_an_idempotency_key_a_resend_overwrites_and_is_counted_unchanged(api, meter):
    api.post("/api/v1/readings/", {"readings": [GOOD]}, format="json")
    body = api.post("/api/v1/readings/", {"readings": [GOOD]}, format="json").json()
    assert (body["inserted"], body["unchanged"]) == (0, 1)
    assert Reading.objects.count() == 1


@override_settings(PARTNER_API_MAX_BATCH=3)
def test_a_batch_over_the_limit_is_refused_whole(api, meter):
    response = api.post("/api/v1/readings/", {"readings": [GOOD] * 4}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "batch_too_large"
    assert not Reading.objects.exists()


@pytest.mark.parametrize("body", [{}, {"readings": []}, {"readings": {"a": 1}}, [GOOD]])
def test_a_body_without_a_readings_list_is_refused(api, meter, body):
    response = api.post("/api/v1/readings/", body, format="json")
    assert response.status_code == 400
    assert "readings" in response.json()["error"]["fields"]


def test_malformed_json_is_refused_in_the_error_shape(api, meter):
    response = api.post("/api/v1/readings/", "{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["status"] == 400


def test_an_asset_is_created_then_updated_by_external_id(api, deployment):
    body = {"name": "Tower", "address": {"city": "Madrid", "country": "ES"},
            "metadata": {"portfolio": "A"}}
    assert api.put("/api/v1/assets/b-1/", body, format="json").status_code == 201
    response = api.put("/api/v1/assets/b-1/", {**body, "name": "Tower 2", "active": False},
                       format="json")
    assert response.status_code == 200
    site = Site.objects.get(deployment=deployment, external_id="b-1")
    assert (site.name, site.city, site.is_active, site.metadata) == (
        "Tower 2", "Madrid", False, {"portfolio": "A"})


def test_an_asset_with_a_bad_timezone_is_refused_field_by_field(api):
    response = api.put("/api/v1/assets/b-1/", {"name": "T", "timezone": "Mars/Olympus"},
                       format="json")
    assert response.status_code == 400
    assert "timezone" in response.json()["error"]["fields"]


def test_a_meter_is_created_in_the_partner_datasource_then_updated(api, deployment):
    api.put("/api/v1/assets/b-1/", {"name": "Tower"}, format="json")
    body = {"asset": "b-1", "type": "Water", "subtype": "Potable", "unit": "m³",
            "name": "Main water", "metadata": {"serial": "W-9"}}
    assert api.put("/api/v1/meters/w-1/", body, format="json").status_code == 201
    device = Device.objects.get(deployment=deployment, external_id="w-1")
    assert (device.datasource.key, device.local_id, device.commodity, device.site.external_id
            ) == ("partner-api", "w-1", "water", "b-1")
    response = api.put("/api/v1/meters/w-1/", {**body, "unit": "L"}, format="json")
    assert response.status_code == 200
    assert response.json()["unit"] == "L"


def test_a_meter_with_a_long_external_id_gets_a_short_local_id(api):
    long_id = "x" * 40
    assert api.put(f"/api/v1/meters/{long_id}/", {"type": "Energy", "unit": "kWh"},
                   format="json").status_code == 201
    assert len(Device.objects.get(external_id=long_id).local_id) <= 25


def test_a_meter_subtype_of_another_type_is_refused(api):
    response = api.put("/api/v1/meters/w-1/", {"type": "Water", "subtype": "Natural Gas",
                                               "unit": "m³"}, format="json")
    assert response.status_code == 400
    assert "subtype" in response.json()["error"]["fields"]


def test_a_nul_character_in_a_record_is_quarantined_not_a_server_error(api, meter):
    body = '{"readings": [{"meter": "m\\u0000", "parameter": "active_power", ' \
           '"ts": "2026-03-01T00:00:00Z", "value": 1}]}'
    response = api.post("/api/v1/readings/", body, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["rejected"] == 1
    assert "m\\u0000" in Quarantine.objects.get().payload["device"]


def test_a_non_finite_value_is_rejected_for_that_record_only(api, meter):
    body = ('{"readings": [{"meter": "m1", "parameter": "active_power", '
            '"ts": "2026-03-01T00:00:00Z", "value": NaN}, [NaN]]}')
    response = api.post("/api/v1/readings/", body, content_type="application/json")
    assert response.status_code == 200
    assert [r["index"] for r in response.json()["rejections"]] == [0, 1]
    assert "finite" in response.json()["rejections"][0]["reason"]
    assert [r["field"] for r in response.json()["rejections"]] == ["value", None]
