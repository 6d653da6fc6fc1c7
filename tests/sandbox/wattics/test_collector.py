"""The sandbox collector behaves like Wattics, traps included."""

import base64
import json

import pytest

from apps.sandbox.wattics.models import (
    CollectorAccount,
    CollectorFault,
    CollectorMeter,
    CollectorPacket,
)

pytestmark = pytest.mark.django_db
URL = "/sandbox/wattics/measurements/v2/unifiedjson/"


def auth(username="acme", password="pw"):
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


@pytest.fixture
def meter():
    account = CollectorAccount(username="acme")
    account.set_password("pw")
    account.save()
    return CollectorMeter.objects.create(meter_id="m1", account=account)


def post(client, packet, raw=None, **headers):
    body = raw if raw is not None else json.dumps(packet, separators=(",", ":"))
    return client.post(URL, body, content_type="application/json", **(headers or auth()))


def packet(ts="2026-03-02T10:00:00.000+01:00", value=1):
    return {"id": "m1", "tsISO8601": ts, "value": value}


def test_demands_basic_auth_with_wattics_plain_text_answer(client, meter):
    response = post(client, packet(), HTTP_AUTHORIZATION="")
    assert response.status_code == 401
    assert response.content == b"Full authentication is required to access this resource"
    assert post(client, packet(), **auth(password="wrong")).status_code == 401


def test_accepts_a_packet_and_serves_it_as_the_last_one(client, meter):
    assert post(client, packet()).status_code == 200
    response = client.get(URL, {"stream": "m1"}, **auth())
    assert response.json() == packet()


def test_refuses_a_packet_spread_over_several_lines(client, meter):
    raw = json.dumps(packet(), indent=1)
    response = post(client, None, raw=raw)
    assert response.status_code == 400 and b"one line" in response.content


def test_refuses_a_timestamp_without_milliseconds_and_offset(client, meter):
    assert post(client, packet(ts="2026-03-02T10:00:00Z")).status_code == 400


def test_discards_out_of_order_packets_while_answering_200(client, meter):
    post(client, packet(ts="2026-03-02T10:15:00.000+01:00"))
    response = post(client, packet(ts="2026-03-02T10:00:00.000+01:00", value=2))
    assert response.status_code == 200
    meter.refresh_from_db()
    assert meter.accepted == 1 and meter.discarded == 1
    assert meter.last_packet["tsISO8601"] == "2026-03-02T10:15:00.000+01:00"


def test_orders_by_instant_across_a_dst_offset_change(client, meter):
    post(client, packet(ts="2026-10-25T02:30:00.000+02:00"))
    post(client, packet(ts="2026-10-25T02:00:00.000+01:00"))  # later instant, earlier wall
    meter.refresh_from_db()
    assert meter.accepted == 2 and meter.discarded == 0


def test_unknown_meter_is_404_and_another_accounts_meter_403(client, meter):
    assert post(client, {**packet(), "id": "nope"}).status_code == 404
    other = CollectorAccount(username="other")
    other.set_password("pw2")
    other.save()
    assert post(client, packet(), **auth("other", "pw2")).status_code == 403


def test_fault_switch_answers_503_without_storing(client, meter):
    CollectorFault.objects.create(status=503, remaining=1)
    assert post(client, packet()).status_code == 503
    assert not CollectorPacket.objects.exists()
    assert post(client, packet()).status_code == 200


def test_slow_answer_stores_the_packet_before_answering(client, meter):
    CollectorFault.objects.create(delay_ms=50, remaining=1)
    assert post(client, packet()).status_code == 200
    assert CollectorPacket.objects.filter(discarded=False).count() == 1
