"""The demo's Wattics part: an end-user account and a few meters pushed to the sandbox."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.conf import settings
from django.utils import timezone

from apps.core.models import Deployment, Device
from apps.wattics.models import WatticsAccount, WatticsStream
from apps.wattics.services import stream_create

# (device, meter id, kind, registered interval, channels). VLC is registered at 5 min but
# its data comes every 15: the admin shows the seed's "you will not see data" warning.
DEMO_STREAMS = [
    ("MAD-MAIN-01", "demo-mad-main-01", WatticsStream.Kind.ELECTRICITY, 900, None),
    ("MAD-HVAC-02", "demo-mad-hvac-02-temp", WatticsStream.Kind.SINGLE, 900,
     {"value": "temperature"}),
    ("VLC-MAIN-01", "demo-vlc-main-01", WatticsStream.Kind.ELECTRICITY, 300,
     {"pC_1": "active_energy"}),
]


def demo_streams_setup(*, deployment: Deployment, write: Callable[[str], None]) -> None:
    account, created = WatticsAccount.objects.get_or_create(
        deployment=deployment,
        defaults={"name": f"{deployment.name} (sandbox collector)",
                  "username": settings.WATTICS_DEMO_USERNAME,
                  "password": settings.WATTICS_DEMO_PASSWORD},
    )
    write(f"  account {account.name}: {'created' if created else 'kept'}")
    since = timezone.now() - dt.timedelta(days=1)
    for external_id, meter_id, kind, interval, channels in DEMO_STREAMS:
        device = Device.objects.filter(deployment=deployment, external_id=external_id).first()
        if device is None or WatticsStream.objects.filter(meter_id=meter_id).exists():
            continue
        stream_create(device=device, meter_id=meter_id, kind=kind, interval_seconds=interval,
                      channels=channels, start_at=since)
        write(f"  stream {meter_id} ← {external_id} (pushed by the 'wattics: push streams' "
              "schedule once the server runs)")
