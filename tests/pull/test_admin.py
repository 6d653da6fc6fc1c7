"""The ops console: edit, test connection, sync now, failing badge."""

from __future__ import annotations

from unittest import mock

import pytest
import responses
from django.urls import reverse

from apps.core.models import Run
from apps.pull.models import Connection, Endpoint
from apps.pull.services import connection_setup

BASE = "https://provider.example/api/"


@pytest.fixture
def connection(deployment):
    connection = Connection.objects.create(
        deployment=deployment, name="Provider", key="provider", staging_url=BASE,
        auth_kind="api_key_header", api_key="super-secret-key", max_retries=0,
    )
    Endpoint.objects.create(connection=connection, role="meters", path="meters",
                            pagination="none", records_path="items",
                            fields={"external_id": "id", "type": "kind", "unit": "unit"})
    return connection_setup(connection=connection)


@pytest.fixture
def staff(admin_client):
    return admin_client


@responses.activate
def test_test_connection_shows_the_mapped_preview_and_stores_nothing(staff, connection):
    responses.get(BASE + "meters", json={"items": [
        {"id": "M-1", "kind": "electricity", "unit": "kWh"},
        {"id": "M-2", "kind": "plasma", "unit": "kWh"},
    ]})

    page = staff.get(reverse("admin:pull_connection_test", args=[connection.pk]))

    text = page.content.decode()
    assert page.status_code == 200
    assert "M-1" in text and "2 records" in text
    assert not connection.datasource.devices.exists()


@responses.activate
def test_test_connection_shows_the_provider_error(staff, connection):
    responses.get(BASE + "meters", status=403, json={"error": "forbidden"})

    page = staff.get(reverse("admin:pull_connection_test", args=[connection.pk]))

    assert "answered 403" in page.content.decode()


def test_sync_now_queues_the_task_after_commit(staff, connection,
                                               django_capture_on_commit_callbacks):
    from apps.pull import tasks

    with mock.patch.object(tasks.connection_sync_task, "delay") as delay, \
            django_capture_on_commit_callbacks(execute=True):
        response = staff.post(reverse("admin:pull_connection_sync", args=[connection.pk]))

    assert response.status_code == 302
    delay.assert_called_once_with(connection.pk)


def test_the_change_form_never_shows_a_stored_secret(staff, connection):
    page = staff.get(reverse("admin:pull_connection_change", args=[connection.pk]))

    text = page.content.decode()
    assert page.status_code == 200
    assert "super-secret-key" not in text
    assert "A value is stored; leave blank to keep it." in text
    assert "Test connection" in text and "Sync now" in text


def test_the_changelist_flags_failing_connections(staff, connection):
    Connection.objects.filter(pk=connection.pk).update(last_status=Run.Status.FAILED)

    page = staff.get(reverse("admin:pull_connection_changelist"))

    text = page.content.decode()
    assert "1 connection(s) failing: Provider" in text
    assert "hub-badge-failed" in text


def test_an_invalid_connection_is_refused_with_the_reason(staff, deployment):
    url = reverse("admin:pull_connection_add")
    form = staff.get(url).context["adminform"].form
    data = {name: "" if value is None else value for name, value in form.initial.items()
            if not isinstance(value, dict | list)}
    data.update({"deployment": deployment.pk, "name": "New", "key": "new",
                 "environment": "production", "auth_kind": "basic", "type_map": "{}",
                 "consumption_parameters": "{}", "reading_parameters": "{}",
                 "endpoints-TOTAL_FORMS": "0", "endpoints-INITIAL_FORMS": "0",
                 "units-TOTAL_FORMS": "0", "units-INITIAL_FORMS": "0"})

    page = staff.post(url, data)

    errors = page.context["adminform"].form.errors
    assert "give its base URL" in errors["production_url"][0]
    assert "required for HTTP Basic auth" in errors["username"][0]
    assert not Connection.objects.filter(key="new").exists()
