"""What the platform cannot take is refused when a datasource's devices are chosen."""

import datetime as dt

import pytest

from apps.core.models import Device, Parameter
from apps.dexma import services
from apps.dexma.models import SelectedDevice
from apps.dexma.schemas import Is3MappingError
from apps.dexma.services import selection_resolutions

from .helpers import START, datasource_with, ingest, quarter_hours

pytestmark = pytest.mark.django_db


@pytest.fixture
def main(deployment, make_device):
    return make_device(deployment, "MAD-MAIN-01")


def pid(key):
    return Parameter.objects.get(key=key).pk


def test_device_parameter_with_two_discrete_resolutions_is_refused(deployment, main):
    ingest(deployment, main, "active_energy_delta", quarter_hours(START, 2),
           period=dt.timedelta(minutes=15))
    ingest(deployment, main, "active_energy_delta", [START + dt.timedelta(days=1)],
           period=dt.timedelta(hours=1))
    with pytest.raises(Is3MappingError, match="two discrete resolutions"):
        selection_resolutions(devices={main.pk: main},
                              parameters={main.pk: {pid("active_energy_delta")}})


def test_interval_frequency_without_a_code_is_refused(deployment, main):
    ingest(deployment, main, "active_energy_delta", [START], period=dt.timedelta(minutes=2))
    with pytest.raises(Is3MappingError, match="no DEXMA code"):
        selection_resolutions(devices={main.pk: main},
                              parameters={main.pk: {pid("active_energy_delta")}})


def test_did_over_25_characters_is_refused(deployment, main):
    long = Device(pk=999, name="Long", local_id="x" * 26)
    with pytest.raises(Is3MappingError, match="at most 25"):
        selection_resolutions(devices={999: long}, parameters={999: {pid("active_power")}})


def test_single_resolution_is_fixed_on_the_selection(installation, deployment, main):
    ingest(deployment, main, "active_energy_delta", quarter_hours(START, 2),
           period=dt.timedelta(minutes=15))
    datasource = datasource_with(installation, [], [])
    selection = services.Selection(parameters={main.pk: {pid("active_energy_delta")}})

    services.datasource_update(datasource=datasource, name=datasource.name, enabled=True,
                               selection=selection)

    chosen = SelectedDevice.objects.get(datasource=datasource, device=main)
    assert chosen.resolutions == {str(pid("active_energy_delta")): "QH"}


def test_saving_a_selection_with_two_resolutions_changes_nothing(installation, deployment,
                                                                  main):
    ingest(deployment, main, "active_energy_delta", [START], period=dt.timedelta(minutes=15))
    ingest(deployment, main, "active_energy_delta", [START + dt.timedelta(days=1)],
           period=dt.timedelta(days=1))
    datasource = datasource_with(installation, [], [])
    selection = services.Selection(parameters={main.pk: {pid("active_energy_delta")}})
    with pytest.raises(services.DexmaError, match="two discrete resolutions"):
        services.datasource_update(datasource=datasource, name=datasource.name, enabled=True,
                                   selection=selection)
    assert not SelectedDevice.objects.filter(datasource=datasource).exists()
