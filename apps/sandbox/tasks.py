"""The demo's data feed: a periodic task fans out one ingest per demo deployment."""

import datetime as dt

from celery import shared_task
from django.utils import timezone

from apps.core.jobs import job_lock
from apps.core.locks import AlreadyRunning
from apps.core.models import Deployment, Device, Quarantine, Run
from apps.core.services import readings_ingest, run_logged
from apps.sandbox.meters import (
    QUARTER,
    base_load_kw,
    live_power,
    meter_readings,
    quarter_floor,
)

DEMO_PREFIX = "demo"
DEMO_GATEWAY = "acme-gateway"


@shared_task(name="sandbox.demo_meters_tick")
def demo_meters_tick() -> int:
    ids = list(Deployment.objects.filter(slug__startswith=DEMO_PREFIX, is_active=True)
               .values_list("pk", flat=True))
    for deployment_id in ids:
        demo_meters_read.delay(deployment_id)
    return len(ids)


@shared_task(name="sandbox.demo_meters_read")
def demo_meters_read(deployment_id: int) -> dict:
    """Ingest the last hour of simulated readings (earlier quarters come back unchanged)."""
    deployment = Deployment.objects.get(pk=deployment_id)
    try:
        with job_lock("sandbox", "demo_meters", deployment_id, ttl=300):
            return demo_meters_ingest(deployment=deployment,
                                      start=timezone.now() - dt.timedelta(hours=1))
    except AlreadyRunning:
        return {"skipped": "already running"}


def demo_meters_ingest(
    *, deployment: Deployment, start: dt.datetime, end: dt.datetime | None = None
) -> dict:
    now = timezone.now()
    end = end or quarter_floor(now) + QUARTER
    live_from = max(start, now - dt.timedelta(hours=1))
    # Only the simulated gateway's meters; other integrations add their own devices to the
    # demo deployment, and those must not get invented readings.
    devices = Device.objects.filter(deployment=deployment, datasource__key=DEMO_GATEWAY,
                                    is_active=True)
    with run_logged(kind="sandbox.demo_meters", target=f"demo meters of {deployment.slug}",
                    deployment=deployment) as run:
        records = (
            reading
            for device in devices.order_by("external_id")
            for feed in (meter_readings(device.external_id, start, end,
                                        base_kw=base_load_kw(device.external_id)),
                         live_power(device.external_id, live_from, min(end, now),
                                    base_kw=base_load_kw(device.external_id)))
            for reading in feed
        )
        result = readings_ingest(deployment=deployment, records=records,
                                 source=Quarantine.source_for("sandbox", "gateway", DEMO_GATEWAY),
                                 run=run)
        run.counts = result.as_counts()
        if result.quarantined:
            run.status = Run.Status.PARTIAL
    return run.counts
