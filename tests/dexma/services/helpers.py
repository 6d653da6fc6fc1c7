"""Shared set-up for the IS3 delivery tests."""

import datetime as dt

from apps.core.models import Parameter
from apps.core.services import ReadingIn, link_get_or_create, readings_ingest
from apps.dexma.models import DexmaDatasource, SelectedDevice

INSERT = "https://insert.dexma.test/readings"
START = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)  # 02:00 in Madrid


def datasource_with(installation, devices, keys, *, name="Madrid HQ", key="hub-madrid-hq",
                    token="src-token-260", platform_id=260, zone="Europe/Madrid"):
    """A registered DEXMA datasource (live cursor at 0) sending `keys` of `devices`."""
    deployment = installation.deployment
    link = link_get_or_create(platform="dexma", name=f"{installation.dep_id}/{platform_id}",
                              deployment=deployment)
    datasource = DexmaDatasource.objects.create(
        installation=installation, deployment=deployment, name=name, platform_id=platform_id,
        key=key, source_token=token, timezone=zone, link=link,
    )
    parameters = list(Parameter.objects.filter(key__in=keys))
    for device in devices:
        selected = SelectedDevice.objects.create(datasource=datasource, device=device)
        selected.parameters.set(parameters)
    return datasource


def ingest(deployment, device, parameter, stamps, *, value=1.0, period=None):
    records = [
        ReadingIn(device=device.external_id, parameter=parameter, ts=ts,
                  value=value if not callable(value) else value(i),
                  period_end=ts + period if period else None)
        for i, ts in enumerate(stamps)
    ]
    result = readings_ingest(deployment=deployment, records=records, source="test")
    assert not result.quarantined, result.rejections
    return result


def quarter_hours(start, count):
    return [start + dt.timedelta(minutes=15 * i) for i in range(count)]
