"""Tasks are thin: they load by id, call the service and leave a run in the log."""

import pytest

from apps.core.models import Run
from apps.volue import tasks
from tests.volue.conftest import API, eligibility_events_page

pytestmark = pytest.mark.django_db
USER = "hub-acme-acme"


def test_customer_sync_task_registers_and_logs_a_run(platform, customer):
    platform.post(f"{API}/users", json={"userId": USER}, status=201)
    platform.post(f"{API}/users/{USER}/locations", json={"locationId": "l"}, status=201)

    counts = tasks.customer_sync(customer.pk)

    run = Run.objects.get(kind="volue.register")
    assert run.status == "succeeded" and run.counts == counts and counts["created"] == 3


def test_customer_sync_task_marks_a_refused_meter_as_a_partial_run(platform, customer):
    platform.post(f"{API}/users", json={"userId": USER}, status=201)
    platform.post(f"{API}/users/{USER}/locations",
                  body='"meterPointIds: 707057500000000011 is not a known metering point"',
                  status=400, content_type="application/json")
    platform.get(f"{API}/users/{USER}/locations", json=[])

    tasks.customer_sync(customer.pk)

    run = Run.objects.get(kind="volue.register")
    assert run.status == "partial"
    assert "Volue refused PostLocation (POST /users/hub-acme-acme/locations) with 400: " \
        "meterPointIds: 707057500000000011 is not a known metering point" in run.error
    assert "Correct the meter's meterPointId" in run.error
    customer.refresh_from_db()
    assert "is not a known metering point" in customer.last_error


def test_catch_up_task_asks_for_reports_when_it_found_events(platform, monkeypatch):
    planned = []
    monkeypatch.setattr(tasks.reports_plan, "delay", lambda: planned.append(True))
    eligibility_events_page(platform, "e-1")

    counts = tasks.events_catch_up()

    assert counts["recorded"] == 1 and planned == [True]


def test_catch_up_task_queues_a_status_refresh_of_the_customers_an_event_names(
    platform, customer, monkeypatch, django_capture_on_commit_callbacks
):
    customer.remote_user_id = USER
    customer.save()
    queued = []
    monkeypatch.setattr(tasks.customer_status_refresh, "delay", queued.append)
    monkeypatch.setattr(tasks.reports_plan, "delay", lambda: None)
    eligibility_events_page(platform, "e-1", added=(USER,), removed=("not-ours",))

    with django_capture_on_commit_callbacks(execute=True):
        tasks.events_catch_up()

    assert queued == [customer.pk]
