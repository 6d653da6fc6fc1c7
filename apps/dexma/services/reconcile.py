"""Consent lifecycle and reconcile: bring DEXMA datasources in line with consents and with
what the platform holds."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils import timezone

from apps.core.http import HubHTTPError
from apps.core.models import Deployment
from apps.dexma.client import describe_error
from apps.dexma.models import DexmaDatasource, Installation
from apps.dexma.services.datasources import _consent_lapsed, datasource_push
from apps.dexma.services.errors import PlatformCallError
from apps.dexma.services.installations import ClientFactory, client_for


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
