"""What the partner API benchmarks share: the deployment they load their readings into."""

from __future__ import annotations

from apps.core.models import Datasource, Deployment, Device, Site


def bench_deployment(slug: str, devices: int) -> Deployment:
    """A UTC deployment with one site and `devices` energy meters m000, m001, …"""
    deployment = Deployment.objects.create(slug=slug, name=slug.title(), timezone="UTC")
    datasource = Datasource.objects.create(deployment=deployment, key="gw", name="GW")
    site = Site.objects.create(deployment=deployment, external_id="hq", name="HQ")
    Device.objects.bulk_create(
        Device(deployment=deployment, datasource=datasource, site=site,
               external_id=f"m{d:03d}", local_id=f"m{d:03d}", name=f"m{d:03d}",
               commodity="energy", unit="kWh") for d in range(devices))
    return deployment
