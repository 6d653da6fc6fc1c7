"""Storm switches of the simulated platforms: what they answer, what they record, and that
the hub waits as long as a `Retry-After` asks."""

import base64
import datetime as dt
import json
import time

import pytest
from django.utils import timezone

from apps.core.models import OutboundBatch
from apps.sandbox.dexma.faults import switches_changed, token_digest
from apps.sandbox.dexma.models import (
    AppToken,
    Is3Stats,
    PlatformDatasource,
    PlatformDeployment,
    PlatformFault,
    PlatformRequest,
)
from apps.sandbox.wattics.models import (
    CollectorAccount,
    CollectorFault,
    CollectorPacket,
    CollectorRequest,
)

pytestmark = pytest.mark.django_db
IS3 = "/sandbox/dexma/is3/readings"
API = "/sandbox/dexma/v3/datasources"
COLLECTOR = "/sandbox/wattics/measurements/v2/unifiedjson/"
BODY = [{"did": "m1", "sqn": 1, "ts": "2026-03-02T10:00:00+00:00",
         "values": [{"p": 401, "v": 1.5}]}]


@pytest.fixture(autouse=True)
def _forget_quiet_memo():
    # The sandbox remembers "no switch" for a second per process; tests switch faster.
    switches_changed()
    yield
    switches_changed()


@pytest.fixture
def platform_ds():
    account = PlatformDeployment.objects.create(dep_id="acme", name="Acme")
    return PlatformDatasource.objects.create(deployment=account, app_id="63", key="hub-a",
                                             name="A", source_token="tok")


@pytest.fixture
def app_token(platform_ds):
    return AppToken.objects.create(deployment=platform_ds.deployment, app_id="63",
                                   hour_limit=5)


def insert(client, key="hub-a"):
    return client.post(f"{IS3}?source_key={key}", data=json.dumps(BODY),
                       content_type="application/json", HTTP_X_DEXCELL_SOURCE_TOKEN="tok")


def test_is3_answers_a_storm_with_retry_after_and_stores_nothing(client, platform_ds):
    PlatformFault.objects.create(target="is3", status=429, retry_after=7)
    response = insert(client)
    assert response.status_code == 429
    assert response["Retry-After"] == "7"
    assert not Is3Stats.objects.filter(datasource=platform_ds, stored__gt=0).exists()
    logged = PlatformRequest.objects.get()
    assert (logged.target, logged.credential, logged.status, logged.retry_after) == (
        "is3", "hub-a", 429, 7)


def test_a_500_carries_no_retry_after_even_if_one_is_set(client, platform_ds):
    PlatformFault.objects.create(target="is3", status=500, retry_after=7)
    response = insert(client)
    assert response.status_code == 500
    assert not response.has_header("Retry-After")
    assert PlatformRequest.objects.get().retry_after is None


def test_a_switch_turned_off_lets_requests_through_and_keeps_recording_them(client,
                                                                            platform_ds):
    PlatformFault.objects.create(target="is3", status=503, enabled=False)
    before = timezone.now()
    assert insert(client).status_code == 200
    assert Is3Stats.objects.get(datasource=platform_ds).stored == 1
    logged = PlatformRequest.objects.get()
    assert logged.status == 200 and logged.arrived_at >= before


def test_without_any_switch_nothing_is_recorded(client, platform_ds):
    assert insert(client).status_code == 200
    assert not PlatformRequest.objects.exists()


def test_an_is3_storm_leaves_the_apiv3_alone(client, app_token):
    PlatformFault.objects.create(target="is3", status=503)
    response = client.get(API, HTTP_X_DEXCELL_TOKEN=app_token.token)
    assert response.status_code == 200
    assert not PlatformRequest.objects.exists()


def test_an_apiv3_storm_answers_before_the_budget_is_charged(client, app_token):
    PlatformFault.objects.create(target="api", status=429, retry_after=3)
    response = client.get(API, HTTP_X_DEXCELL_TOKEN=app_token.token)
    assert response.status_code == 429 and response["Retry-After"] == "3"
    assert response.json()["code"] == "E429"
    app_token.refresh_from_db()
    assert app_token.hour_used == 0


