"""Deleting a meter or an asset leaves a tombstone, so that pullers hear of it."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete
from django.dispatch import receiver

from apps.core.models import Deployment, Device, Site
from apps.partner_api.models import Tombstone


def _tombstone(kind: str, instance: Device | Site, origin: Any) -> None:
    # A whole deployment going takes its tombstones with it: nobody can pull it any more.
    if isinstance(origin, Deployment):
        return
    Tombstone.objects.create(deployment_id=instance.deployment_id, kind=kind,
                             record_id=instance.pk, external_id=instance.external_id)


@receiver(post_delete, sender=Device, dispatch_uid="partner_api.meter_tombstone")
def meter_tombstone(sender: type[Device], instance: Device, origin: Any = None,
                    **kwargs: Any) -> None:
    _tombstone(Tombstone.Kind.METER, instance, origin)


@receiver(post_delete, sender=Site, dispatch_uid="partner_api.asset_tombstone")
def asset_tombstone(sender: type[Site], instance: Site, origin: Any = None,
                    **kwargs: Any) -> None:
    _tombstone(Tombstone.Kind.ASSET, instance, origin)
