"""APIv3 client: exact requests, error bodies, paging and the rate budget."""

import json

import pytest
import responses

from apps.core.http import PermanentError, TransientError
from apps.dexma.client import DexmaClient, access_token_create, describe_error
from tests.fakes import FakeTime

from .conftest import API, TOKEN

RATE = {
    "X-Ratelimit-Day-Limit": "10000", "X-Ratelimit-Day-Remaining": "9000",
    "X-Ratelimit-Day-Reset": "36296", "X-Ratelimit-Hour-Limit": "1000",
    "X-Ratelimit-Hour-Remaining": "999", "X-Ratelimit-Hour-Reset": "296",
}


def client(sleeps=None, token=TOKEN, **kwargs):
    fake = FakeTime(start=1_800_000_000.0, sleeps=[] if sleeps is None else sleeps)
    return DexmaClient(token, base_url=API, sleep=fake.sleep, clock=fake.clock,
                       rng=lambda: 0.0, **kwargs)


@responses.activate
def test_handshake_posts_app_id_secret_and_temp_token_as_query_parameters():
    responses.post(f"{API}/oauth/access-token", body="5b36281ac7034f9a65cd", status=201)
    token = access_token_create(app_id="63", secret="0100fb25d3daa10c9d9b",
                                temp_token="022a02b27ee5ca5d1c42", base_url=API)
    assert token == "5b36281ac7034f9a65cd"
    sent = responses.calls[0].request
    assert sent.params == {"app_id": "63", "secret": "0100fb25d3daa10c9d9b",
                           "temp_token": "022a02b27ee5ca5d1c42"}
    assert not sent.body


@responses.activate
def test_create_datasource_sends_definition_with_the_permanent_token():
    responses.post(f"{API}/datasources", status=201, headers=RATE,
                   json={"id": 260, "key": "hub-main-1a2b3c", "name": "Main", "status": "ENABLED"})
    created = client().datasource_create(key="hub-main-1a2b3c", name="Main",
                                         timezone="Europe/Madrid")
    assert created.id == 260 and created.key == "hub-main-1a2b3c"
    sent = responses.calls[0].request
    assert sent.headers["x-dexcell-token"] == TOKEN
    assert json.loads(sent.body) == {"key": "hub-main-1a2b3c", "name": "Main", "type": "VIRTUAL",
                                     "timezone": "Europe/Madrid", "status": "ENABLED"}


@responses.activate
def test_update_is_a_merge_carrying_only_id_name_and_status():
    responses.post(f"{API}/datasources", json={"id": 260, "key": "k", "name": "New",
                                               "status": "DISABLED"})
    client().datasource_update(datasource_id=260, name="New", status="DISABLED")
    assert json.loads(responses.calls[0].request.body) == {
        "id": 260, "name": "New", "status": "DISABLED"}


@responses.activate
def test_datasource_token_accepts_a_json_object_or_plain_text():
    responses.get(f"{API}/datasources/260/token", json={"token": "src-1"})
    responses.get(f"{API}/datasources/261/token", body="src-2")
    with client() as api:
        assert api.datasource_token(datasource_id=260) == "src-1"
        assert api.datasource_token(datasource_id=261) == "src-2"


@responses.activate
def test_list_pages_with_start_and_limit_until_a_short_page():
    responses.get(f"{API}/datasources", json=[{"id": 1}, {"id": 2}])
    responses.get(f"{API}/datasources", json=[{"id": 3}])
    found = list(client().datasources_list(page_size=2))
    assert [d.id for d in found] == [1, 2, 3]
    assert [c.request.params for c in responses.calls] == [
        {"start": "0", "limit": "2"}, {"start": "2", "limit": "2"}]


def test_refuses_page_size_above_500():
    with pytest.raises(ValueError, match="500"):
        list(client().datasources_list(page_size=501))


