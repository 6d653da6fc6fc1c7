"""The lifecycle end to end, over a socket, against the sandbox APIv3 and platform page."""

import pytest
from django.test import Client

from apps.core.http import PermanentError, RetryPolicy, TransientError
from apps.dexma import services
from apps.dexma.client import DexmaClient, error_body
from apps.dexma.models import DexmaDatasource, Installation
from apps.sandbox.dexma.models import (
    AppToken,
    PlatformDatasource,
    PlatformDeployment,
    PlatformSession,
)
from apps.sandbox.dexma.platform import platform_install

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def hub(live_server, settings):
    """The hub on 127.0.0.1, its sandbox platform page on localhost: two origins."""
    port = live_server.url.rsplit(":", 1)[1]
    base = f"http://127.0.0.1:{port}"
    settings.HUB_BASE_URL = base
    settings.DEXMA_API_URL = f"{base}/sandbox/dexma/v3"
    settings.DEXMA_PLATFORM_ORIGINS = [f"http://localhost:{port}"]
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
    return base


@pytest.fixture
def account(hub, deployment):
    return PlatformDeployment.objects.create(dep_id=deployment.slug, name=deployment.name)


@pytest.fixture
def installed(account):
    ok, said = platform_install(deployment=account)
    assert ok, said
    return Installation.objects.get(dep_id=account.dep_id)


def open_new_page(installation, session_id=""):
    client = Client()
    token = AppToken.objects.get().token
    response = client.get("/dexma/datasources/new", {"dep_token": token,
                                                      "session_id": session_id})
    return client, response


def create(installation, meters, energy, name="Madrid HQ"):
    client, response = open_new_page(installation)
    main = meters[0]
    return client.post("/dexma/datasources/new", {
        "name": name, "device": [str(main.pk)], f"param-{main.pk}": [str(energy.pk)],
        "pt": response.context["page"].page_token})


def test_install_handshake_stores_the_token_the_platform_issued(installed):
    assert installed.token == AppToken.objects.get().token
    assert len(installed.token) == 20


def test_install_with_a_used_temp_token_is_refused_and_stores_nothing(account):
    from apps.sandbox.dexma.models import TempToken

    temp = TempToken.objects.create(deployment=account, app_id="63", used=True)
    response = Client().get("/dexma/install", {"dep_id": account.dep_id,
                                               "temp_token": temp.token})
    assert response.status_code == 502
    assert "temp_token" in response.content.decode()
    assert not Installation.objects.exists()


def test_install_with_a_wrong_secret_is_refused(account, settings):
    settings.SANDBOX_DEXMA_APP_SECRET = "the-platform-knows-another-secret"
    ok, said = platform_install(deployment=account)
    assert not ok, said
    assert "502" in said
    assert not Installation.objects.exists()


def test_create_registers_a_key_prefixed_by_the_type_key_and_stores_the_source_token(
    installed, meters, energy
):
    response = create(installed, meters, energy)
    assert response.status_code == 201
    remote = PlatformDatasource.objects.get()
    local = DexmaDatasource.objects.get()
    assert remote.key.startswith("hub-") and local.key == remote.key
    assert local.platform_id == remote.pk and local.source_token == remote.source_token
    assert remote.name == "Madrid HQ" and remote.status == "ENABLED"


def test_rename_and_disable_reach_the_platform(installed, meters, energy):
    create(installed, meters, energy)
    local = DexmaDatasource.objects.get()
    services.datasource_update(datasource=local, name="Madrid", enabled=False)
    remote = PlatformDatasource.objects.get()
    assert (remote.name, remote.status) == ("Madrid", "DISABLED")


def test_platform_initiated_delete_removes_it_locally(installed, meters, energy):
    create(installed, meters, energy)
    remote = PlatformDatasource.objects.get()
    response = Client(HTTP_HOST="localhost").post(
        "/sandbox/dexma/platform/", {"dep": installed.dep_id, "action": "delete",
                                     "id": remote.pk})
    assert response.status_code == 302
    assert not DexmaDatasource.objects.exists() and not PlatformDatasource.objects.exists()


