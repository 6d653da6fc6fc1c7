"""Register customers, meters and resources on Volue, idempotently; remove what went away."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from apps.core.http import PermanentError
from apps.core.models import Device
from apps.volue.client import MeterIn, ResourceIn, VolueClient, is_conflict, is_gone
from apps.volue.models import VolueCustomer, VolueMeter, VolueResource, WebhookSubscription
from apps.volue.selectors import customer_devices

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class SyncResult:
    created: int = 0
    updated: int = 0
    adopted: int = 0  # already on the platform (a create retried after a lost answer)
    removed: int = 0
    errors: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"created": self.created, "updated": self.updated, "adopted": self.adopted,
                "removed": self.removed, "errors": len(self.errors)}


def _meter_in(meter: VolueMeter, device: Device) -> MeterIn:
    site = device.site
    return MeterIn(
        meter_point_id=meter.meter_point_id,
        meter_number=meter.meter_number,
        location_type=meter.location_type,
        street=site.street if site else "",
        city=site.city if site else "",
        zip_code=site.postal_code if site else "",
        latitude=site.latitude if site else None,
        longitude=site.longitude if site else None,
    )


def _delete_quietly(call, *args, **kwargs) -> None:
    """Delete on the platform; already gone (404) is what we wanted."""
    try:
        call(*args, **kwargs)
    except PermanentError as exc:
        if not is_gone(exc):
            raise


def _user_ensure(*, customer: VolueCustomer, client: VolueClient, result: SyncResult) -> None:
    if customer.remote_user_id:
        return
    try:
        customer.remote_user_id = client.user_create(user_id=customer.user_id)
        result.created += 1
    except PermanentError as exc:
        if not is_conflict(exc):
            raise
        # Our user id is deterministic: a conflict means an earlier run created it.
        customer.remote_user_id = customer.user_id
        result.adopted += 1
    customer.save(update_fields=["remote_user_id"])


def _meter_register(
    *, meter: VolueMeter, wire: MeterIn, client: VolueClient, result: SyncResult
) -> None:
    user_id = meter.customer.remote_user_id
    if meter.remote_id and meter.registered_fingerprint == wire.fingerprint():
        return
    if meter.remote_id:
        try:
            client.meter_update(user_id=user_id, meter_id=meter.remote_id, meter=wire)
            result.updated += 1
        except PermanentError as exc:
            if not is_gone(exc):
                raise
            meter.remote_id = ""  # deleted on the platform: register it again
    if not meter.remote_id:
        try:
            meter.remote_id = client.meter_create(user_id=user_id, meter=wire)
            result.created += 1
        except PermanentError as exc:
            if not is_conflict(exc):
                raise
            known = {m.meter_point_id: m.meter_id for m in client.meters_list(user_id=user_id)}
            if wire.meter_point_id not in known:
                raise PermanentError(
                    f"Volue refused meter {wire.meter_point_id} as a conflict but the user has "
                    "no meter with that meterPointId: it is probably registered to another "
                    "user; remove it there or correct the meterPointId in the admin",
                    status_code=409,
                ) from exc
            meter.remote_id = known[wire.meter_point_id]
            client.meter_update(user_id=user_id, meter_id=meter.remote_id, meter=wire)
            result.adopted += 1
        meter.registered_at = timezone.now()
    meter.registered_fingerprint = wire.fingerprint()
    meter.save(update_fields=["remote_id", "registered_fingerprint", "registered_at"])


def _meter_remove(*, meter: VolueMeter, client: VolueClient, result: SyncResult) -> None:
    if meter.remote_id and meter.customer.remote_user_id:
        _delete_quietly(client.meter_delete, user_id=meter.customer.remote_user_id,
                        meter_id=meter.remote_id)
        result.removed += 1
    meter.remote_id, meter.registered_fingerprint = "", ""
    meter.removed_at = timezone.now()
    meter.save(update_fields=["remote_id", "registered_fingerprint", "removed_at"])


def _resource_remove(*, resource: VolueResource, client: VolueClient, result: SyncResult) -> None:
    if resource.registered_at and resource.customer.remote_user_id:
        _delete_quietly(
            client.resource_delete, user_id=resource.customer.remote_user_id,
            resource_id=resource.resource_id, vehicle=resource.kind == VolueResource.Kind.VEHICLE,
        )
        result.removed += 1
    resource.registered_at, resource.removed_at = None, timezone.now()
    resource.save(update_fields=["registered_at", "removed_at"])


def _resource_register(
    *, resource: VolueResource, client: VolueClient, result: SyncResult
) -> None:
    wire = ResourceIn(
        resource_id=resource.resource_id, resource_type=resource.resource_type,
        metadata=dict(resource.metadata or {}),
        vehicle=resource.kind == VolueResource.Kind.VEHICLE,
    )
    try:
        client.resource_create(user_id=resource.customer.remote_user_id, resource=wire)
        result.created += 1
    except PermanentError as exc:
        if not is_conflict(exc):
            raise
        result.adopted += 1
    resource.registered_at, resource.removed_at = timezone.now(), None
    resource.save(update_fields=["registered_at", "removed_at"])


def _customer_remove(*, customer: VolueCustomer, client: VolueClient, result: SyncResult) -> None:
    for resource in customer.resources.filter(registered_at__isnull=False):
        _resource_remove(resource=resource, client=client, result=result)
    for meter in customer.meters.filter(removed_at__isnull=True):
        _meter_remove(meter=meter, client=client, result=result)
    if customer.remote_user_id:
        _delete_quietly(client.user_delete, user_id=customer.remote_user_id)
        result.removed += 1
    customer.remote_user_id = ""
    customer.removed_at = timezone.now()
    customer.save(update_fields=["remote_user_id", "removed_at"])


def customer_sync(*, customer: VolueCustomer, client: VolueClient) -> SyncResult:
    """Make the platform hold exactly this customer's user, meters and resources.

    Safe to repeat: what is registered is skipped, a create the platform already has (409)
    is adopted, what changed is updated, and what went away in the hub is deleted there.
    """
    result = SyncResult()
    if not customer.is_active or not customer.deployment.is_active:
        if customer.removed_at is None:
            _customer_remove(customer=customer, client=client, result=result)
        return result
    if customer.removed_at is not None:
        customer.removed_at = None
        customer.save(update_fields=["removed_at"])
    _user_ensure(customer=customer, client=client, result=result)

    wanted: set[int] = set()
    for device in customer_devices(customer=customer):
        wanted.add(device.pk)
        meter, _ = VolueMeter.objects.get_or_create(
            customer=customer, device=device,
            defaults={
                "meter_point_id": str(device.metadata.get("meterPointId") or device.external_id),
                "meter_number": str(device.metadata.get("meterNumber") or device.local_id),
                "location_type": (device.site.metadata or {}).get("locationType")
                or customer.location_type,
            },
        )
        if meter.removed_at is not None:  # back in scope after a removal
            meter.removed_at = None
            meter.save(update_fields=["removed_at"])
        meter.customer = customer
        try:
            _meter_register(meter=meter, wire=_meter_in(meter, device), client=client,
                            result=result)
        except PermanentError as exc:
            result.errors.append(f"meter {meter.meter_point_id}: {exc}")
    gone = customer.meters.filter(removed_at__isnull=True).exclude(device_id__in=wanted)
    for meter in gone.select_related("customer"):
        _meter_remove(meter=meter, client=client, result=result)

    for resource in customer.resources.select_related("customer"):
        try:
            if resource.is_active and resource.registered_at is None:
                _resource_register(resource=resource, client=client, result=result)
            elif not resource.is_active and resource.removed_at is None:
                _resource_remove(resource=resource, client=client, result=result)
        except PermanentError as exc:
            result.errors.append(f"resource {resource.resource_id}: {exc}")

    customer.last_synced_at = timezone.now()
    customer.last_error = "\n".join(result.errors)
    customer.save(update_fields=["last_synced_at", "last_error"])
    return result


def subscription_ensure(*, client: VolueClient) -> WebhookSubscription:
    """The hub's webhook registered on the platform with the configured URL and types.

    The secret is generated here and stored encrypted before the platform learns it, so a
    notification sent the moment the webhook exists can already be verified.
    """
    url, types = settings.VOLUE_WEBHOOK_URL, list(settings.VOLUE_NOTIFICATION_TYPES)
    subscription = WebhookSubscription.objects.filter(is_active=True).first()
    if subscription is None:
        subscription = WebhookSubscription.objects.create(
            url=url, notification_types=types, secret=secrets.token_urlsafe(32)
        )
    if not subscription.remote_id:
        subscription.url, subscription.notification_types = url, types
        subscription.remote_id = client.webhook_create(
            name=subscription.name, url=url, secret=subscription.secret, types=types
        )
        subscription.save()
    elif subscription.url != url or subscription.notification_types != types:
        try:
            client.webhook_update(webhook_id=subscription.remote_id, name=subscription.name,
                                  url=url, secret=subscription.secret, types=types)
        except PermanentError as exc:
            if not is_gone(exc):
                raise
            subscription.remote_id = client.webhook_create(
                name=subscription.name, url=url, secret=subscription.secret, types=types
            )
        subscription.url, subscription.notification_types = url, types
        subscription.save()
    return subscription
