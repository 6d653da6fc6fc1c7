"""The webhook: signed notifications only, malformed bodies refused, each stored once,
answered at once and processed by a worker."""

import datetime as dt
import json

import pytest

from apps.volue import tasks
from apps.volue.models import Event, Notification, VolueMeter, WebhookSubscription
from apps.volue.schemas import signature_of
from tests.volue.conftest import API

pytestmark = pytest.mark.django_db
URL = "/volue/webhook"
SECRET = "hook-secret-0123456789abcdef0123456789"


@pytest.fixture
def subscription():
    return WebhookSubscription.objects.create(url="https://hub.test/volue/webhook",
                                              secret=SECRET, remote_id="wh-1")


@pytest.fixture
def processed(monkeypatch):
    """The worker, run inline: ids of the notifications handed to it."""
    handed = []

    def delay(notification_id):
        handed.append(notification_id)
        tasks.notification_process(notification_id)

    monkeypatch.setattr(tasks.notification_process, "delay", delay)
    monkeypatch.setattr(tasks.reports_plan, "delay", lambda: None)
    return handed


def notification(notification_id="n-1", event_id="e-1", **payload_extra):
    start = dt.datetime(2026, 3, 3, 12, tzinfo=dt.UTC)
    payload = {"payloadType": "LocationLPC", "targets": [{
        "locationId": "m-1", "meterPointId": "707057500000000011", "resolution": "01:00:00",
        "points": [{"timestamp": (start + dt.timedelta(hours=i)).isoformat(),
                    "maxPowerInKiloWatts": 20.0} for i in range(3)],
    }], **payload_extra}
    return json.dumps({
        "notificationId": notification_id, "eventId": event_id,
        "eventCreatedAtUtc": "2026-03-03T10:00:00+00:00",
        "notificationSentUtc": "2026-03-03T10:00:01+00:00",
        "notificationType": "LocationLPCRequested", "payload": payload,
    }).encode()


def post(client, body: bytes, signature: str | None):
    headers = {} if signature is None else {"HTTP_X_PAYLOAD_SIGNATURE": signature}
    return client.post(URL, data=body, content_type="application/json", **headers)


def test_correctly_signed_notification_is_accepted_and_processed(
    client, subscription, processed, django_capture_on_commit_callbacks, customer
):
    meter = VolueMeter.objects.create(customer=customer, meter_point_id="707057500000000011",
                                      remote_id="m-1")
    body = notification()
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body, signature_of(body, SECRET))

    assert response.status_code == 202
    event = Event.objects.get(event_id="e-1")
    assert event.source == "webhook"
    assert event.window_start == dt.datetime(2026, 3, 3, 12, tzinfo=dt.UTC)
    assert event.window_end == dt.datetime(2026, 3, 3, 15, tzinfo=dt.UTC)
    assert event.targets.get().matched_meter == meter
    assert Notification.objects.get().processed_at is not None


def test_processing_happens_after_the_answer_not_inside_it(client, subscription, processed):
    body = notification()

    response = post(client, body, signature_of(body, SECRET))  # no commit in this test

    assert response.status_code == 202
    assert processed == [] and not Event.objects.exists()


def test_bad_signature_is_401(client, subscription):
    body = notification()
    response = post(client, body, signature_of(body, "another-secret"))
    assert response.status_code == 401
    assert not Notification.objects.exists()


def test_missing_signature_is_401(client, subscription):
    response = post(client, notification(), None)
    assert response.status_code == 401


def test_body_altered_after_signing_is_401(client, subscription):
    body = notification()
    signature = signature_of(body, SECRET)
    altered = body.replace(b"20.0", b"99.0")
    response = post(client, altered, signature)
    assert response.status_code == 401
    assert not Notification.objects.exists()


def test_no_subscription_means_nothing_is_trusted(client):
    body = notification()
    assert post(client, body, signature_of(body, SECRET)).status_code == 401


