"""Writes of the DEXMA Market App: installation, datasource lifecycle, consent, reconcile.

Every platform call goes through `DexmaClient`; local state is kept so that delivery never
has to ask the platform before inserting (that would exhaust the rate budget).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.core.http import HubHTTPError
from apps.core.models import Datasource, DeliveryLink, Deployment, Device, Parameter
from apps.core.services import link_get_or_create
from apps.dexma.client import DexmaClient, access_token_create, describe_error
from apps.dexma.delivery import live_start_seq, selection_resolutions
from apps.dexma.mapping import Is3MappingError
from apps.dexma.models import DexmaDatasource, Installation, SelectedDevice, token_digest

logger = logging.getLogger(__name__)

PLATFORM = "dexma"
ClientFactory = Callable[[Installation], DexmaClient]


class DexmaError(Exception):
    """A lifecycle step failed; the message is fit to show the user."""


class InstallError(DexmaError):
    pass


class PlatformCallError(DexmaError):
    """The platform refused or failed a call; nothing was kept locally.

    Carries the failed call's `transient` and `retry_after` (see `HubHTTPError`).
    """

    def __init__(self, message: str, *, transient: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.transient, self.retry_after = transient, retry_after

    @classmethod
    def of(cls, exc: HubHTTPError, message: str | None = None) -> PlatformCallError:
        return cls(describe_error(exc) if message is None else message,
                   transient=exc.transient, retry_after=exc.retry_after)


class TokenMissing(DexmaError):
    pass


class TokenInvalid(DexmaError):
    pass


def client_for(installation: Installation, **kwargs) -> DexmaClient:
    return DexmaClient(installation.token, **kwargs)


# --- installation ------------------------------------------------------------------------


def _deployment_for(dep_id: str) -> Deployment:
    """The hub deployment a DEXMA account maps to: the one whose slug is the account id
    (ops can re-point it in the admin), or a new, empty one."""
    slug = slugify(dep_id)[:64] or "dexma"
    deployment, _ = Deployment.objects.get_or_create(slug=slug, defaults={"name": dep_id[:200]})
    return deployment


def installation_install(*, dep_id: str, temp_token: str) -> Installation:
    """The handshake: trade `temp_token` for the permanent token and store it (encrypted).

    A reinstall replaces the old token. A platform failure stores nothing.
    """
    try:
        token = access_token_create(
            app_id=settings.DEXMA_APP_ID, secret=settings.DEXMA_APP_SECRET, temp_token=temp_token
        )
    except HubHTTPError as exc:
        raise InstallError(describe_error(exc)) from exc
    with transaction.atomic():
        installation = Installation.objects.select_for_update().filter(dep_id=dep_id).first()
        if installation is None:
            installation = Installation(dep_id=dep_id, deployment=_deployment_for(dep_id))
        else:
            installation.reinstalled_at = timezone.now()
        installation.set_token(token)
        installation.last_error = ""
        installation.save()
    logger.info("DEXMA app installed for deployment %s", dep_id)
    return installation


def installation_uninstall(*, installation: Installation) -> None:
    """Forget the token and every local trace of the account: datasources, device choices,
    delivery links with their cursors and batches. The hub's readings stay."""
    with transaction.atomic():
        link_ids = list(
            installation.datasources.exclude(link=None).values_list("link_id", flat=True)
        )
        installation.delete()
        DeliveryLink.objects.filter(pk__in=link_ids).delete()
    logger.info("DEXMA app uninstalled for deployment %s", installation.dep_id)


def installation_authenticate(*, dep_token: str | None) -> Installation:
    """The installation a platform call is for, from its `dep_token`.

    The digest finds the candidate; the stored token is then compared in constant time.
    """
    if not dep_token:
        raise TokenMissing("dep_token is required")
    candidate = Installation.objects.select_related("deployment").filter(
        token_digest=token_digest(dep_token)
    ).first()
    stored = candidate.token if candidate is not None else secrets.token_hex(16)
    if not hmac.compare_digest(stored.encode(), dep_token.encode()) or candidate is None:
        raise TokenInvalid("dep_token does not match an installation")
    return candidate


# --- datasources -------------------------------------------------------------------------


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


# --- consent lifecycle and reconcile ---------------------------------------------------------


@dataclass(slots=True)
class SyncReport:
    pushed: int = 0
    failed: int = 0
    missing: int = 0
    errors: list[str] = field(default_factory=list)


def consents_apply(
    *, deployment: Deployment | None = None, client_factory: ClientFactory = client_for
) -> SyncReport:
    """DISABLE on the platform the DEXMA datasources carrying a device whose hub datasource's
    consent expired or was revoked; ENABLE them again once every consent is renewed."""
    report = SyncReport()
    queryset = DexmaDatasource.objects.exclude(platform_id=None).select_related("installation")
    if deployment is not None:
        queryset = queryset.filter(deployment=deployment)
    for datasource in queryset:
        lapsed = _consent_lapsed(device_ids=datasource.selections.values_list("device_id",
                                                                               flat=True))
        if lapsed != datasource.consent_suspended:
            datasource.consent_suspended = lapsed
            datasource.save(update_fields=["consent_suspended", "updated_at"])
        # A failed push leaves the statuses apart, so the next run tries again.
        if datasource.platform_status in (
            datasource.wanted_status, DexmaDatasource.PlatformStatus.MISSING
        ):
            continue
        try:
            datasource_push(datasource=datasource, client_factory=client_factory)
            report.pushed += 1
        except PlatformCallError as exc:
            report.failed += 1
            report.errors.append(f"{datasource}: {exc}")
    return report


def installation_reconcile(
    *, installation: Installation, client_factory: ClientFactory = client_for
) -> SyncReport:
    """Bring local state in line with the platform: one paged list call, then a push for
    every datasource whose platform status differs from what the hub wants."""
    report = SyncReport()
    now = timezone.now()
    with client_factory(installation) as client:
        try:
            remote = {ds.id: ds for ds in client.datasources_list()}
        except HubHTTPError as exc:
            installation.last_error = describe_error(exc)
            installation.save(update_fields=["last_error"])
            raise PlatformCallError.of(exc, installation.last_error) from exc
    for datasource in installation.datasources.exclude(platform_id=None):
        found = remote.get(datasource.platform_id)
        if found is None:
            # Deleted on the platform without telling us: keep the record for ops to see.
            datasource.platform_status = DexmaDatasource.PlatformStatus.MISSING
            datasource.last_error = "not found on the platform during reconcile"
            datasource.last_sync_at = now
            datasource.save()
            report.missing += 1
            continue
        datasource.platform_status = found.status or datasource.platform_status
        datasource.key = found.key or datasource.key
        datasource.last_sync_at = now
        datasource.save()
        if found.status != datasource.wanted_status or found.name != datasource.name:
            try:
                datasource_push(datasource=datasource, client_factory=client_factory)
                report.pushed += 1
            except PlatformCallError as exc:
                report.failed += 1
                report.errors.append(f"{datasource}: {exc}")
    installation.last_sync_at = now
    installation.last_error = "; ".join(report.errors)[:2000]
    installation.save(update_fields=["last_sync_at", "last_error"])
    return report


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
