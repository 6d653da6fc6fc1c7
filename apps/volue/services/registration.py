"""Register customers (users), meters (locations) and resources on Volue, idempotently, with
the Partner API's documented calls only; remove what went away."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from apps.core.http import HubHTTPError, PermanentError
from apps.core.models import Device
from apps.volue.client import VolueClient
from apps.volue.models import VolueCustomer, VolueMeter, VolueResource, WebhookSubscription
from apps.volue.schemas import LocationIn, ResourceIn, VolueRefused, is_conflict, is_gone
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


# More new locations than this in one run go in one `POST /users/locations/batch`.
BATCH_THRESHOLD = 5


def _meter_in(meter: VolueMeter, device: Device | None) -> LocationIn:
    site = device.site if device is not None else None
    return LocationIn(
        location_id=meter.remote_id or meter.proposed_location_id,
        meter_point_ids=(meter.meter_point_id,),
        location_type=meter.location_type,
        latitude=site.latitude if site else None,
        longitude=site.longitude if site else None,
    )


def _refused(exc: PermanentError, *, what: str, change: str) -> PermanentError:
    """The platform's refusal as the admin shows it: the call, the field, what to change."""
    if isinstance(exc, VolueRefused) and exc.status_code not in (None, 404, 409):
        return PermanentError(f"{what}: {exc}. {change}", status_code=exc.status_code,
                              body=exc.body)
    return exc


LOCATION_CHANGE = ("Correct the meter's meterPointId or locationType, or the site's "
                   "latitude/longitude, in the admin")


def _user_ensure(*, customer: VolueCustomer, client: VolueClient, result: SyncResult) -> None:
    if customer.remote_user_id:
        return
    try:
        customer.remote_user_id = client.user_create(user_id=customer.user_id)
        result.created += 1
    except PermanentError as exc:
        # Our user id is deterministic: if the platform has it, an earlier run created it.
        if not is_conflict(exc) or not client.user_exists(user_id=customer.user_id):
            raise _refused(exc, what=f"user {customer.user_id}",
                           change="Correct the customer's key in the admin") from exc
        customer.remote_user_id = customer.user_id
        result.adopted += 1
    customer.save(update_fields=["remote_user_id"])


def _location_adopt(*, meter: VolueMeter, wire: LocationIn, client: VolueClient,
                    exc: PermanentError) -> LocationIn:
    """After a refused create: find the location the platform already has for this meter
    point (ours from a lost answer, or one made elsewhere for this user) and take its id."""
    user_id = meter.customer.remote_user_id
    for remote in client.locations_list(user_id=user_id):
        if remote.location_id == wire.location_id or wire.meter_point_ids[0] in \
                remote.meter_point_ids:
            meter.remote_id = remote.location_id
            return LocationIn(location_id=remote.location_id,
                              meter_point_ids=wire.meter_point_ids,
                              location_type=wire.location_type, latitude=wire.latitude,
                              longitude=wire.longitude)
    if exc.status_code == 409:
        raise PermanentError(
            f"Volue refused PostLocation {wire.location_id} (meter point "
            f"{meter.meter_point_id}) as a conflict (409) but the user has no location with "
            "that id or meter point: it is probably registered to another user; remove it "
            "there or correct the meterPointId in the admin", status_code=409,
        ) from exc
    raise _refused(exc, what=f"meter point {meter.meter_point_id}",
                   change=LOCATION_CHANGE) from exc


def _meter_register(
    *, meter: VolueMeter, wire: LocationIn, client: VolueClient, result: SyncResult
) -> None:
    user_id = meter.customer.remote_user_id
    if meter.remote_id and meter.registered_fingerprint == wire.fingerprint():
        return
    if meter.remote_id:
        try:
            client.location_update(user_id=user_id, location=wire)
            result.updated += 1
        except PermanentError as exc:
            # A 404 on an update is checked, not believed: only a location the platform
            # really lacks is registered again.
            if not is_gone(exc):
                raise _refused(exc, what=f"meter point {meter.meter_point_id}",
                               change=LOCATION_CHANGE) from exc
            if client.location_exists(user_id=user_id, location_id=meter.remote_id):
                raise PermanentError(
                    f"Volue answered 404 to updating location {meter.remote_id} but still "
                    "lists it; left as it is, retried on the next run", status_code=404,
                ) from exc
            meter.remote_id = ""
            wire = _meter_in(meter, meter.device)
    if not meter.remote_id:
        try:
            meter.remote_id = client.location_create(user_id=user_id, location=wire)
            result.created += 1
        except PermanentError as exc:
            if not is_conflict(exc):
                raise _refused(exc, what=f"meter point {meter.meter_point_id}",
                               change=LOCATION_CHANGE) from exc
            adopted = _location_adopt(meter=meter, wire=wire, client=client, exc=exc)
            # What the platform holds is unknown (a lost answer, another system): one
            # documented full update makes it what the hub has.
            client.location_update(user_id=user_id, location=adopted)
            wire = adopted
            result.adopted += 1
        meter.registered_at = timezone.now()
    meter.registered_fingerprint = wire.fingerprint()
    meter.save(update_fields=["remote_id", "registered_fingerprint", "registered_at"])


