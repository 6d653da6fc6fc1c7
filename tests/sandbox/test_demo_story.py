"""The demo tells the README's story: a key that stays valid across runs, and an overview that
says which of its figures the demo produces on purpose."""

import pytest
from django.apps import apps

from apps.core.models import Deployment
from apps.partner_api.models import ApiKey
from apps.pull.models import Connection
from apps.sandbox.demo import DEMO_DEPLOYMENT
from apps.sandbox.demo.pull import demo_connection_setup, demo_pull_setup

pytestmark = pytest.mark.django_db


def _demo_key(settings, tmp_path, deployment) -> str:
    settings.VAR_DIR = tmp_path
    lines: list[str] = []
    apps.get_app_config("partner_api").demo_setup(deployment=deployment, write=lines.append)
    return lines[0].split(": ", 1)[1].split()[0]


def test_the_demo_api_key_is_the_same_on_every_run_and_works(settings, tmp_path, client):
    deployment = Deployment.objects.create(slug=DEMO_DEPLOYMENT, name="Acme Retail (demo)")

    first = _demo_key(settings, tmp_path, deployment)
    second = _demo_key(settings, tmp_path, deployment)

    assert first == second and first.startswith("hub_")
    assert ApiKey.objects.filter(name="Demo partner").count() == 1
    answer = client.get("/api/v1/usage/?limit=5", HTTP_X_API_KEY=first)
    assert answer.status_code == 200, answer.content


def test_the_demo_key_comes_back_after_the_database_was_reset(settings, tmp_path, client):
    deployment = Deployment.objects.create(slug=DEMO_DEPLOYMENT, name="Acme Retail (demo)")
    first = _demo_key(settings, tmp_path, deployment)
    ApiKey.objects.all().delete()  # a new var/hub.sqlite3, the kept key file still there

    again = _demo_key(settings, tmp_path, deployment)

    assert again == first
    assert client.get("/api/v1/usage/?limit=5", HTTP_X_API_KEY=again).status_code == 200


def test_the_overview_explains_the_demo_figures_and_its_deliberate_quarantine(admin_client):
    plain = admin_client.get("/admin/").content.decode()
    assert "Demo:" not in plain  # not a demo deployment: no note
    deployment = Deployment.objects.create(slug=DEMO_DEPLOYMENT, name="Acme Retail (demo)")
    demo_connection_setup(deployment=deployment)

    page = admin_client.get("/admin/").content.decode()

    assert "Demo: Acme Retail (demo) starts with 2 sites and 4 meters" in page
    assert "adds its 3 assets and 6 meters" in page
    assert "spoils every 150th usage record on purpose" in page


def test_demo_setup_adds_one_scheduled_connection_to_the_sandbox_idempotently():
    deployment = Deployment.objects.create(slug=DEMO_DEPLOYMENT, name="Acme Retail (demo)")
    lines: list[str] = []
    demo_pull_setup(deployment=deployment, write=lines.append)
    demo_pull_setup(deployment=deployment, write=lines.append)

    connection = Connection.objects.get(deployment=deployment)
    assert connection.datasource.kind == "pull"
    assert connection.datasource.key != "acme-gateway"
    assert "/sandbox/upstream/demo-provider/" in connection.base_url
    assert connection.endpoints.count() == 3
    assert connection.periodic_task.enabled
    assert "pull connection 'Acme utility provider (sandbox)'" in lines[0]