def test_app_initiated_delete_removes_it_on_the_platform_then_locally(installed, meters,
                                                                       energy):
    create(installed, meters, energy)
    services.datasource_delete(datasource=DexmaDatasource.objects.get())
    assert not PlatformDatasource.objects.exists() and not DexmaDatasource.objects.exists()


def test_reconcile_restores_the_status_changed_on_the_platform(installed, meters, energy):
    create(installed, meters, energy)
    PlatformDatasource.objects.update(status="DISABLED")
    report = services.installation_reconcile(installation=installed)
    assert report.pushed == 1
    assert PlatformDatasource.objects.get().status == "ENABLED"


def test_uninstall_from_the_platform_forgets_the_installation(installed, meters, energy):
    create(installed, meters, energy)
    Client(HTTP_HOST="localhost").post("/sandbox/dexma/platform/",
                                       {"dep": installed.dep_id, "action": "uninstall"})
    assert not Installation.objects.exists() and not DexmaDatasource.objects.exists()
    assert not AppToken.objects.exists()


def test_the_page_names_the_session_user(installed, meters):
    session = PlatformSession.objects.create(deployment=PlatformDeployment.objects.get(),
                                             user_name="Dana Demo", user_email="d@x")
    _, response = open_new_page(installed, session.session_id)
    assert "Dana Demo" in response.content.decode()


def test_sandbox_refuses_a_limit_above_500_with_the_documented_body(installed):
    with DexmaClient(installed.token) as client, pytest.raises(PermanentError) as caught:
        client._json("GET", "datasources", params={"limit": 501})
    assert caught.value.status_code == 422
    body = error_body(caught.value)
    assert (body.status, body.code, body.message) == (422, "E422", "Entity validation error")
    assert body.errors[0].field == "limit"


def test_sandbox_reports_the_budget_and_answers_429_past_it(installed):
    AppToken.objects.update(hour_limit=2)
    with DexmaClient(installed.token, max_wait=0, reserve=0) as client:
        response = client.api.get("datasources")
        assert response.headers["X-Ratelimit-Hour-Limit"] == "2"
        assert response.headers["X-Ratelimit-Hour-Remaining"] == "1"
        assert int(response.headers["X-Ratelimit-Hour-Reset"]) <= 3600
        client.api.get("datasources")
        with pytest.raises(TransientError) as caught:
            client.api.get("datasources")  # the client knows the budget is gone
    assert caught.value.retry_after > 3000
    token = AppToken.objects.get()
    assert token.hour_used == 2


def test_sandbox_answers_429_to_a_client_that_ignores_the_headers(installed):
    AppToken.objects.update(hour_limit=1)
    from django.conf import settings

    from apps.core.http import ApiClient, ApiKeyAuth

    with ApiClient(settings.DEXMA_API_URL, name="rude",
                   retry=RetryPolicy(max_retries=0, max_wait=0),
                   auth=ApiKeyAuth("x-dexcell-token", installed.token)) as rude:
        rude.get("datasources")
        rude.budget.wait_needed = lambda: 0.0
        with pytest.raises(TransientError) as caught:
            rude.get("datasources")
    assert caught.value.status_code == 429
    assert '"code": "E429"' in caught.value.body


def test_platform_page_frames_the_hub_new_page_from_its_own_origin(installed, hub):
    response = Client(HTTP_HOST=hub.replace("http://127.0.0.1", "localhost")).get(
        "/sandbox/dexma/platform/", {"dep": installed.dep_id, "view": "new", "lang": "es_ES"})
    body = response.content.decode()
    assert f'src="{hub}/dexma/datasources/new?dep_token={installed.token}' in body
    assert "lang=es_ES" in body
    assert f"frame-src {hub}" in response["Content-Security-Policy"]
