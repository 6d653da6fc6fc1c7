"""Consent lifecycle, reconcile, admin actions and tasks, against a mocked APIv3."""

import json

import pytest
import responses

from apps.core.models import Datasource, Run
from apps.core.services.datasources import datasource_set_consent, datasources_expire_consents
from apps.dexma import services, tasks
from apps.dexma.models import DexmaDatasource

from .conftest import API

pytestmark = pytest.mark.django_db


def merge_answer(status):
    return {"id": 260, "key": "hub-madrid-hq", "name": "Madrid HQ", "status": status}


@responses.activate
def test_expired_consent_disables_the_linked_datasource_on_the_platform(registered):
    responses.post(f"{API}/datasources", json=merge_answer("DISABLED"))
    hub_source = registered.selections.get().device.datasource
    datasource_set_consent(datasource=hub_source, status=Datasource.Consent.ACTIVE,
                           expires_at=None)
    Datasource.objects.filter(pk=hub_source.pk).update(consent_expires_at="2020-01-01T00:00Z")
    datasources_expire_consents()
    report = services.consents_apply()
    assert report.pushed == 1
    assert json.loads(responses.calls[0].request.body) == {
        "id": 260, "name": "Madrid HQ", "status": "DISABLED"}
    registered.refresh_from_db()
    assert registered.consent_suspended and registered.platform_status == "DISABLED"


@responses.activate
def test_revoked_consent_disables_and_renewal_enables_again(registered):
    hub_source = registered.selections.get().device.datasource
    responses.post(f"{API}/datasources", json=merge_answer("DISABLED"))
    datasource_set_consent(datasource=hub_source, status=Datasource.Consent.REVOKED)
    services.consents_apply()
    responses.replace(responses.POST, f"{API}/datasources", json=merge_answer("ENABLED"))
    datasource_set_consent(datasource=hub_source, status=Datasource.Consent.ACTIVE)
    services.consents_apply()
    assert [json.loads(c.request.body)["status"] for c in responses.calls] == [
        "DISABLED", "ENABLED"]
    registered.refresh_from_db()
    assert not registered.consent_suspended and registered.platform_status == "ENABLED"


@responses.activate
def test_renewal_does_not_enable_a_datasource_the_user_disabled(registered):
    registered.enabled = False
    registered.platform_status = "DISABLED"
    registered.consent_suspended = True
    registered.save()
    services.consents_apply()
    assert not responses.calls
    registered.refresh_from_db()
    assert not registered.consent_suspended and registered.platform_status == "DISABLED"


def test_consents_apply_makes_no_call_when_nothing_changed(registered):
    with responses.RequestsMock() as mocked:
        assert services.consents_apply().pushed == 0
        assert not mocked.calls


@responses.activate
def test_a_failed_consent_push_is_retried_on_the_next_run(registered):
    hub_source = registered.selections.get().device.datasource
    datasource_set_consent(datasource=hub_source, status=Datasource.Consent.REVOKED)
    responses.post(f"{API}/datasources", status=503)
    report = services.consents_apply()
    assert report.failed == 1
    responses.replace(responses.POST, f"{API}/datasources", json=merge_answer("DISABLED"))
    assert services.consents_apply().pushed == 1


@responses.activate
def test_reconcile_reads_the_platform_with_one_list_call_and_records_its_status(registered):
    responses.get(f"{API}/datasources", json=[merge_answer("ENABLED")])
    report = services.installation_reconcile(installation=registered.installation)
    assert len(responses.calls) == 1 and report.pushed == 0
    assert responses.calls[0].request.params["limit"] == "500"
    registered.refresh_from_db()
    assert registered.last_sync_at is not None


@responses.activate
def test_reconcile_pushes_the_wanted_status_when_the_platform_differs(registered):
    responses.get(f"{API}/datasources", json=[merge_answer("DISABLED")])
    responses.post(f"{API}/datasources", json=merge_answer("ENABLED"))
    report = services.installation_reconcile(installation=registered.installation)
    assert report.pushed == 1
    assert json.loads(responses.calls[1].request.body)["status"] == "ENABLED"