@pytest.mark.parametrize("body", [
    b"not json",
    b"[1, 2]",
    json.dumps({"notificationId": "n-1"}).encode(),
    notification().replace(b"LocationLPCRequested", b"SomethingElse"),
    notification().replace(b"2026-03-03T12:00:00+00:00", b"2026-03-03T12:00:00"),
], ids=["not-json", "not-object", "missing-fields", "unknown-type", "naive-timestamp"])
def test_malformed_body_is_400(client, subscription, body):
    response = post(client, body, signature_of(body, SECRET))
    assert response.status_code == 400
    assert not Notification.objects.exists()


def test_replayed_notification_is_a_no_op(
    client, subscription, processed, django_capture_on_commit_callbacks
):
    body = notification()
    signature = signature_of(body, SECRET)
    with django_capture_on_commit_callbacks(execute=True):
        first = post(client, body, signature)
        replay = post(client, body, signature)

    assert first.status_code == 202
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    assert Notification.objects.count() == 1 and Event.objects.count() == 1
    assert len(processed) == 1


def test_same_event_in_a_new_notification_is_stored_once(
    client, subscription, processed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        for notification_id in ("n-1", "n-2"):
            body = notification(notification_id=notification_id)
            post(client, body, signature_of(body, SECRET))

    assert Notification.objects.count() == 2
    assert Event.objects.count() == 1


def test_eligibility_update_changes_the_users_eligibility(
    client, subscription, processed, django_capture_on_commit_callbacks, customer, deployment,
    monkeypatch,
):
    from apps.volue.models import VolueCustomer

    monkeypatch.setattr(tasks.customer_status_refresh, "delay", lambda pk: None)

    customer.remote_user_id = "u-in"
    customer.save()
    other = VolueCustomer.objects.create(deployment=deployment, key="b", name="B",
                                         remote_user_id="u-out", eligible=True)
    body = json.dumps({
        "notificationId": "n-9", "eventId": "e-9",
        "eventCreatedAtUtc": "2026-03-03T10:00:00Z", "notificationSentUtc": "2026-03-03T10:00Z",
        "notificationType": "UserEligibilityUpdated",
        "payload": {"payloadType": "UserEligibility", "lastUpdated": "2026-03-03T09:00:00Z",
                    "addedUsers": ["u-in"], "removedUsers": ["u-out"]},
    }).encode()
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, body, signature_of(body, SECRET)).status_code == 202

    customer.refresh_from_db()
    other.refresh_from_db()
    assert customer.eligible is True and other.eligible is False


def test_webhook_is_exempt_from_csrf(subscription):
    from django.test import Client

    body = notification()
    strict = Client(enforce_csrf_checks=True)
    assert post(strict, body, signature_of(body, SECRET)).status_code == 202


def test_event_whose_hours_are_over_asks_for_its_report_at_once(
    client, subscription, processed, django_capture_on_commit_callbacks, monkeypatch
):
    planned = []
    monkeypatch.setattr(tasks.reports_plan, "delay", lambda: planned.append(True))
    body = notification()  # its hours were in March 2026
    with django_capture_on_commit_callbacks(execute=True):
        post(client, body, signature_of(body, SECRET))

    assert planned == [True]


def test_notification_stored_while_the_broker_is_down_is_processed_by_the_catch_up(
    client, subscription, monkeypatch, django_capture_on_commit_callbacks, customer, caplog,
    platform,
):
    """The platform gets its 202 (the notification is stored); the next events catch-up
    finishes what the lost hand-off would have done."""
    from kombu.exceptions import OperationalError

    def broker_down(notification_id):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.notification_process, "delay", broker_down)
    monkeypatch.setattr(tasks.reports_plan, "delay", lambda: None)
    body = notification()
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body, signature_of(body, SECRET))

    assert response.status_code == 202
    stored = Notification.objects.get()
    assert stored.processed_at is None
    assert "left for the catch-up" in caplog.text

    Notification.objects.filter(pk=stored.pk).update(
        received_at=stored.received_at - dt.timedelta(minutes=2))
    platform.get(f"{API}/events", json={"pagination": {"totalRecords": 0, "pageSize": 100,
                                                       "currentPage": 1}, "events": []})
    tasks.events_catch_up()

    assert Notification.objects.get().processed_at is not None
    assert Event.objects.get(event_id="e-1").source == "webhook"

