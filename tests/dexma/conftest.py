import datetime as dt

import pytest

from apps.core.models import Parameter
from apps.core.services import ReadingIn, readings_ingest
from apps.dexma.models import DexmaDatasource, Installation, SelectedDevice

API = "https://api.dexma.test/v3"
PLATFORM_ORIGIN = "https://platform.test"
TOKEN = "5b36281ac7034f9a65cd"


@pytest.fixture(autouse=True)
def dexma_settings(settings):
    settings.DEXMA_API_URL = API
    settings.DEXMA_APP_ID = "63"
    settings.DEXMA_APP_SECRET = "0100fb25d3daa10c9d9b"
    settings.DEXMA_DATASOURCE_TYPE_KEY = "hub"
    settings.DEXMA_PLATFORM_ORIGINS = [PLATFORM_ORIGIN]
    return settings


@pytest.fixture
def installation(deployment):
    installation = Installation(dep_id="demoDEXMA-e2db4391", deployment=deployment)
    installation.set_token(TOKEN)
    installation.save()
    return installation


@pytest.fixture
def meters(deployment, make_device):
    """Two meters with a few readings of energy (index and deltas) and power."""
    main = make_device(deployment, "MAD-MAIN-01", name="Main incomer")
    hvac = make_device(deployment, "MAD-HVAC-02", name="HVAC plant")
    start = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    records = []
    for i in range(4):
        ts = start + dt.timedelta(minutes=15 * i)
        for meter in (main, hvac):
            records += [
                ReadingIn(device=meter.external_id, parameter="active_energy", ts=ts,
                          value=100 + i),
                ReadingIn(device=meter.external_id, parameter="active_energy_delta", ts=ts,
                          value=1, period_end=ts + dt.timedelta(minutes=15)),
                ReadingIn(device=meter.external_id, parameter="active_power", ts=ts, value=4.2),
            ]
    readings_ingest(deployment=deployment, records=records, source="test")
    return main, hvac


@pytest.fixture
def energy():
    return Parameter.objects.get(key="active_energy")


@pytest.fixture
def registered(installation, meters, energy):
    """A DEXMA datasource already registered in the platform, sending one meter's energy."""
    datasource = DexmaDatasource.objects.create(
        installation=installation, deployment=installation.deployment, name="Madrid HQ",
        platform_id=260, key="hub-madrid-hq", source_token="src-token-260",
    )
    selected = SelectedDevice.objects.create(datasource=datasource, device=meters[0])
    selected.parameters.set([energy])
    return datasource
