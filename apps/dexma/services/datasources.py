"""DEXMA datasource lifecycle: create, push, update, forget, delete, disable.

Local state is kept so that delivery never has to ask the platform before inserting (that
would exhaust the rate budget).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.core.http import HubHTTPError
from apps.core.models import Datasource, DeliveryLink, Deployment, Device, Parameter
from apps.core.services import link_get_or_create
from apps.dexma.client import DexmaClient, describe_error
from apps.dexma.models import DexmaDatasource, Installation, SelectedDevice
from apps.dexma.schemas import Is3MappingError
from apps.dexma.services.batches import selection_resolutions
from apps.dexma.services.errors import DexmaError, PlatformCallError
from apps.dexma.services.installations import ClientFactory, client_for
from apps.dexma.services.live import live_start_seq

logger = logging.getLogger(__name__)

PLATFORM = "dexma"


@dataclass(slots=True)
class Selection:
    """Devices (by id) and, per device, the parameters (by id) to send."""

    parameters: dict[int, set[int]] = field(default_factory=dict)
    # Filled by validation: {device id: {parameter id: frequency}} of interval parameters.
    resolutions: dict[int, dict[str, str]] = field(default_factory=dict)

    @property
    def device_ids(self) -> set[int]:
        return set(self.parameters)


def _validate_selection(*, deployment: Deployment, selection: Selection,
                        datasource: DexmaDatasource | None = None) -> dict[int, Device]:
    devices = {
        d.pk: d for d in Device.objects.filter(deployment=deployment, pk__in=selection.device_ids)
    }
    unknown = selection.device_ids - set(devices)
    if unknown:
        raise DexmaError(f"unknown devices for this deployment: {sorted(unknown)}")
    wanted = {p for params in selection.parameters.values() for p in params}
    known = set(Parameter.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    if wanted - known:
        raise DexmaError(f"unknown parameters: {sorted(wanted - known)}")
    empty = [devices[d].name for d, params in selection.parameters.items() if not params]
    if empty:
        raise DexmaError(f"choose at least one parameter for: {', '.join(empty)}")
    try:
        fixed = {} if datasource is None else dict(
            SelectedDevice.objects.filter(datasource=datasource)
            .values_list("device_id", "resolutions"))
        selection.resolutions = selection_resolutions(devices=devices,
                                                      parameters=selection.parameters,
                                                      fixed=fixed)
    except Is3MappingError as exc:
        raise DexmaError(str(exc)) from exc
    return devices


def _selection_save(*, datasource: DexmaDatasource, selection: Selection) -> None:
    SelectedDevice.objects.filter(datasource=datasource).exclude(
        device_id__in=selection.device_ids
    ).delete()
    for device_id, parameter_ids in selection.parameters.items():
        chosen, _ = SelectedDevice.objects.get_or_create(datasource=datasource, device_id=device_id)
        chosen.parameters.set(parameter_ids)
        resolutions = selection.resolutions.get(device_id, {})
        if resolutions != chosen.resolutions:
            chosen.resolutions = resolutions
            chosen.save(update_fields=["resolutions"])


def _consent_lapsed(*, device_ids: Iterable[int]) -> bool:
    return Datasource.objects.filter(devices__pk__in=list(device_ids)).exclude(
        consent_status__in=[Datasource.Consent.NOT_REQUIRED, Datasource.Consent.ACTIVE]
    ).exists()


def _suggested_key(name: str) -> str:
    # DEXMA keys every datasource of a type with the type's key as prefix.
    slug = slugify(name)[:40] or "datasource"
    return f"{settings.DEXMA_DATASOURCE_TYPE_KEY}-{slug}-{secrets.token_hex(3)}"


def datasource_create(
    *, installation: Installation, name: str, selection: Selection,
    client_factory: ClientFactory = client_for,
) -> DexmaDatasource:
    """Save locally, register in DEXMA, fetch the insertion token, store both.

    No transaction stays open across platform calls (the platform may be slow, and on
    SQLite the sandbox platform shares the database). If a platform call fails, the local
    record is removed again (and a datasource the platform did create is deleted there)
    and `PlatformCallError` carries the platform's message.
    """
    name = name.strip()
    if not name:
        raise DexmaError("the datasource needs a name")
    deployment = installation.deployment
    _validate_selection(deployment=deployment, selection=selection)
    with transaction.atomic():
        datasource = DexmaDatasource.objects.create(
            installation=installation, deployment=deployment, name=name,
            timezone=deployment.timezone,
            consent_suspended=_consent_lapsed(device_ids=selection.device_ids),
        )
        _selection_save(datasource=datasource, selection=selection)
    created_id: int | None = None
    with client_factory(installation) as client:
        try:
            remote = client.datasource_create(
                key=_suggested_key(name), name=name, timezone=datasource.timezone,
                status=datasource.wanted_status,
            )
            created_id = remote.id
            source_token = client.datasource_token(datasource_id=remote.id)
            with transaction.atomic():
                datasource.platform_id = remote.id
                datasource.key = remote.key
                datasource.source_token = source_token
                datasource.platform_status = remote.status or datasource.wanted_status
                datasource.last_sync_at = timezone.now()
                datasource.link = link_get_or_create(
                    platform=PLATFORM, name=f"{installation.dep_id}/{remote.id}",
                    deployment=deployment,
                )
                if not datasource.link.cursor and not datasource.link.batches.exists():
                    # Live delivery sends what changes from now on; history goes by backfill
                    # (oldest first), not in the order it happened to be ingested.
                    DeliveryLink.objects.filter(pk=datasource.link.pk).update(
                        cursor=live_start_seq())
                datasource.save()
        except BaseException as exc:
            if created_id is not None:
                _delete_quietly(client, created_id)
            datasource.delete()
            if isinstance(exc, HubHTTPError):
                raise PlatformCallError.of(exc) from exc
            raise
    return datasource


def _delete_quietly(client: DexmaClient, datasource_id: int) -> None:
    try:
        client.datasource_delete(datasource_id=datasource_id)
    except HubHTTPError as exc:
        logger.error("DEXMA datasource %s left on the platform after a failed creation: %s",
                     datasource_id, describe_error(exc))


def _push(*, datasource: DexmaDatasource, name: str, status: str,
          client_factory: ClientFactory) -> str:
    """Send name and status (a merge); the platform's resulting status."""
    with client_factory(datasource.installation) as client:
        try:
            remote = client.datasource_update(
                datasource_id=datasource.platform_id, name=name, status=status
            )
        except HubHTTPError as exc:
            message = describe_error(exc)
            DexmaDatasource.objects.filter(pk=datasource.pk).update(
                last_error=message, updated_at=timezone.now()
            )
            raise PlatformCallError.of(exc, message) from exc
    return remote.status or status