def _confirm_gone(delete, exists, **kwargs) -> None:
    """Delete on the platform; a 404 counts as done only once a read confirms it."""
    try:
        delete(**kwargs)
    except PermanentError as exc:
        if not is_gone(exc) or exists():
            raise


def _meter_remove(*, meter: VolueMeter, client: VolueClient, result: SyncResult) -> None:
    user_id = meter.customer.remote_user_id
    if meter.remote_id and user_id:
        location_id = meter.remote_id
        _confirm_gone(client.location_delete, lambda: client.location_exists(
            user_id=user_id, location_id=location_id), user_id=user_id,
            location_id=location_id)
        result.removed += 1
    meter.remote_id, meter.registered_fingerprint = "", ""
    meter.removed_at = timezone.now()
    meter.save(update_fields=["remote_id", "registered_fingerprint", "removed_at"])


def _resource_remove(*, resource: VolueResource, client: VolueClient, result: SyncResult) -> None:
    if resource.registered_at:
        _confirm_gone(client.resource_delete, lambda: client.resource_get(
            resource_id=resource.resource_id) is not None, resource_id=resource.resource_id)
        result.removed += 1
    resource.registered_at, resource.removed_at = None, timezone.now()
    resource.registered_fingerprint = ""
    resource.save(update_fields=["registered_at", "removed_at", "registered_fingerprint"])


def _resource_in(resource: VolueResource) -> ResourceIn:
    if resource.kind == VolueResource.Kind.VEHICLE:
        return ResourceIn(resource_id=resource.resource_id, resource_type="Vehicle")
    meter = resource.meter
    if meter is None or not meter.remote_id or meter.removed_at is not None:
        raise PermanentError(
            f"{resource.resource_type} {resource.resource_id} has no registered meter: the "
            "Partner API binds every resource but a vehicle to a location; choose the meter "
            "it sits behind in the admin"
        )
    return ResourceIn(resource_id=resource.resource_id, resource_type=resource.resource_type,
                      location_id=meter.remote_id, meter_point_id=meter.meter_point_id)


RESOURCE_CHANGE = "Correct the resource's type or meter in the admin"


def _resource_register(
    *, resource: VolueResource, client: VolueClient, result: SyncResult
) -> None:
    wire = _resource_in(resource)
    if resource.registered_at and resource.registered_fingerprint == wire.fingerprint():
        return
    user_id = resource.customer.remote_user_id
    if resource.registered_at:
        # The document has no update for resources: a changed one is deleted and created.
        _confirm_gone(client.resource_delete, lambda: client.resource_get(
            resource_id=resource.resource_id) is not None, resource_id=resource.resource_id)
        result.removed += 1
    try:
        client.resource_create(user_id=user_id, resource=wire)
        result.created += 1
    except PermanentError as exc:
        if not is_conflict(exc):
            raise _refused(exc, what=f"resource {resource.resource_id}",
                           change=RESOURCE_CHANGE) from exc
        remote = client.resource_get(resource_id=resource.resource_id)
        if remote is None:
            raise _refused(exc, what=f"resource {resource.resource_id}",
                           change=RESOURCE_CHANGE) from exc
        if remote.user_id != user_id:
            raise PermanentError(
                f"resource {resource.resource_id} is registered on Volue to user "
                f"{remote.user_id}, not {user_id}; remove it there or give it another id",
                status_code=exc.status_code,
            ) from exc
        if (remote.resource_type, remote.location_id) != (wire.resource_type,
                                                          wire.location_id):
            client.resource_delete(resource_id=resource.resource_id)
            client.resource_create(user_id=user_id, resource=wire)
            result.updated += 1
        else:
            result.adopted += 1
    resource.registered_at, resource.removed_at = timezone.now(), None
    resource.registered_fingerprint, resource.last_error = wire.fingerprint(), ""
    resource.save(update_fields=["registered_at", "removed_at", "registered_fingerprint",
                                 "last_error"])


