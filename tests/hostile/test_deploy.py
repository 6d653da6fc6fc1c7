"""Production posture: the admin refuses everyone but staff on every one of its URLs, and a
real `pg_dump` of a database holding every kind of credential shows none of them.

`manage.py check --deploy --fail-level WARNING` in production settings is
tests/core/test_settings.py::test_check_deploy_is_clean_in_production_settings; the admin's
model pages per user kind are in tests/core/test_admin.py. This file adds the custom admin
views, POSTs, and a dump taken after the hub has also failed a few platform calls.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import responses
from django.apps import apps
from django.db import connection
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from apps.core.fields import EncryptedTextField

from .conftest import World, changed_tables, database_fingerprint

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_ADMIN = {"admin:login", "admin:logout", "admin:jsi18n"}


# --- the admin ------------------------------------------------------------------------------


def _admin_urls() -> list[tuple[str, str]]:
    """(url name, a concrete path) for every admin route, parameters filled in."""
    def walk(patterns, prefix="", namespace=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                space = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), space)
            elif isinstance(pattern, URLPattern):
                yield f"{namespace}{pattern.name}", prefix + str(pattern.pattern)

    found = []
    for name, route in walk(get_resolver().url_patterns):
        if not route.startswith("admin/"):
            continue
        path = re.sub(r"<(?:\w+:)?\w+>", "1", route)
        path = re.sub(r"\(\?P<app_label>[^)]*\)", "core", path)
        path = re.sub(r"\(\?P<url>\.\*\)", "nowhere/", path)
        path = path.replace("^", "").replace("$", "")
        found.append((name, "/" + path))
    return found


@pytest.fixture
def visitor(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("visitor", password="pw"))
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "non-staff"])
def test_every_admin_url_sends_anyone_but_staff_to_the_login(client, visitor, world: World,
                                                             who):
    from django.contrib.auth.models import User

    user_client = visitor if who == "non-staff" else client
    if who == "anonymous":
        user_client.logout()
    urls = [(name, path) for name, path in _admin_urls() if name not in PUBLIC_ADMIN]
    assert len(urls) > 100  # every model's pages, the custom views and the catch-all
    login = reverse("admin:login")
    users_before = User.objects.count()
    before = database_fingerprint()
    failures = []
    for name, path in urls:
        for method in ("get", "post"):
            response = getattr(user_client, method)(path, {"action": "delete_selected",
                                                           "_selected_action": "1"})
            to_login = response.status_code == 302 and response.url.startswith(login)
            if not (to_login or response.status_code == 403):
                failures.append(f"{method.upper()} {path} ({name}): {response.status_code}")
    changed = changed_tables(before, database_fingerprint())
    if changed:
        failures.append(f"the requests changed {changed}")
    assert not failures, "\n".join(failures)
    assert User.objects.count() == users_before


# --- secrets in a database dump ------------------------------------------------------------

SECRETS = {
    "dexma_installation_token": "dexma-permanent-token-Qx81",
    "dexma_source_token": "dexma-source-token-Lm42",
    "wattics_password": "wattics-password-Zt93",
    "pull_api_key": "pull-api-key-Hn57",
    "pull_password": "pull-password-Vc26",
    "pull_client_secret": "pull-client-secret-Ke14",
    "pull_refresh_token": "pull-refresh-token-Wd68",
    "volue_webhook_secret": "volue-webhook-secret-Rb30",
    "sandbox_volue_webhook_secret": "sandbox-webhook-secret-Py75",
    "volue_client_secret": "volue-client-secret-Gf09",
    "dexma_app_secret": "dexma-app-secret-Uj47",
}


def _credentials_everywhere(world: World, settings) -> None:
    from apps.pull.models import Connection, Endpoint
    from apps.sandbox.volue.models import SbWebhook
    from apps.volue.models import WebhookSubscription
    from apps.wattics.models import WatticsAccount

    settings.VOLUE_CLIENT_SECRET = SECRETS["volue_client_secret"]
    settings.DEXMA_APP_SECRET = SECRETS["dexma_app_secret"]
    installation = world.acme.installation
    installation.set_token(SECRETS["dexma_installation_token"])
    installation.save()
    world.acme.datasource.source_token = SECRETS["dexma_source_token"]
    world.acme.datasource.save()
    WatticsAccount.objects.create(name="Acme Wattics", username="acme-wattics-user",
                                  password=SECRETS["wattics_password"],
                                  deployment=world.acme.deployment)
    WebhookSubscription.objects.create(url="https://hub.test/volue/webhook",
                                       secret=SECRETS["volue_webhook_secret"])
    SbWebhook.objects.create(webhook_id="wh-dump", url="https://hub.test/volue/webhook",
                             secret=SECRETS["sandbox_volue_webhook_secret"])
    pull = Connection.objects.create(
        deployment=world.acme.deployment, name="Upstream provider", key="upstream",
        staging_url="https://upstream.test/api/", auth_kind="api_key_query",
        # A real-world parameter name that does not look secret (OpenWeather's `appid`).
        auth_name="appid", api_key=SECRETS["pull_api_key"], username="pull-user",
        password=SECRETS["pull_password"], token_url="https://upstream.test/oauth/token",
        client_id="pull-client", client_secret=SECRETS["pull_client_secret"],
        refresh_token=SECRETS["pull_refresh_token"], max_retries=1,
    )
    Endpoint.objects.create(connection=pull, role="assets", path="assets", records_path="data",
                            fields={"external_id": "id", "name": "name"})


def _fail_a_few_platform_calls(world: World, client) -> None:
    """Errors get stored (run logs, last errors): they must not carry a credential."""
    from apps.pull.models import Connection
    from apps.pull.services import connection_sync

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.get(re.compile(r"https://upstream\.test/api/assets.*"), status=200,
                   body="<html>maintenance</html>")
        mocked.post("https://api.dexma.test/v3/oauth/access-token", status=401,
                    json={"error": "temp_token expired"})
        connection_sync(connection=Connection.objects.get(key="upstream"),
                        sleep=lambda seconds: None)
        client.get("/dexma/install", {"dep_id": world.acme.installation.dep_id,
                                      "temp_token": "temp-token-for-dump"})


def _pg_dump() -> str:
    params = connection.get_connection_params()
    result = subprocess.run(
        ["pg_dump", "--no-owner", "-h", params.get("host", "") or "127.0.0.1",
         "-p", str(params.get("port", 5432)), "-U", params.get("user", ""), params["dbname"]],
        capture_output=True, text=True, check=True, timeout=120,
        env={**os.environ, "PGPASSWORD": params.get("password") or ""},
    )
    return result.stdout


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump is not installed")
def test_a_database_dump_shows_no_credential_of_any_integration(world: World, settings,
                                                                 client):
    _credentials_everywhere(world, settings)
    # Every encrypted field of every model holds a value here: a new credential field fails
    # this test until it is given one above.
    empty = [f"{model._meta.label}.{field.name}"
             for model in apps.get_models() for field in model._meta.fields
             if isinstance(field, EncryptedTextField) and model._meta.app_label != "testapp"
             and not model._default_manager.exclude(**{field.name: ""}).exists()]
    assert empty == [], "encrypted fields without a credential in this test"
    _fail_a_few_platform_calls(world, client)

    dump = _pg_dump()

    # The rows are in the dump (so the test can fail)…
    for visible in ("acme-wattics-user", "Upstream provider", "pull-client", "dep-acme",
                    "gAAAAA"):
        assert visible in dump, visible
    from apps.core.models import Run

    assert Run.objects.filter(status=Run.Status.FAILED).exists()  # an error was stored
    # …but no credential, in any table, including error texts and partner API keys.
    leaked = [name for name, secret in SECRETS.items() if secret in dump]
    leaked += [f"{t} api key" for t in ("acme", "globex")
               if getattr(world, t).api_key in dump]
    leaked += [f"{t} dep_token" for t in ("acme", "globex")
               if getattr(world, t).dep_token in dump]
    where = [line[line.find("pull-api"):][:300] for line in dump.splitlines()
             if any(secret in line for secret in SECRETS.values())]
    assert leaked == [], where


# --- production settings: no sandbox, no debug -----------------------------------------------


@pytest.mark.slow
def test_production_settings_mount_no_sandbox_and_no_debug_page():
    env = {k: v for k, v in os.environ.items()
           if k not in {"DJANGO_SETTINGS_MODULE", "SANDBOX_ENABLED", "DEBUG",
                        "SECURE_SSL_REDIRECT"}}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "false",
                "SECRET_KEY": "a-long-random-production-secret-key-0123456789-abcdefghijklmnop",
                "SECRETS_ENCRYPTION_KEY": "o3Yp6l6mM2sQ0iV8hK3Xn1oJt9bVt0cG5Zr2wq7aQeE=",
                "ALLOWED_HOSTS": "hub.example.com",
                "HUB_VAR_DIR": str(ROOT / "var" / "hostile-test")})
    script = ("from django.conf import settings; from django.urls import get_resolver; "
              "print(settings.DEBUG, settings.SANDBOX_ENABLED, "
              "sorted(str(p.pattern) for p in get_resolver().url_patterns))")
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "False False [" in result.stdout, result.stdout
    assert "sandbox/" not in result.stdout and "dexma/" in result.stdout
