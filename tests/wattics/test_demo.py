import pytest

from apps.core.models import Datasource, Device, Site
from apps.wattics.demo import demo_streams_setup
from apps.wattics.models import WatticsAccount, WatticsStream

pytestmark = pytest.mark.django_db


def test_demo_pushes_a_few_meters_and_can_run_twice(deployment):
    ds = Datasource.objects.create(deployment=deployment, key="acme-gateway", name="gw")
    site = Site.objects.create(deployment=deployment, external_id="hq", name="HQ")
    for ext in ("MAD-MAIN-01", "MAD-HVAC-02", "VLC-MAIN-01"):
        Device.objects.create(deployment=deployment, datasource=ds, site=site, external_id=ext,
                              local_id=ext, name=ext, commodity="energy", unit="kWh")
    lines = []
    demo_streams_setup(deployment=deployment, write=lines.append)
    demo_streams_setup(deployment=deployment, write=lines.append)
    assert WatticsStream.objects.count() == 3
    assert WatticsAccount.objects.get().deployment == deployment
