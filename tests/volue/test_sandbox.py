"""The sandbox platform keeps the real one's rules: expiring tokens, conflicts on repeated
creates, and /reports that refuses what the platform would refuse."""

import json

import pytest

from apps.sandbox.volue.models import SbCall, SbEvent

pytestmark = pytest.mark.django_db
BASE = "/sandbox/volue"


@pytest.fixture
def bearer(client, settings):
    settings.VOLUE_CLIENT_ID, settings.VOLUE_CLIENT_SECRET = "hub", "s3cret"
    answer = client.post(f"{BASE}/connect/token", {"grant_type": "client_credentials",
                                                    "client_id": "hub", "client_secret": "s3cret"})
    return {"HTTP_AUTHORIZATION": f"Bearer {answer.json()['access_token']}"}


def post(client, path, body, headers):
    return client.post(f"{BASE}/api/{path}", json.dumps(body), content_type="application/json",
                       **headers)


def test_token_lifetime_is_configurable(client, settings):
    settings.VOLUE_CLIENT_ID, settings.VOLUE_CLIENT_SECRET = "hub", "s3cret"
    settings.SANDBOX_VOLUE_TOKEN_LIFETIME = 42
    answer = client.post(f"{BASE}/connect/token", {"grant_type": "client_credentials",
                                                    "client_id": "hub", "client_secret": "s3cret"})
    assert answer.json()["expires_in"] == 42


def test_wrong_client_secret_gets_no_token(client, settings):
    settings.VOLUE_CLIENT_ID = "hub"
    answer = client.post(f"{BASE}/connect/token", {"grant_type": "client_credentials",
                                                    "client_id": "hub", "client_secret": "x"})
    assert answer.status_code == 401


def test_api_without_token_is_401(client):
    assert client.post(f"{BASE}/api/users").status_code == 401


def test_same_meter_point_in_two_locations_is_a_conflict(client, bearer):
    post(client, "users", {"userId": "u"}, bearer)

    first = post(client, "users/u/locations", {"locationId": "a", "meterPointIds": ["7070"]},
                 bearer)
    second = post(client, "users/u/locations", {"locationId": "b", "meterPointIds": ["7070"]},
                  bearer)

    assert (first.status_code, second.status_code) == (201, 409)


def test_quickstart_meters_path_is_not_in_the_partner_api(client, bearer):
    post(client, "users", {"userId": "u"}, bearer)
    assert post(client, "users/u/meters", {"meterPointId": "7070"}, bearer).status_code == 404
    answer = client.put(f"{BASE}/api/users/u/meters/m", "{}", content_type="application/json",
                        **bearer)
    assert answer.status_code == 404


def test_method_the_document_does_not_give_a_path_is_405(client, bearer):
    answer = client.patch(f"{BASE}/api/users/u", "{}", content_type="application/json",
                          **bearer)
    assert answer.status_code == 405


def test_body_the_document_refuses_is_400_naming_the_field(client, bearer):
    post(client, "users", {"userId": "u"}, bearer)
    answer = post(client, "users/u/locations",
                  {"locationId": "a", "locationType": "Garage"}, bearer)
    assert answer.status_code == 400
    assert answer.json().startswith("locationType: 'Garage' is not one of")


def test_vehicle_refusal_is_problem_details_as_the_document_declares(client, bearer):
    answer = post(client, "users/u/vehicles", {"resourceId": "v"}, bearer)
    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/problem+json"
    assert "resourceType" in str(answer.json()["errors"])


def test_every_call_is_in_the_journal(client, bearer):
    post(client, "users", {"userId": "u"}, bearer)
    post(client, "users/u/meters", {}, bearer)
    assert list(SbCall.objects.values_list("operation_id", "status")) == [
        ("PostUser", 201), ("", 404)]


@pytest.fixture
def event():
    return SbEvent.objects.create(event_id="e-1", notification_type="LocationLPCRequested",
                                  payload={}, created_at="2026-03-03T10:00:00Z")


def usage(**changes):
    payload = {"payloadType": "EnergyUsage", "resourceId": "r", "locationId": None,
               "meterPointId": None, "resolution": "01:00:00",
               "points": [{"timestamp": "2026-03-03T12:00:00Z", "kiloWattHours": 1.5}]}
    return {"eventId": "e-1", "payloads": [{**payload, **changes}]}


def test_valid_energy_usage_report_is_accepted(client, bearer, event):
    answer = post(client, "reports", usage(), bearer)
    assert answer.status_code == 200 and answer.json()["eventId"] == "e-1"


@pytest.mark.parametrize(("changes", "reason"), [
    ({"resourceId": ""}, "resourceId is required"),
    ({"resolution": "00:15:00"}, "resolution must be 01:00:00"),
    ({"points": [{"timestamp": "2026-03-03T12:30:00Z", "kiloWattHours": 1}]}, "hour start"),
    ({"points": [{"timestamp": "2026-03-03T12:00:00", "kiloWattHours": 1}]},
     "timestamp: '2026-03-03T12:00:00' is not a 'date-time'"),
    ({"points": [{"timestamp": "2026-03-03T12:00:00Z", "kiloWattHours": "1"}]},
     "kiloWattHours: '1' is not of type 'number'"),
])
def test_invalid_report_is_400_with_a_plain_string(client, bearer, event, changes, reason):
    answer = post(client, "reports", usage(**changes), bearer)
    assert answer.status_code == 400
    assert reason in answer.json()


def test_trigger_button_on_the_sandbox_page_returns_to_the_page(client):
    answer = client.post(f"{BASE}/trigger?type=UserEligibilityUpdated", HTTP_ACCEPT="text/html")
    assert answer.status_code == 302 and answer["Location"] == f"{BASE}/"
    assert SbEvent.objects.get().notification_type == "UserEligibilityUpdated"