@responses.activate
def test_validation_error_body_is_surfaced_field_by_field():
    responses.post(f"{API}/datasources", status=422, json={
        "status": 422, "code": "E422", "message": "Entity validation error",
        "errors": [{"message": "must not be blank", "field": "name"}]})
    with pytest.raises(PermanentError) as caught:
        client().datasource_create(key="k", name="", timezone="UTC")
    assert describe_error(caught.value) == (
        "DEXMA answered 422 E422; Entity validation error; name: must not be blank")


@responses.activate
def test_waits_for_the_hour_reset_before_the_budget_runs_out():
    exhausted = {**RATE, "X-Ratelimit-Hour-Remaining": "1", "X-Ratelimit-Hour-Reset": "30"}
    responses.get(f"{API}/datasources/1", json={"id": 1}, headers=exhausted)
    responses.get(f"{API}/datasources/2", json={"id": 2}, headers=RATE)
    sleeps = []
    with client(sleeps) as api:
        api.datasource_get(datasource_id=1)
        api.datasource_get(datasource_id=2)
    assert len(responses.calls) == 2
    assert sleeps == [30]


@responses.activate
def test_429_waits_for_the_reset_then_retries():
    limited = {**RATE, "X-Ratelimit-Hour-Remaining": "0", "X-Ratelimit-Hour-Reset": "12"}
    responses.get(f"{API}/datasources/1", status=429, headers=limited,
                  json={"status": 429, "code": "E429", "message": "Too Many Requests"})
    responses.get(f"{API}/datasources/1", json={"id": 1}, headers=RATE)
    sleeps = []
    assert client(sleeps).datasource_get(datasource_id=1).id == 1
    assert sleeps == [12]


@responses.activate
def test_429_with_a_reset_beyond_max_wait_gives_up_with_the_wait():
    limited = {**RATE, "X-Ratelimit-Day-Remaining": "0", "X-Ratelimit-Day-Reset": "3600"}
    responses.get(f"{API}/datasources/1", status=429, headers=limited)
    with pytest.raises(TransientError) as caught:
        client(max_wait=60).datasource_get(datasource_id=1)
    assert caught.value.retry_after > 3000
    assert len(responses.calls) == 1


@responses.activate
def test_rate_budget_is_kept_per_token():
    exhausted = {**RATE, "X-Ratelimit-Hour-Remaining": "0", "X-Ratelimit-Hour-Reset": "30"}
    responses.get(f"{API}/datasources/1", json={"id": 1}, headers=exhausted)
    responses.get(f"{API}/datasources/2", json={"id": 2}, headers=RATE)
    client().datasource_get(datasource_id=1)
    sleeps = []
    client(sleeps, token="another-token-000000").datasource_get(datasource_id=2)
    assert sleeps == []


@responses.activate
def test_delete_of_an_already_deleted_datasource_succeeds():
    responses.delete(f"{API}/datasources/260", status=404, json={"status": 404})
    client().datasource_delete(datasource_id=260)


@responses.activate
def test_session_details_name_the_acting_user():
    responses.get(f"{API}/sessions/abc", json={"user": {"name": "Dana", "email": "d@x"}})
    assert client().session_get(session_id="abc").name == "Dana"
    assert responses.calls[0].request.headers["x-dexcell-session"] == "abc"


@responses.activate
def test_devices_list_filters_by_datasource():
    responses.get(f"{API}/devices", json=[{"id": 3473, "local_id": "1", "name": "General",
                                           "status": "ACCEPTED"}])
    devices = list(client().devices_list(datasource_id=260))
    assert devices[0].local_id == "1" and devices[0].status == "ACCEPTED"
    assert responses.calls[0].request.params["datasource_id"] == "260"


@responses.activate
def test_readings_read_back():
    responses.get(f"{API}/readings", json={"values": [{"ts": "2026-06-01T00:00:00Z", "v": 1.5}]})
    values = client().readings_get(device_id=1, parameter_key="EACTIVE", resolution="QH",
                                   operation="DELTA", date_from="a", date_to="b")
    assert values[0].v == 1.5
    assert responses.calls[0].request.params["parameter_key"] == "EACTIVE"