def datasource_push(
    *, datasource: DexmaDatasource, client_factory: ClientFactory = client_for
) -> DexmaDatasource:
    """Send the name and wanted status to the platform and record its answer."""
    datasource.platform_status = _push(
        datasource=datasource, name=datasource.name, status=datasource.wanted_status,
        client_factory=client_factory,
    )
    datasource.last_sync_at = timezone.now()
    datasource.last_error = ""
    datasource.save(update_fields=["platform_status", "last_sync_at", "last_error", "updated_at"])
    return datasource


def datasource_update(
    *, datasource: DexmaDatasource, name: str, enabled: bool,
    selection: Selection | None = None, client_factory: ClientFactory = client_for,
) -> DexmaDatasource:
    """Rename, enable or disable (pushed to the platform first: a refusal changes
    nothing here), change the devices (local only)."""
    name = name.strip()
    if not name:
        raise DexmaError("the datasource needs a name")
    if selection is not None:
        _validate_selection(deployment=datasource.deployment, selection=selection,
                            datasource=datasource)
    previous = (datasource.name, datasource.wanted_status)
    datasource.name, datasource.enabled = name, enabled
    if selection is not None:
        datasource.consent_suspended = _consent_lapsed(device_ids=selection.device_ids)
    if (datasource.name, datasource.wanted_status) != previous and datasource.platform_id:
        try:
            datasource.platform_status = _push(
                datasource=datasource, name=name, status=datasource.wanted_status,
                client_factory=client_factory,
            )
        except PlatformCallError:
            datasource.refresh_from_db()
            raise
        datasource.last_sync_at = timezone.now()
        datasource.last_error = ""
    with transaction.atomic():
        if selection is not None:
            _selection_save(datasource=datasource, selection=selection)
        datasource.save()
    return datasource


def datasource_forget(*, datasource: DexmaDatasource) -> None:
    """Remove a datasource locally (the platform deleted it, or is about to)."""
    with transaction.atomic():
        link_id = datasource.link_id
        datasource.delete()
        if link_id is not None:
            DeliveryLink.objects.filter(pk=link_id).delete()


def datasource_delete(
    *, datasource: DexmaDatasource, client_factory: ClientFactory = client_for
) -> None:
    """App-initiated delete: `DELETE /datasources/{id}` on the platform, then locally."""
    if datasource.platform_id is not None:
        with client_factory(datasource.installation) as client:
            try:
                client.datasource_delete(datasource_id=datasource.platform_id)
            except HubHTTPError as exc:
                datasource.last_error = describe_error(exc)
                datasource.save(update_fields=["last_error", "updated_at"])
                raise PlatformCallError.of(exc, datasource.last_error) from exc
    datasource_forget(datasource=datasource)


def datasource_disable(
    *, datasource: DexmaDatasource, client_factory: ClientFactory = client_for
) -> DexmaDatasource:
    return datasource_update(datasource=datasource, name=datasource.name, enabled=False,
                             client_factory=client_factory)




def selection_from_form(data: Mapping[str, list[str]]) -> Selection:
    """`device` = chosen device ids; `param-<device id>` = that device's parameter ids."""
    selection = Selection()
    for raw in data.get("device", []):
        if not raw.isdigit():
            raise DexmaError(f"bad device id '{raw}'")
        params = data.get(f"param-{raw}", [])
        if not all(p.isdigit() for p in params):
            raise DexmaError(f"bad parameter ids for device {raw}")
        selection.parameters[int(raw)] = {int(p) for p in params}
    return selection
