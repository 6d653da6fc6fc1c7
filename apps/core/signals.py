"""Model signal receivers of the core app, connected in `CoreConfig.ready`."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import pre_delete
from django.dispatch import receiver

from apps.core.locks import lock_deployment_readings
from apps.core.models import Device


@receiver(pre_delete, sender=Device, dispatch_uid="core.device_delete_waits_for_ingest")
def device_delete_waits_for_ingest(sender: type[Device], instance: Device, **kwargs: Any) -> None:
    """Wait for any ingest of the device's deployment to commit before its readings go.

    Django sends pre_delete inside the deletion's transaction and before it deletes the
    related readings, so readings an ingest commits meanwhile are deleted with the rest.
    """
    lock_deployment_readings(instance.deployment_id)