@responses.activate
def test_reconcile_marks_a_datasource_gone_from_the_platform_as_missing(registered):
    responses.get(f"{API}/datasources", json=[])
    report = services.installation_reconcile(installation=registered.installation)
    assert report.missing == 1
    registered.refresh_from_db()
    assert registered.platform_status == DexmaDatasource.PlatformStatus.MISSING


@responses.activate
def test_reconcile_task_logs_a_run(registered):
    responses.get(f"{API}/datasources", json=[merge_answer("ENABLED")])
    tasks.reconcile_installation.apply(args=[registered.installation.pk]).get()
    run = Run.objects.get(kind="dexma.reconcile")
    assert run.status == Run.Status.SUCCEEDED and run.target == registered.installation.dep_id


@responses.activate
def test_reconcile_task_retries_after_the_rate_limit_reset(registered, monkeypatch):
    from celery.exceptions import Retry

    countdowns = []

    def retry(**kwargs):
        countdowns.append(kwargs["countdown"])
        return Retry()

    monkeypatch.setattr(tasks.reconcile_installation, "retry", retry)
    limited = {"X-Ratelimit-Hour-Remaining": "0", "X-Ratelimit-Hour-Reset": "1200",
               "X-Ratelimit-Day-Remaining": "10", "X-Ratelimit-Day-Reset": "5000"}
    responses.get(f"{API}/datasources", status=429, headers=limited)
    result = tasks.reconcile_installation.apply(args=[registered.installation.pk])
    assert result.state == "RETRY"
    assert len(responses.calls) == 1
    assert len(countdowns) == 1 and 1190 <= countdowns[0] <= 1200


@responses.activate
def test_app_initiated_delete_calls_the_platform_then_removes_locally(registered):
    responses.delete(f"{API}/datasources/260", status=204)
    services.datasource_delete(datasource=registered)
    assert responses.calls[0].request.url == f"{API}/datasources/260"
    assert not DexmaDatasource.objects.exists()


@responses.activate
def test_admin_delete_on_platform_action(admin_client, registered):
    responses.delete(f"{API}/datasources/260", status=204)
    response = admin_client.post("/admin/dexma/dexmadatasource/", {
        "action": "delete_on_platform", "_selected_action": [registered.pk]})
    assert response.status_code == 302
    assert not DexmaDatasource.objects.exists()


@responses.activate
def test_admin_disable_action_pushes_disabled(admin_client, registered):
    responses.post(f"{API}/datasources", json=merge_answer("DISABLED"))
    admin_client.post("/admin/dexma/dexmadatasource/", {
        "action": "disable", "_selected_action": [registered.pk]})
    assert json.loads(responses.calls[0].request.body)["status"] == "DISABLED"


def test_admin_pages_never_show_tokens(admin_client, registered):
    installation = registered.installation
    for url in ("/admin/dexma/installation/",
                f"/admin/dexma/installation/{installation.pk}/change/",
                "/admin/dexma/dexmadatasource/",
                f"/admin/dexma/dexmadatasource/{registered.pk}/change/"):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert installation.token not in body and "src-token-260" not in body


def test_admin_refuses_a_device_of_another_deployment(registered, other_deployment,
                                                      make_device):
    from django.core.exceptions import ValidationError

    from apps.dexma.models import SelectedDevice

    foreign = make_device(other_deployment, "GLX-1")
    with pytest.raises(ValidationError):
        SelectedDevice(datasource=registered, device=foreign).full_clean()


@responses.activate
def test_consents_task_logs_what_it_pushed(registered):
    responses.post(f"{API}/datasources", json=merge_answer("DISABLED"))
    hub_source = registered.selections.get().device.datasource
    datasource_set_consent(datasource=hub_source, status=Datasource.Consent.REVOKED)
    assert tasks.consents_apply.apply().get() == {"pushed": 1, "failed": 0}
    assert Run.objects.get(kind="dexma.consents").status == Run.Status.SUCCEEDED
