import datetime as dt

import pytest

from apps.core.models import Reading, Run
from apps.sandbox.meters import meter_readings
from apps.sandbox.tasks import demo_meters_ingest

pytestmark = pytest.mark.django_db
DAY = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


def test_demo_meter_index_never_decreases_and_matches_its_deltas():
    readings = list(meter_readings("m1", DAY, DAY + dt.timedelta(days=1)))
    index = [r.value for r in readings if r.parameter == "active_energy"]
    deltas = [r.value for r in readings if r.parameter == "active_energy_delta"]
    assert index == sorted(index)
    assert index[-1] - index[0] == pytest.approx(sum(deltas[:-1]), abs=0.01)


def test_demo_feed_rerun_changes_nothing(deployment, make_device):
    from apps.core.models import Datasource

    Datasource.objects.create(deployment=deployment, key="acme-gateway", name="Gateway")
    gateway_meter = make_device(deployment, "m1")
    gateway_meter.datasource = Datasource.objects.get(key="acme-gateway")
    gateway_meter.save()
    first = demo_meters_ingest(deployment=deployment, start=DAY, end=DAY + dt.timedelta(hours=2))
    second = demo_meters_ingest(deployment=deployment, start=DAY, end=DAY + dt.timedelta(hours=2))
    assert first["inserted"] == 8 * 4 and first["quarantined"] == 0
    assert second["unchanged"] == 8 * 4 and second["inserted"] == second["updated"] == 0
    assert Reading.objects.count() == 32
    assert Run.objects.filter(kind="sandbox.demo_meters", status="succeeded").count() == 2


def test_demo_feed_ignores_devices_other_integrations_added(deployment, make_device):
    from apps.core.models import Datasource

    gateway = Datasource.objects.create(deployment=deployment, key="acme-gateway", name="GW")
    make_device(deployment, "synced-elsewhere")
    ours = make_device(deployment, "m1")
    ours.datasource = gateway
    ours.save()
    demo_meters_ingest(deployment=deployment, start=DAY, end=DAY + dt.timedelta(hours=1))
    assert set(Reading.objects.values_list("device__external_id", flat=True)) == {"m1"}


def test_demo_feed_quarantines_under_the_one_source_format(deployment, make_device):
    from apps.core.models import Datasource, Parameter, Quarantine

    gateway = Datasource.objects.create(deployment=deployment, key="acme-gateway", name="GW")
    meter = make_device(deployment, "m1")
    meter.datasource = gateway
    meter.save()
    Parameter.objects.filter(key="active_energy_delta").delete()  # now refused as unknown
    result = demo_meters_ingest(deployment=deployment, start=DAY,
                                end=DAY + dt.timedelta(hours=1))
    assert result["quarantined"] > 0
    assert set(Quarantine.objects.values_list("source", flat=True)) == {
        "sandbox:gateway:acme-gateway"}
