"""Two tenants wired to every platform, and a fingerprint of the whole database.

`world` gives acme and globex each a meter with readings, a DEXMA installation with a
registered datasource, and a partner API key; the hub has one Volue webhook subscription.
`database_fingerprint` hashes every table, so "nothing changed" is checked on all of them,
not on the rows a test happens to think of.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import pytest
from django.db import connection

from apps.core.models import Deployment, Device
from apps.core.services import ReadingIn, readings_ingest
from apps.dexma.models import DexmaDatasource, Installation, SelectedDevice
from apps.partner_api.models import ApiKey
from apps.partner_api.selectors import catalogue
from apps.partner_api.services import apikey_create
from apps.volue.models import WebhookSubscription

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
QH = dt.timedelta(minutes=15)
VOLUE_SECRET = "volue-webhook-secret-acme-0001"
RETIRED_VOLUE_SECRET = "volue-webhook-secret-retired-0002"
PLATFORM_ORIGIN = "https://platform.test"
METRICS_TOKEN = "metrics-scrape-token-7d1c"

# Written by every authenticated request or by the session machinery, never business data.
_BOOKKEEPING = {"partner_api_apikey": ["last_used_at"]}
_IGNORED_TABLES = {"django_session"}


@dataclass
class Tenant:
    deployment: Deployment
    device: Device
    installation: Installation
    datasource: DexmaDatasource
    api_key: str
    dep_token: str


@dataclass
class World:
    acme: Tenant
    globex: Tenant
    volue_secret: str
    retired_volue_secret: str


@pytest.fixture(autouse=True)
def _fresh_catalogue():
    catalogue.cache_clear()
    yield
    catalogue.cache_clear()


@pytest.fixture
def platform_settings(settings):
    settings.DEXMA_API_URL = "https://api.dexma.test/v3"
    settings.DEXMA_PLATFORM_ORIGINS = [PLATFORM_ORIGIN]
    settings.PARTNER_API_RATE_PER_MINUTE = 10**6
    settings.METRICS_TOKEN = METRICS_TOKEN
    return settings


def _tenant(slug: str, platform_id: int, dep_token: str) -> Tenant:
    from apps.core.models import Datasource, Parameter, Site

    deployment = Deployment.objects.create(slug=slug, name=slug.title(), timezone="Europe/Madrid")
    datasource = Datasource.objects.create(deployment=deployment, key="gateway", name="Gateway")
    site = Site.objects.create(deployment=deployment, external_id=f"{slug}-hq", name="HQ")
    device = Device.objects.create(
        deployment=deployment, datasource=datasource, site=site, external_id=f"{slug}-meter",
        local_id=f"{slug}-meter", name=f"{slug} meter", commodity="energy", unit="kWh",
    )
    readings_ingest(deployment=deployment, source="test", records=[
        ReadingIn(device=device.external_id, parameter="active_energy_delta", ts=T0 + i * QH,
                  period_end=T0 + (i + 1) * QH, value=float(i)) for i in range(4)
    ])
    installation = Installation(dep_id=f"dep-{slug}", deployment=deployment)
    installation.set_token(dep_token)
    installation.save()
    dexma_datasource = DexmaDatasource.objects.create(
        installation=installation, deployment=deployment, name=f"{slug} DS",
        platform_id=platform_id, key=f"hub-{slug}", source_token=f"src-token-{slug}",
    )
    selected = SelectedDevice.objects.create(datasource=dexma_datasource, device=device)
    selected.parameters.set([Parameter.objects.get(key="active_energy")])
    _, raw = apikey_create(name=f"{slug} partner", deployments=[deployment],
                           access=ApiKey.Access.READ_WRITE, rate_per_minute=10**6)
    return Tenant(deployment, device, installation, dexma_datasource, raw, dep_token)


@pytest.fixture
def world(db, platform_settings) -> World:
    acme = _tenant("acme", 260, "acme-dep-token-5b36281ac7")
    globex = _tenant("globex", 261, "globex-dep-token-9f0e11d2")
    WebhookSubscription.objects.create(url="https://hub.test/volue/webhook",
                                       secret=VOLUE_SECRET)
    WebhookSubscription.objects.create(url="https://hub.test/volue/webhook",
                                       secret=RETIRED_VOLUE_SECRET, is_active=False)
    return World(acme, globex, VOLUE_SECRET, RETIRED_VOLUE_SECRET)


def _tables() -> list[str]:
    with connection.cursor() as cursor:
        return sorted(t for t in connection.introspection.table_names(cursor)
                      if t not in _IGNORED_TABLES)


def database_fingerprint() -> dict[str, str]:
    """{table: digest of all its rows}; bookkeeping columns are left out."""
    fingerprint = {}
    with connection.cursor() as cursor:
        for table in _tables():
            columns = [c.name for c in connection.introspection.get_table_description(
                cursor, table) if c.name not in _BOOKKEEPING.get(table, [])]
            selected = ", ".join(connection.ops.quote_name(c) for c in columns)
            cursor.execute(f"SELECT {selected} FROM {connection.ops.quote_name(table)}")
            rows = sorted(repr(row) for row in cursor.fetchall())
            fingerprint[table] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return fingerprint


def changed_tables(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(t for t in before.keys() | after.keys() if before.get(t) != after.get(t))
