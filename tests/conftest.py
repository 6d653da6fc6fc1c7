"""Shared fixtures. The suite needs real PostgreSQL and Redis; it says so if they are down."""

import importlib
import os
import socket
from urllib.parse import urlparse

import pytest

START_HINTS = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" '
    "--appendonly no",
}


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1",
                                       parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def pytest_configure(config):
    from django.conf import settings

    missing = []
    db_url = os.environ["DATABASE_URL"]
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql") and not _reachable(
        db_url, 5432
    ):
        missing.append(("PostgreSQL", db_url))
    if not _reachable(os.environ["REDIS_URL"], 6379):
        missing.append(("Redis", os.environ["REDIS_URL"]))
    if missing:
        lines = [f"{name} is not reachable at {url}. Start it with:\n    {START_HINTS[name]}\n"
                 "or point the tests elsewhere with DATABASE_URL / REDIS_URL."
                 for name, url in missing]
        pytest.exit("\n".join(lines), returncode=3)


@pytest.fixture(autouse=True)
def _parameter_catalogue(request):
    """Transactional tests end with a flush that also wipes what data migrations seeded;
    put the parameter catalogue back for whichever database test comes next."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None and not {"db", "transactional_db"} & set(request.fixturenames):
        return
    request.getfixturevalue("_django_db_helper")
    from apps.core.models import Parameter

    if not Parameter.objects.exists():
        catalogue = importlib.import_module("apps.core.migrations.0003_parameter_catalogue")
        # Explicit ids, as the migration assigned them: a rolled-back insert would still
        # consume sequence values, and the catalogue's ids are small integers.
        Parameter.objects.bulk_create(
            Parameter(id=number, **row) for number, row in enumerate(catalogue.rows(), start=1)
        )


@pytest.fixture(autouse=True)
def _clear_cache():
    """Forget cached tokens, budgets and locks between tests.

    Only this suite's keys: flushing the whole Redis database would also empty the broker.
    """
    from django.conf import settings
    from django.core.cache import cache

    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    client = cache._cache.get_client(write=True)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    yield


@pytest.fixture
def cache_down(settings):
    """The shared cache as during a Redis outage: nothing listens at its address."""
    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"},
    }


@pytest.fixture
def deployment(db):
    from apps.core.models import Deployment

    return Deployment.objects.create(slug="acme", name="Acme Offices", timezone="Europe/Madrid")


@pytest.fixture
def other_deployment(db):
    from apps.core.models import Deployment

    return Deployment.objects.create(slug="globex", name="Globex", timezone="UTC")


@pytest.fixture
def make_device(db):
    """Create a device (with its datasource and site) in a deployment."""
    from apps.core.models import Datasource, Device, Site

    def make(deployment, external_id="meter-1", **extra):
        datasource, _ = Datasource.objects.get_or_create(
            deployment=deployment, key="gateway", defaults={"name": "Gateway"}
        )
        site, _ = Site.objects.get_or_create(
            deployment=deployment, external_id="hq", defaults={"name": "Headquarters"}
        )
        defaults = {"local_id": external_id[:25], "name": external_id, "commodity": "energy",
                    "unit": "kWh", "site": site}
        defaults.update(extra)
        return Device.objects.create(
            deployment=deployment, datasource=datasource, external_id=external_id, **defaults
        )

    return make


@pytest.fixture(autouse=True)
def _volue_requests_follow_the_partner_api(monkeypatch, request):
    """Fail any test in which the hub sends Volue a request its Partner API does not define,
    or is answered (by a mock or the sandbox) in a way the document does not allow."""
    import requests
    from django.conf import settings

    from tests.volue_contract import ContractBroken, answer_violation, violation_of

    broken: list[str] = []
    send = requests.Session.send
    check_answers = request.node.get_closest_marker("volue_answers_off_document") is None

    def checked_send(session, request, **kwargs):
        violation = violation_of(request, settings.VOLUE_API_URL)
        if violation is not None:
            broken.append(f"{request.method} {request.url}: {violation}")
            raise ContractBroken(f"not in the Partner API: {request.method} {request.url}: "
                                 f"{violation}")
        response = send(session, request, **kwargs)
        # What the hub is taught by mocks and by the sandbox must be the document's too.
        wrong = check_answers and answer_violation(request, response, settings.VOLUE_API_URL)
        if wrong:
            broken.append(f"answer {response.status_code} to {request.method} {request.url}: "
                          f"{wrong}")
        return response

    monkeypatch.setattr(requests.Session, "send", checked_send)
    yield broken
    if broken:
        pytest.fail("calls outside the Volue Partner API:\n" + "\n".join(broken))
