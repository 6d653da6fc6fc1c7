"""The demo's DEXMA part: the app installed in the sandbox platform, one datasource sending
the demo meters to the sandbox IS3, and a backfill of the week queued for the worker."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core.models import Deployment, Device, Parameter
from apps.core.services import link_get_or_create
from apps.dexma import services
from apps.dexma.models import DexmaDatasource, Installation, SelectedDevice
from apps.dexma.tasks import backfill_run
from apps.sandbox.dexma.models import AppToken, PlatformDatasource, PlatformDeployment

DEMO_KEY = "hub-demo-acme"
DEMO_PARAMETERS = ["active_energy_delta", "active_power", "temperature"]


def demo_datasource_setup(*, deployment: Deployment, write: Callable[[str], None]) -> None:
    if DexmaDatasource.objects.filter(key=DEMO_KEY).exists():
        write(f"  datasource {DEMO_KEY}: kept")
        return
    account, _ = PlatformDeployment.objects.get_or_create(
        dep_id=deployment.slug, defaults={"name": deployment.name})
    token = AppToken.objects.filter(deployment=account, app_id=settings.DEXMA_APP_ID).first()
    if token is None:
        token = AppToken.objects.create(deployment=account, app_id=settings.DEXMA_APP_ID)
    installation = Installation.objects.filter(dep_id=account.dep_id).first()
    if installation is None:
        installation = Installation(dep_id=account.dep_id, deployment=deployment)
    installation.set_token(token.token)
    installation.save()
    remote = PlatformDatasource.objects.create(
        deployment=account, app_id=settings.DEXMA_APP_ID, key=DEMO_KEY,
        name="ACME meters (demo)", timezone=deployment.timezone or "UTC")
    devices = {d.pk: d for d in Device.objects.filter(deployment=deployment, is_active=True)}
    parameters = list(Parameter.objects.filter(key__in=DEMO_PARAMETERS))
    wanted = {pk: {p.pk for p in parameters} for pk in devices}
    resolutions = services.selection_resolutions(devices=devices, parameters=wanted)
    with transaction.atomic():
        link = link_get_or_create(platform="dexma", name=f"{account.dep_id}/{remote.pk}",
                                  deployment=deployment)
        link.cursor = services.live_start_seq()
        link.save(update_fields=["cursor"])
        datasource = DexmaDatasource.objects.create(
            installation=installation, deployment=deployment, name=remote.name,
            platform_id=remote.pk, key=remote.key, source_token=remote.source_token,
            timezone=remote.timezone, link=link)
        for device_id in devices:
            chosen = SelectedDevice.objects.create(
                datasource=datasource, device_id=device_id,
                resolutions=resolutions.get(device_id, {}))
            chosen.parameters.set(parameters)
    end = timezone.now()
    backfill = services.backfill_start(datasource=datasource,
                                       date_from=end - dt.timedelta(days=8), date_to=end)
    backfill_run.delay(backfill.pk)
    write(f"  datasource {DEMO_KEY} → sandbox IS3 ({len(devices)} meters; backfill "
          f"{backfill.pk} of the week queued, live delivery every minute). Watch DEXMA > "
          "Backfills, then 'IS3 statistics' under the DEXMA sandbox.")
