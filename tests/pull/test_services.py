"""Run control around the sync: schedules, single flight, failure notices, tasks, demo."""

from __future__ import annotations

import json
from unittest import mock

import pytest
import responses
from django.core import mail

from apps.core.locks import single_flight
from apps.core.models import Run
from apps.pull.models import Connection, Endpoint
from apps.pull.services import connection_setup, connection_sync

BASE = "https://provider.example/api/"


@pytest.fixture
def connection(deployment):
    connection = Connection.objects.create(
        deployment=deployment, name="Provider", key="provider", staging_url=BASE,
        auth_kind="api_key_header", api_key="k", notify_email="ops@example.com", max_retries=0,
    )
    Endpoint.objects.create(connection=connection, role="meters", path="meters",
                            pagination="none", fields={"external_id": "id", "type": "t",
                                                       "unit": "u"})
    return connection_setup(connection=connection)


def test_setup_creates_a_pull_datasource_and_a_monthly_schedule_on_the_first(connection):
    connection.frequency = Connection.Frequency.MONTHLY
    connection.run_hour = 2
    connection_setup(connection=connection)

    task = connection.periodic_task
    assert connection.datasource.kind == "pull"
    assert task.task == "pull.connection_sync"
    assert json.loads(task.kwargs) == {"connection_id": connection.pk}
    assert (task.crontab.day_of_month, task.crontab.hour) == ("1", "2")


def test_a_disabled_connection_keeps_its_schedule_but_disabled(connection):
    connection.is_enabled = False
    connection_setup(connection=connection)
    connection.periodic_task.refresh_from_db()
    assert connection.periodic_task.enabled is False


def test_a_second_run_of_the_same_connection_is_skipped_while_one_runs(connection):
    with single_flight(f"pull:sync:{connection.pk}", ttl=60):
        outcome = connection_sync(connection=connection)
    assert outcome.run is None and outcome.skipped == "already running"
    assert not Run.objects.exists()


@responses.activate
def test_a_failed_run_emails_ops_once_and_marks_the_connection(connection):
    responses.get(BASE + "meters", status=401, json={"error": "bad key"})

    first = connection_sync(connection=connection).run
    connection_sync(connection=connection)

    assert first.status == Run.Status.FAILED
    assert "401" in first.error and "check the credentials" in first.error
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@example.com"]
    assert "Provider" in mail.outbox[0].subject
    connection.refresh_from_db()
    assert connection.last_status == Run.Status.FAILED


@responses.activate
def test_one_connection_failing_does_not_stop_another(connection, deployment):
    other = Connection.objects.create(deployment=deployment, name="Other", key="other",
                                      staging_url="https://other.example/", max_retries=0)
    Endpoint.objects.create(connection=other, role="meters", path="meters", pagination="none",
                            records_path="",
                            fields={"external_id": "id", "type": "t", "unit": "u"})
    responses.get(BASE + "meters", status=500)
    responses.get("https://other.example/meters",
                  json=[{"id": "X-1", "t": "electricity", "u": "kWh"}])
    from apps.pull.tasks import connection_sync_task

    connection_sync_task.apply(args=[connection.pk])
    result = connection_sync_task.apply(args=[other.pk]).get()

    assert result["status"] == Run.Status.SUCCEEDED
    other.refresh_from_db()
    assert other.datasource.devices.get().external_id == "X-1"


def test_kickoff_starts_one_task_per_connection_that_never_ran(connection, deployment):
    Connection.objects.create(deployment=deployment, name="Off", key="off", staging_url=BASE,
                              is_enabled=False)
    from apps.pull import tasks

    with mock.patch.object(tasks.connection_sync_task, "delay") as delay:
        assert tasks.connections_kickoff() == 1
    delay.assert_called_once_with(connection.pk)


@responses.activate
def test_assets_are_derived_from_meter_fields_when_there_is_no_assets_endpoint(connection):
    endpoint = connection.endpoints.get()
    endpoint.fields = {**endpoint.fields, "asset_id": "site.code", "asset_name": "site.label",
                       "city": "site.city"}
    endpoint.records_path = ""
    endpoint.save()
    responses.get(BASE + "meters", json=[
        {"id": "W-1", "t": "water", "u": "m3", "site": {"code": "S1", "label": "Depot",
                                                         "city": "Bilbao"}}])

    run = connection_sync(connection=connection).run

    assert run.status == Run.Status.SUCCEEDED, run.error
    device = connection.datasource.devices.get()
    assert (device.site.external_id, device.site.name, device.site.city) == (
        "S1", "Depot", "Bilbao")
    assert (device.commodity, device.subtype) == ("water", "Potable")
