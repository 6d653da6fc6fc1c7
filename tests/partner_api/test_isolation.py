"""A key of one deployment never reads or writes another deployment's data."""

import pytest

from apps.core.models import Device, Quarantine, Reading, Site

from .conftest import ingest_usage

pytestmark = pytest.mark.django_db

READS = ["/api/v1/assets/", "/api/v1/meters/", "/api/v1/usage/", "/api/v1/readings/"]


@pytest.fixture
def theirs(other_deployment, make_device):
    device = make_device(other_deployment, "their-meter")
    ingest_usage(other_deployment, "their-meter", 3)
    return device


@pytest.mark.parametrize("path", READS)
def test_lists_show_nothing_of_another_deployment(api, theirs, path):
    response = api.get(path)
    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.parametrize("path", READS)
def test_naming_another_deployment_is_forbidden(api, theirs, path):
    response = api.get(path, {"deployment": "globex"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "deployment_forbidden"


@pytest.mark.parametrize("path", ["/api/v1/assets/hq/", "/api/v1/meters/their-meter/"])
def test_another_deployments_record_is_not_found(api, theirs, path):
    response = api.get(path)
    assert response.status_code == 404


@pytest.mark.parametrize("path", ["/api/v1/usage/", "/api/v1/readings/"])
def test_filtering_on_another_deployments_meter_is_not_found(api, theirs, path):
    assert api.get(path, {"meter": "their-meter"}).status_code == 404


def test_pushing_readings_for_another_deployments_meter_is_rejected(api, theirs):
    before = Reading.objects.filter(device=theirs).count()
    response = api.post("/api/v1/readings/", {"readings": [
        {"meter": "their-meter", "parameter": "active_power", "ts": "2026-03-01T00:00:00Z",
         "value": 1}]}, format="json")
    assert response.status_code == 200
    assert response.json()["rejected"] == 1
    assert "unknown device" in response.json()["rejections"][0]["reason"]
    assert Reading.objects.filter(device=theirs).count() == before
    assert Quarantine.objects.get().deployment.slug == "acme"


def test_pushing_to_another_deployment_by_name_is_forbidden(api, theirs):
    response = api.post("/api/v1/readings/?deployment=globex", {"readings": [
        {"meter": "their-meter", "parameter": "active_power", "ts": "2026-03-01T00:00:00Z",
         "value": 1}]}, format="json")
    assert response.status_code == 403
    assert not Quarantine.objects.exists()


def test_upserting_an_asset_with_another_deployments_id_creates_our_own(api, theirs):
    response = api.put("/api/v1/assets/hq/", {"name": "Ours"}, format="json")
    assert response.status_code == 201
    assert Site.objects.get(deployment=theirs.deployment, external_id="hq").name != "Ours"
    assert Site.objects.get(deployment__slug="acme", external_id="hq").name == "Ours"


def test_upserting_a_meter_with_another_deployments_id_creates_our_own(api, theirs):
    response = api.put("/api/v1/meters/their-meter/",
                       {"type": "Energy", "unit": "kWh", "name": "Ours"}, format="json")
    assert response.status_code == 201
    assert Device.objects.get(pk=theirs.pk).name == "their-meter"
    assert Device.objects.filter(external_id="their-meter").count() == 2


@pytest.mark.parametrize("path", ["/api/v1/assets/hq/", "/api/v1/meters/m/"])
def test_upserting_into_another_deployment_by_name_is_forbidden(api, theirs, path):
    response = api.put(f"{path}?deployment=globex", {"name": "x", "type": "Energy",
                                                     "unit": "kWh"}, format="json")
    assert response.status_code == 403


def test_a_meter_cannot_be_attached_to_another_deployments_asset(api, theirs):
    response = api.put("/api/v1/meters/m2/", {"type": "Energy", "unit": "kWh", "asset": "hq"},
                       format="json")
    assert response.status_code == 409  # no such asset in this deployment
    assert response.json()["error"]["fields"]["asset"]