def test_apiv3_requests_are_recorded_by_token_digest_with_the_budget_refusal(client,
                                                                             app_token):
    PlatformFault.objects.create(target="api", status=0)
    statuses = [client.get(API, HTTP_X_DEXCELL_TOKEN=app_token.token).status_code
                for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    logged = list(PlatformRequest.objects.values_list("credential", "status"))
    assert logged == [(token_digest(app_token.token), s) for s in statuses]
    assert app_token.token not in {c for c, _ in logged}


def collector_post(client, ts="2026-03-02T10:00:00.000+01:00"):
    auth = base64.b64encode(b"acme:pw").decode()
    body = json.dumps({"id": "m1", "tsISO8601": ts, "value": 1}, separators=(",", ":"))
    return client.post(COLLECTOR, body, content_type="application/json",
                       HTTP_AUTHORIZATION=f"Basic {auth}")


@pytest.fixture
def collector_account():
    account = CollectorAccount(username="acme", auto_register=True)
    account.set_password("pw")
    account.save()
    return account


def test_collector_answers_429_with_retry_after_and_records_arrivals(client,
                                                                    collector_account):
    fault = CollectorFault.objects.create(status=429, retry_after=12)
    response = collector_post(client)
    assert response.status_code == 429 and response["Retry-After"] == "12"
    assert not CollectorPacket.objects.exists()
    fault.enabled = False
    fault.save()
    assert collector_post(client).status_code == 200
    assert list(CollectorRequest.objects.values_list("meter_id", "status", "retry_after")) == [
        ("m1", 429, 12), ("m1", 200, None)]


def test_collector_records_nothing_without_a_switch(client, collector_account):
    assert collector_post(client).status_code == 200
    assert not CollectorRequest.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_hub_waits_the_collectors_retry_after_before_sending_again(
        live_server, settings, deployment, make_device):
    """A 429 asking for a minute: the batch is not tried again before that minute is over,
    and no packet is lost or reordered."""
    from apps.core.services import ReadingIn, readings_ingest
    from apps.wattics.models import WatticsAccount
    from apps.wattics.services import stream_create, stream_push

    settings.WATTICS_API_URL = live_server.url + COLLECTOR
    settings.WATTICS_RETRY_BACKOFF = 0.01
    account = CollectorAccount(username="acme", auto_register=True)
    account.set_password("pw")
    account.save()
    WatticsAccount.objects.create(name="Acme", username="acme", password="pw",
                                  deployment=deployment)
    device = make_device(deployment, "dev-1")
    stream = stream_create(device=device, meter_id="wm-1", kind="single",
                           channels={"value": "temperature"}, timezone="UTC")
    start = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    readings_ingest(deployment=deployment, source="test", records=[
        ReadingIn(device="dev-1", parameter="temperature", ts=start + i * dt.timedelta(
            minutes=15), value=20 + i) for i in range(3)])
    CollectorFault.objects.create(status=429, retry_after=60)
    asked_at = timezone.now()
    result = stream_push(stream=stream)
    assert result.sent == 0
    assert CollectorRequest.objects.filter(status=429).count() == 1  # no retry in place
    batch = OutboundBatch.objects.get(link=stream.link)
    assert batch.state == OutboundBatch.State.RETRY
    assert batch.next_attempt_at >= asked_at + dt.timedelta(seconds=60)
    CollectorFault.objects.all().delete()
    assert stream_push(stream=stream).sent == 0  # not due yet: nothing sent early
    OutboundBatch.objects.filter(pk=batch.pk).update(next_attempt_at=timezone.now())
    assert stream_push(stream=stream).sent == 3
    values = [p.packet["value"] for p in CollectorPacket.objects.order_by("pk")]
    assert values == [20, 21, 22]


def test_volue_control_counts_tokens_issued_and_calls_refused(client, settings):
    settings.VOLUE_CLIENT_ID, settings.VOLUE_CLIENT_SECRET = "hub", "s3cret"
    form = {"grant_type": "client_credentials", "client_id": "hub", "client_secret": "s3cret"}
    token = client.post("/sandbox/volue/connect/token", form).json()["access_token"]
    client.post("/sandbox/volue/connect/token", form)
    assert client.get("/sandbox/volue/api/events",
                      HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    client.post("/sandbox/volue/control", "{}", content_type="application/json")
    revoked = client.post("/sandbox/volue/control", json.dumps({"revokeTokens": True}),
                          content_type="application/json").json()
    assert (revoked["tokensIssued"], revoked["refusedTokens"]) == (2, 0)
    time.sleep(0.01)
    assert client.get("/sandbox/volue/api/events",
                      HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    assert client.get("/sandbox/volue/api/events").status_code == 401
    counts = client.post("/sandbox/volue/control", "{}",
                         content_type="application/json").json()
    assert (counts["tokensIssued"], counts["refusedTokens"]) == (2, 2)
