"""The sandbox IS3: faithful to the seed's traps, and the APIv3 read-back of what it kept."""

import json

import pytest

from apps.sandbox.dexma.models import (
    AppToken,
    Is3Stats,
    PlatformDatasource,
    PlatformDeployment,
    PlatformDevice,
)

URL = "/sandbox/dexma/is3/readings"
pytestmark = pytest.mark.django_db


@pytest.fixture
def platform_ds():
    account = PlatformDeployment.objects.create(dep_id="acme", name="Acme")
    return PlatformDatasource.objects.create(deployment=account, app_id="63", key="hub-a",
                                             name="A", timezone="Europe/Madrid",
                                             source_token="tok")


def post(client, body, *, key="hub-a", token="tok"):
    return client.post(f"{URL}?source_key={key}", data=json.dumps(body),
                       content_type="application/json", HTTP_X_DEXCELL_SOURCE_TOKEN=token)


def msg(ts, p, v, did="m1"):
    return {"did": did, "sqn": 1, "ts": ts, "values": [{"p": p, "v": v}]}


def stats(platform_ds):
    return Is3Stats.objects.get(datasource=platform_ds)


def test_wrong_source_token_is_refused(client, platform_ds):
    response = post(client, [], token="nope")
    assert response.status_code == 401


def test_unknown_source_key_is_refused(client, platform_ds):
    assert post(client, [], key="other").status_code == 404


def test_empty_array_is_a_cheap_credential_check(client, platform_ds):
    response = post(client, [])
    assert response.status_code == 200 and response.content == b"OK"


def test_disabled_datasource_is_refused(client, platform_ds):
    PlatformDatasource.objects.filter(pk=platform_ds.pk).update(status="DISABLED")
    assert post(client, [msg("2026-06-01T02:00:00+02:00", 401, 1)]).status_code == 403


def test_more_than_5000_values_in_one_body_is_refused(client, platform_ds):
    body = [{"did": "m1", "sqn": 1, "ts": "2026-06-01T02:00:00+02:00",
             "values": [{"p": 401, "v": i} for i in range(5001)]}]
    assert post(client, body).status_code == 400


def test_misaligned_interval_reading_is_answered_ok_and_silently_dropped(client, platform_ds):
    response = post(client, [msg("2026-06-01T02:07:00+02:00", 40201, 1.0),
                             msg("2026-06-01T02:15:00+02:00", 40201, 2.0),
                             msg("2026-06-01T00:00:00Z", 40221, 3.0)])  # UTC day, not Madrid
    assert response.status_code == 200 and response.content == b"OK"
    assert stats(platform_ds).discarded == 2 and stats(platform_ds).stored == 1


def test_overwrites_and_out_of_order_inserts_are_counted(client, platform_ds):
    post(client, [msg("2026-06-01T02:15:00+02:00", 401, 1.0)])
    post(client, [msg("2026-06-01T02:00:00+02:00", 401, 1.0),   # older: out of order
                  msg("2026-06-01T02:15:00+02:00", 401, 5.0)])  # same instant: overwrite
    assert (stats(platform_ds).overwrites, stats(platform_ds).out_of_order) == (1, 1)


def test_kept_values_are_served_by_the_readings_read_back(client, platform_ds):
    post(client, [msg("2026-06-01T02:00:00+02:00", 40201, 1.5),
                  msg("2026-06-01T02:15:00+02:00", 40201, 2.5)])
    token = AppToken.objects.create(deployment=platform_ds.deployment, app_id="63")
    device = PlatformDevice.objects.get(datasource=platform_ds, local_id="m1")

    response = client.get("/sandbox/dexma/v3/readings", {
        "device_id": device.pk, "parameter_key": "EACTIVE", "resolution": "QH",
        "operation": "DELTA", "from": "2026-06-01T02:00:00+02:00",
        "to": "2026-06-01T03:00:00+02:00"}, HTTP_X_DEXCELL_TOKEN=token.token)

    assert response.json() == {"values": [{"ts": "2026-06-01T02:00:00+02:00", "v": 1.5},
                                          {"ts": "2026-06-01T02:15:00+02:00", "v": 2.5}]}


def test_a_second_discrete_resolution_is_answered_ok_and_silently_dropped(client, platform_ds):
    post(client, [msg("2026-06-01T02:00:00+02:00", 40201, 1.0)])
    response = post(client, [msg("2026-06-01T03:00:00+02:00", 40211, 4.0),   # hourly delta
                             msg("2026-06-01T03:00:00+02:00", 40201, 2.0),
                             msg("2026-06-01T03:00:00+02:00", 40102, 9.0)])  # other base code
    assert response.status_code == 200 and response.content == b"OK"
    assert stats(platform_ds).discarded == 1 and stats(platform_ds).stored == 3
