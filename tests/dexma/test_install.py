"""Handshake, uninstall, ping and app-status: what the platform calls on the hub."""

import pytest
import responses
from django.db import connection

from apps.core.models import DeliveryLink, Deployment, OutboundBatch, Reading
from apps.core.services import batch_enqueue
from apps.dexma.models import DexmaDatasource, Installation

from .conftest import API, TOKEN

pytestmark = pytest.mark.django_db


@responses.activate
def test_install_stores_the_permanent_token_encrypted_and_answers_200(client, deployment):
    responses.post(f"{API}/oauth/access-token", body="5b36281ac7034f9a65cd", status=201)
    response = client.get("/dexma/install", {"dep_id": "acme", "temp_token": "022a02b27e",
                                             "callback": "www.dexma.com"})
    assert response.status_code == 200
    assert responses.calls[0].request.params == {
        "app_id": "63", "secret": "0100fb25d3daa10c9d9b", "temp_token": "022a02b27e"}
    installation = Installation.objects.get(dep_id="acme")
    assert installation.token == "5b36281ac7034f9a65cd"
    assert installation.deployment == deployment  # the hub deployment with that slug
    with connection.cursor() as cursor:
        cursor.execute("SELECT token FROM dexma_installation")
        assert "5b36281ac7034f9a65cd" not in cursor.fetchone()[0]


@responses.activate
def test_install_for_an_unknown_account_creates_its_hub_deployment(client, db):
    responses.post(f"{API}/oauth/access-token", body="tok", status=201)
    assert client.get("/dexma/install", {"dep_id": "demoDEXMA-e2db4391",
                                         "temp_token": "t"}).status_code == 200
    assert Deployment.objects.filter(slug="demodexma-e2db4391").exists()


@pytest.mark.parametrize("params", [{"dep_id": "acme"}, {"temp_token": "t"}, {}])
def test_install_without_dep_id_or_temp_token_is_400(client, db, params):
    assert client.get("/dexma/install", params).status_code == 400


@responses.activate
def test_install_refused_by_the_platform_is_502_with_the_reason_and_stores_nothing(client, db):
    responses.post(f"{API}/oauth/access-token", status=400, json={
        "status": 400, "code": "E400", "message": "Invalid temp_token"})
    response = client.get("/dexma/install", {"dep_id": "acme", "temp_token": "old"})
    assert response.status_code == 502
    assert "Invalid temp_token" in response.content.decode()
    assert not Installation.objects.exists()


@responses.activate
def test_reinstall_replaces_the_token(client, installation):
    responses.post(f"{API}/oauth/access-token", body="a-brand-new-token-00", status=201)
    client.get("/dexma/install", {"dep_id": installation.dep_id, "temp_token": "t2"})
    installation.refresh_from_db()
    assert installation.token == "a-brand-new-token-00"
    assert Installation.objects.count() == 1
    assert client.get("/dexma/ping").status_code == 200
    assert client.get("/dexma/datasources", {"dep_token": TOKEN}).status_code == 403


def test_uninstall_removes_token_links_cursors_and_batches_but_keeps_readings(
    client, registered
):
    registered.link = DeliveryLink.objects.create(platform="dexma", name="x",
                                                  deployment=registered.deployment, cursor=42)
    registered.save()
    batch_enqueue(link=registered.link, seq_from=0, seq_to=42)
    readings = Reading.objects.count()
    response = client.get("/dexma/uninstall", {"dep_id": registered.installation.dep_id,
                                               "dep_token": TOKEN})
    assert response.status_code == 200
    assert not Installation.objects.exists()
    assert not DexmaDatasource.objects.exists()
    assert not DeliveryLink.objects.exists() and not OutboundBatch.objects.exists()
    assert Reading.objects.count() == readings > 0


def test_uninstall_without_dep_token_is_401_and_with_a_wrong_one_403(client, installation):
    assert client.get("/dexma/uninstall", {"dep_id": installation.dep_id}).status_code == 401
    assert client.get("/dexma/uninstall", {"dep_id": installation.dep_id,
                                           "dep_token": "wrong"}).status_code == 403
    assert Installation.objects.exists()


def test_uninstall_of_another_account_with_this_token_is_403(client, installation):
    response = client.get("/dexma/uninstall", {"dep_id": "other", "dep_token": TOKEN})
    assert response.status_code == 403


def test_ping_answers_pong_without_touching_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/dexma/ping")
    assert response.status_code == 200
    assert response.content == b"pong"
    assert response["Content-Type"].startswith("text/plain")


def test_app_status_reports_each_dependency_and_server_time(client, installation,
                                                            monkeypatch):
    from apps.core.selectors import Check
    from apps.dexma import views

    monkeypatch.setitem(views.STATUS_CHECKS, "workers", lambda: Check(False, "none answered"))
    monkeypatch.setitem(views.STATUS_CHECKS, "dexma_api", lambda: Check(True, "HTTP 401"))
    body = client.get("/dexma/app-status", {"dep_token": TOKEN}).json()
    assert body["status"] == "degraded"
    assert set(body["dependencies"]) == {"database", "broker", "workers", "dexma_api"}
    assert body["dependencies"]["database"]["status"] == "ok"
    assert body["dependencies"]["workers"] == {"status": "down", "detail": "none answered"}
    assert body["serverTime"].endswith("Z")


def test_app_status_without_dep_token_hides_the_details(client, monkeypatch):
    from apps.core.selectors import Check
    from apps.dexma import views

    monkeypatch.setitem(views.STATUS_CHECKS, "workers", lambda: Check(False, "secret host"))
    monkeypatch.setitem(views.STATUS_CHECKS, "dexma_api", lambda: Check(True, "HTTP 401"))
    response = client.get("/dexma/app-status")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["dependencies"]["workers"] == {"status": "down"}


def test_app_status_answers_fast_when_a_dependency_hangs(client, monkeypatch):
    import threading
    import time

    from apps.core.selectors import Check
    from apps.dexma import views

    release = threading.Event()
    monkeypatch.setattr(views, "STATUS_DEADLINE", 0.3)
    monkeypatch.setitem(views.STATUS_CHECKS, "dexma_api",
                        lambda: release.wait(10) and Check(True, ""))
    monkeypatch.setitem(views.STATUS_CHECKS, "workers", lambda: Check(True, "1"))
    started = time.monotonic()
    response = client.get("/dexma/app-status")
    release.set()
    assert time.monotonic() - started < 2
    assert response.status_code == 200
    assert response.json()["dependencies"]["dexma_api"]["status"] == "down"


def test_app_status_is_down_when_the_database_is(client, monkeypatch):
    from apps.core.selectors import Check
    from apps.dexma import views

    for name in views.STATUS_CHECKS:
        monkeypatch.setitem(views.STATUS_CHECKS, name, lambda: Check(True, ""))
    monkeypatch.setitem(views.STATUS_CHECKS, "database", lambda: Check(False, "refused"))
    response = client.get("/dexma/app-status")
    assert response.status_code == 200 and response.json()["status"] == "down"
