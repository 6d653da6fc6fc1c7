"""Contract tests: real generic pullers (dlt, Airbyte's declarative CDK) against the hub.

They run in their own venv (.venv-contract, `make contract`): the hub runs under pytest's
live server on a real socket, and each client runs as a subprocess of the contract venv's
Python, configured only by the dicts and YAML in this folder.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
METERS, HOURS = ("m1", "m2", "m3"), 800  # 2,400 usage records over 33 days
PAGE = 250
TIMEOUT = 240  # seconds: a client that does not stop on its own fails here


def contract_python() -> str:
    python = os.environ.get("CONTRACT_PYTHON")
    if not python or not Path(python).exists():
        pytest.fail("CONTRACT_PYTHON is not set to the contract venv's python: run `make "
                    "contract`, which installs .venv-contract from tests/contract/requirements.txt")
    return python


def run(args: list[str], *, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([contract_python(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT, env={**os.environ, "RUNTIME__LOG_LEVEL": "WARNING"})
    assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


@pytest.fixture
def hub(live_server, transactional_db):
    """A deployment with hourly usage on three meters, and a key for it."""
    from apps.core.models import Datasource, Deployment, Device, Site
    from apps.partner_api.services import apikey_create

    deployment = Deployment.objects.create(slug="acme", name="Acme", timezone="Europe/Madrid")
    datasource = Datasource.objects.create(deployment=deployment, key="gw", name="Gateway")
    site = Site.objects.create(deployment=deployment, external_id="hq", name="HQ",
                               timezone="Europe/Madrid")
    for meter in (*METERS, "late"):
        Device.objects.create(deployment=deployment, datasource=datasource, site=site,
                              external_id=meter, local_id=meter, name=meter,
                              commodity="energy", unit="kWh")
    for i, meter in enumerate(METERS):
        usage_ingest(deployment, meter, [(T0 + h * HOUR, float(i * 1000 + h)) for h in
                                         range(HOURS)])
    _, key = apikey_create(name="contract", deployments=[deployment], rate_per_minute=10**6)
    return {"url": live_server.url, "key": key, "deployment": deployment}


def usage_ingest(deployment, meter: str, points: list[tuple[dt.datetime, float]]) -> None:
    from apps.core.services import ReadingIn, readings_ingest

    result = readings_ingest(deployment=deployment, source="contract", records=[
        ReadingIn(device=meter, parameter="active_energy_delta", ts=ts, period_end=ts + HOUR,
                  value=value) for ts, value in points])
    assert not result.rejections


def usage_totals(deployment) -> tuple[int, float]:
    from django.db.models import Count, Sum

    from apps.core.models import Reading

    found = Reading.objects.filter(device__deployment=deployment,
                                   parameter__key="active_energy_delta").aggregate(
        n=Count("id"), s=Sum("value"))
    return found["n"], found["s"] or 0.0


def late_changes(deployment) -> int:
    """Corrections of old periods, back-filled history, and an identical re-send: the changes
    a date-cursor puller used to miss. Returns how many records changed."""
    usage_ingest(deployment, "m1", [(T0 + h * HOUR, 5000.0 + h) for h in (0, 1, 400)])
    usage_ingest(deployment, "m2", [(T0 + 799 * HOUR, 7777.0)])
    usage_ingest(deployment, "late", [(T0 - (h + 1) * HOUR, 1.5) for h in range(6)])
    usage_ingest(deployment, "m3", [(T0 + h * HOUR, float(2000 + h)) for h in range(10)])
    return 3 + 1 + 6


@pytest.fixture
def requests_seen():
    """The query strings of the usage requests the hub answered, as the server saw them."""
    from urllib.parse import parse_qs

    from django.core.signals import request_started

    seen: list[dict] = []

    def note(sender, environ=None, **kwargs):
        if environ and environ.get("PATH_INFO") == "/api/v1/usage/":
            seen.append(parse_qs(environ.get("QUERY_STRING", "")))

    request_started.connect(note, weak=False)
    yield seen
    request_started.disconnect(note)
