"""The hub against the sandbox platform over a real socket: token, registration, signed
webhooks, catch-up and reports."""

import datetime as dt
import time

import pytest
import requests
from django.utils import timezone

from apps.core.models import OutboundBatch
from apps.core.services import ReadingIn, readings_ingest
from apps.sandbox.volue.models import SbDelivery, SbLocation, SbReport, SbUser
from apps.volue import tasks
from apps.volue.client import volue_client
from apps.volue.models import EnergyReport, Event, VolueResource
from apps.volue.services import (
    customer_sync,
    events_catch_up,
    reports_dispatch,
    reports_plan,
    subscription_ensure,
)

pytestmark = pytest.mark.django_db(transaction=True)
Q = dt.timedelta(minutes=15)


@pytest.fixture
def hub(live_server, settings, monkeypatch):
    base = live_server.url
    settings.VOLUE_API_URL = f"{base}/sandbox/volue/api"
    settings.VOLUE_AUTH_URL = f"{base}/sandbox/volue/connect/token"
    settings.VOLUE_WEBHOOK_URL = f"{base}/volue/webhook"
    settings.SANDBOX_VOLUE_AUTO_EVENT = False
    # The worker, inline: the webhook still answers first (on commit), then this runs.
    monkeypatch.setattr(tasks.notification_process, "delay",
                        lambda pk: tasks.notification_process(pk))
    monkeypatch.setattr(tasks.reports_plan, "delay", lambda: None)  # the tests plan themselves
    return base


def trigger(base, **params):
    response = requests.post(f"{base}/sandbox/volue/trigger", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["events"]


def hour_ago(hours):
    return timezone.now().replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=hours)


def test_customer_registers_receives_an_event_and_reports_it(hub, customer):
    start = hour_ago(4)
    readings_ingest(deployment=customer.deployment, source="test", records=[
        ReadingIn(device, "active_energy_delta", start + i * Q, 1.0,
                  period_end=start + (i + 1) * Q)
        for device in ("main-01", "hvac-02") for i in range(12)])
    client = volue_client()
    subscription_ensure(client=client)
    customer_sync(customer=customer, client=client)

    [event] = trigger(hub, type="LocationLPCRequested", start=start.isoformat(), hours=2)
    plan = reports_plan()
    dispatch = reports_dispatch(client=client)

    assert event["deliveries"][0]["status"] == 202
    assert Event.objects.get().event_id == event["eventId"]
    assert (plan.queued, dispatch.sent) == (1, 1)
    [report] = SbReport.objects.all()
    assert report.event_id == event["eventId"]
    assert len(report.body["payloads"]) == 2
    assert [p["kiloWattHours"] for p in report.body["payloads"][0]["points"]] == [4.0, 4.0]


def test_registration_repeated_creates_nothing_twice_on_the_platform(hub, customer):
    VolueResource.objects.create(customer=customer, resource_id="van-1",
                                 kind=VolueResource.Kind.VEHICLE, resource_type="Vehicle")
    client = volue_client()

    first = customer_sync(customer=customer, client=client)
    second = customer_sync(customer=customer, client=client)

    assert first.created == 4 and second.created == 0 and not second.errors
    assert SbUser.objects.count() == 1 and SbLocation.objects.count() == 2


def test_token_expiring_mid_run_is_renewed(hub, customer, settings):
    settings.SANDBOX_VOLUE_TOKEN_LIFETIME = 1
    client = volue_client()
    client.user_create(user_id="before")

    time.sleep(1.1)  # the first token has expired on the platform
    client.user_create(user_id="after")

    assert SbUser.objects.count() == 2


def test_token_revoked_by_the_platform_is_replaced_after_one_401(hub, customer):
    client = volue_client()
    client.user_create(user_id="before")
    requests.post(f"{hub}/sandbox/volue/control", json={"revokeTokens": True}, timeout=10)
    time.sleep(0.01)

    client.user_create(user_id="after")

    assert SbUser.objects.count() == 2


def test_every_notification_type_arrives_signed_and_is_stored(hub, customer):
    client = volue_client()
    subscription_ensure(client=client)
    customer_sync(customer=customer, client=client)

    events = trigger(hub)

    assert len(events) == 5
    assert {d["status"] for e in events for d in e["deliveries"]} == {202}
    assert set(Event.objects.values_list("payload_type", flat=True)) == {
        "PriceCurve", "UserEligibility", "LocationLPC", "ResourceLPC", "LPCReservation"}
    customer.refresh_from_db()
    assert customer.eligible is True


def test_catch_up_fetches_events_whose_webhooks_failed(hub, customer):
    client = volue_client()
    subscription_ensure(client=client)
    customer_sync(customer=customer, client=client)
    delivered = trigger(hub, type="PriceCurveCreated")
    missed = trigger(hub, type="LocationLPCRequested", deliver="0")

    result = events_catch_up(client=client)

    assert result.recorded == 1
    assert Event.objects.get(event_id=missed[0]["eventId"]).source == "catch_up"
    assert Event.objects.get(event_id=delivered[0]["eventId"]).source == "webhook"


def test_webhook_that_refuses_is_retried_three_times_then_dropped(hub, customer):
    client = volue_client()
    subscription = subscription_ensure(client=client)
    subscription.is_active = False  # the hub no longer trusts the secret: 401 every time
    subscription.save()

    [event] = trigger(hub, type="PriceCurveCreated")

    assert event["deliveries"][0]["attempts"] == 4
    assert SbDelivery.objects.get().delivered is False
    assert not Event.objects.exists()


def test_report_refused_with_503_by_the_platform_is_sent_again_later(hub, customer):
    start = hour_ago(3)
    readings_ingest(deployment=customer.deployment, source="test", records=[
        ReadingIn(device, "active_energy_delta", start + i * Q, 1.0,
                  period_end=start + (i + 1) * Q)
        for device in ("main-01", "hvac-02") for i in range(4)])
    client = volue_client()
    subscription_ensure(client=client)
    customer_sync(customer=customer, client=client)
    trigger(hub, type="LocationLPCRequested", start=start.isoformat(), hours=1)
    reports_plan()
    requests.post(f"{hub}/sandbox/volue/control", json={"failReports": 1}, timeout=10)
    once = volue_client(max_retries=0)  # leave the retrying to the outbox

    first = reports_dispatch(client=once)
    OutboundBatch.objects.update(next_attempt_at=timezone.now())
    second = reports_dispatch(client=once)
    third = reports_dispatch(client=once)

    assert (first.failed, second.sent, third.sent) == (1, 1, 0)
    assert SbReport.objects.count() == 1
    assert EnergyReport.objects.get().batch.state == "sent"