def _customer_remove(*, customer: VolueCustomer, client: VolueClient, result: SyncResult) -> None:
    for resource in customer.resources.filter(registered_at__isnull=False):
        _resource_remove(resource=resource, client=client, result=result)
    for meter in customer.meters.filter(removed_at__isnull=True).select_related("customer"):
        _meter_remove(meter=meter, client=client, result=result)
    if customer.remote_user_id:
        user_id = customer.remote_user_id
        _confirm_gone(client.user_delete, lambda: client.user_exists(user_id=user_id),
                      user_id=user_id)
        result.removed += 1
    customer.remote_user_id = ""
    customer.removed_at = timezone.now()
    customer.save(update_fields=["remote_user_id", "removed_at"])


def _meters_batch_create(*, pending: list[tuple[VolueMeter, LocationIn]], client: VolueClient,
                         result: SyncResult) -> list[tuple[VolueMeter, LocationIn]]:
    """Register many new locations in one call; what the batch refuses goes one by one
    (where a conflict can be resolved location by location)."""
    if len(pending) <= BATCH_THRESHOLD:
        return pending
    user_id = pending[0][0].customer.remote_user_id
    try:
        client.locations_create(items=[(user_id, wire) for _, wire in pending])
    except PermanentError as exc:
        logger.info("volue: location batch refused (%s); registering one by one", exc)
        return pending
    now = timezone.now()
    for meter, wire in pending:
        meter.remote_id, meter.registered_at = wire.location_id, now
        meter.registered_fingerprint = wire.fingerprint()
        meter.save(update_fields=["remote_id", "registered_fingerprint", "registered_at"])
    result.created += len(pending)
    return []


def customer_sync(*, customer: VolueCustomer, client: VolueClient) -> SyncResult:
    """Make the platform hold exactly this customer's user, locations and resources.

    Safe to repeat: what is registered and unchanged sends nothing, a create the platform
    already has is adopted, what changed is updated with the documented call, and what went
    away in the hub is deleted there.
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
    todo: list[tuple[VolueMeter, LocationIn]] = []
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
        todo.append((meter, _meter_in(meter, device)))
    new = [(m, w) for m, w in todo if not m.remote_id]
    left = _meters_batch_create(pending=new, client=client, result=result)
    for meter, wire in [(m, w) for m, w in todo if m.remote_id] + left:
        try:
            _meter_register(meter=meter, wire=wire, client=client, result=result)
        except PermanentError as exc:
            result.errors.append(f"meter {meter.meter_point_id}: {exc}")
    gone = customer.meters.filter(removed_at__isnull=True).exclude(device_id__in=wanted)
    resources = list(customer.resources.select_related("customer", "meter"))
    # Resources first: a location cannot go while resources are bound to it.
    for resource in resources:
        try:
            gone_meter = resource.meter_id is not None and gone.filter(
                pk=resource.meter_id).exists()
            if resource.is_active and not gone_meter:
                _resource_register(resource=resource, client=client, result=result)
            elif resource.removed_at is None and resource.registered_at is not None:
                _resource_remove(resource=resource, client=client, result=result)
        except PermanentError as exc:
            result.errors.append(f"resource {resource.resource_id}: {exc}")
            VolueResource.objects.filter(pk=resource.pk).update(last_error=str(exc))
    for meter in gone.select_related("customer"):
        try:
            _meter_remove(meter=meter, client=client, result=result)
        except PermanentError as exc:
            result.errors.append(f"meter {meter.meter_point_id}: {exc}")

    customer.last_synced_at = timezone.now()
    customer.last_error = "\n".join(result.errors)
    customer.save(update_fields=["last_synced_at", "last_error"])
    return result


def users_batch_register(*, customers: list[VolueCustomer], client: VolueClient) -> int:
    """Create many new users in one `POST /users/batch`; 0 (and nothing stored) when the
    platform refuses the batch, so each customer's own sync then creates or adopts it."""
    new = [c for c in customers
           if not c.remote_user_id and c.is_active and c.deployment.is_active]
    if len(new) <= BATCH_THRESHOLD:
        return 0
    try:
        created = set(client.users_create(user_ids=[c.user_id for c in new]))
    except HubHTTPError as exc:  # the per-customer syncs that follow retry and say why
        logger.info("volue: user batch refused (%s); registering one by one", exc)
        return 0
    for customer in new:
        if customer.user_id in created:
            customer.remote_user_id = customer.user_id
            customer.save(update_fields=["remote_user_id"])
    return len(created)


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
