"""Enrollment, eligibility and compensation: read from the platform, refreshed on a schedule
and on UserEligibilityUpdated, enrolling from the admin."""

import pytest
from django.utils import timezone

from apps.volue import tasks
from apps.volue.apps import VolueConfig
from apps.volue.models import Notification, VolueCustomer, VolueMeter
from apps.volue.schemas import event_parse
from apps.volue.selectors import customers_named_in
from apps.volue.services import event_record
from tests.volue.conftest import API, calls

pytestmark = pytest.mark.django_db
USER = "hub-acme-acme"


@pytest.fixture
def registered(customer, make_device):
    customer.remote_user_id = USER
    customer.save()
    VolueMeter.objects.create(customer=customer, meter_point_id="707057500000000011",
                              remote_id="loc-1")
    return customer


def mock_status(platform, *, enrolled: bool):
    platform.get(f"{API}/users/{USER}/enrollment", json={
        "userId": USER, "isEnrolled": enrolled,
        "enrollmentId": "3f2c4e1a-0000-4000-8000-000000000001" if enrolled else None,
        "enrollmentDate": "2026-03-01T08:00:00Z" if enrolled else None})
    platform.get(f"{API}/users/{USER}/eligibility", json={"userId": USER, "isEligible": True})
    platform.get(f"{API}/users/{USER}/compensation", json={
        "userId": USER, "period": {"from": "2026-03-01", "to": "2026-03-31"},
        "locationCompensations": [{"locationId": "loc-1", "meterPointIds": ["707057500000000011"],
                                   "activeAmount": 12.5, "blockedAmount": 1.25,
                                   "currency": "NOK", "problems": []}]})
    platform.get(f"{API}/meters/707057500000000011/eligible",
                 json={"meterPointId": "707057500000000011", "isEligible": True})


def test_refresh_stores_enrollment_eligibility_and_compensation_per_location(platform,
                                                                             registered):
    mock_status(platform, enrolled=True)

    tasks.customer_status_refresh(registered.pk)

    registered.refresh_from_db()
    assert (registered.enrolled, registered.eligible) == (True, True)
    assert registered.compensation_period == "2026-03-01…2026-03-31"
    meter = registered.meters.get()
    assert (meter.eligible, meter.compensation_active, meter.compensation_blocked,
            meter.compensation_currency) == (True, 12.5, 1.25, "NOK")


def test_admin_shows_enrollment_and_compensation_to_date(admin_client, platform, registered):
    mock_status(platform, enrolled=True)
    tasks.customer_status_refresh(registered.pk)

    page = admin_client.get("/admin/volue/voluecustomer/").content.decode()

    assert "12.50 NOK" in page


def test_enroll_action_posts_the_enrollment_and_shows_the_result(admin_client, platform,
                                                                 registered):
    platform.post(f"{API}/users/{USER}/enrollment", json={
        "userId": USER, "isEnrolled": True,
        "enrollmentId": "3f2c4e1a-0000-4000-8000-000000000001",
        "enrollmentDate": "2026-03-01T08:00:00Z"})
    mock_status(platform, enrolled=True)

    response = admin_client.post("/admin/volue/voluecustomer/", {
        "action": "enroll", "_selected_action": [registered.pk]}, follow=True)

    assert len(calls(platform, "POST", f"/users/{USER}/enrollment")) == 1
    assert "enrolled (enrolled: True, eligible: True)" in response.content.decode()
    registered.refresh_from_db()
    assert registered.enrolled is True


def test_refused_enrollment_is_shown_with_the_call_and_the_reason(admin_client, platform,
                                                                  registered):
    platform.post(f"{API}/users/{USER}/enrollment", status=400,
                  body='"userId: the user has no eligible meter point"',
                  content_type="application/json")

    response = admin_client.post("/admin/volue/voluecustomer/", {
        "action": "enroll", "_selected_action": [registered.pk]}, follow=True)

    page = response.content.decode()
    assert "Volue refused PostUserEnrollment (POST /users/hub-acme-acme/enrollment) with 400" \
        in page and "the user has no eligible meter point" in page


def test_eligibility_event_queues_a_status_refresh_of_the_users_named(
    registered, deployment, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(tasks.customer_status_refresh, "delay", queued.append)
    other = VolueCustomer.objects.create(deployment=deployment, key="b", name="B",
                                         remote_user_id="u-out")
    payload = {"payloadType": "UserEligibility", "lastUpdated": "2026-03-03T09:00:00Z",
               "addedUsers": [USER], "removedUsers": ["u-out", "not-ours"]}
    notification = Notification.objects.create(
        notification_id="n-el", event_id="e-el", notification_type="UserEligibilityUpdated",
        body={"eventId": "e-el", "eventCreatedAtUtc": None, "payload": payload},
        sent_at=timezone.now(),
    )

    with django_capture_on_commit_callbacks(execute=True):
        tasks.notification_process(notification.pk)

    assert sorted(queued) == sorted([registered.pk, other.pk])


def test_an_eligibility_event_read_on_catch_up_names_its_customers(registered, deployment):
    other = VolueCustomer.objects.create(deployment=deployment, key="b", name="B",
                                         remote_user_id="u-out")
    eligibility = {"payloadType": "UserEligibility", "lastUpdated": "2026-03-03T09:00:00Z",
                   "addedUsers": [USER],
                   "removedUsers": ["u-out", "not-ours"]}
    event, _ = event_record(event=event_parse("e-el", None, eligibility), source="catch_up")
    control, _ = event_record(event=event_parse("e-lpc", None, {
        "payloadType": "LocationLPC", "targets": []}), source="catch_up")

    assert sorted(customers_named_in(event)) == sorted([registered.pk, other.pk])
    assert customers_named_in(control) == []


def test_status_is_refreshed_on_a_schedule():
    [schedule] = [s for s in VolueConfig.schedules if s.task == "volue.status_refresh"]
    assert schedule.every_seconds == 3600
    assert "volue.status_refresh" in tasks.status_refresh.app.tasks
