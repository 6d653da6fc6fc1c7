"""Stage 1 of a sync: sites and devices upserted on their external id.

Entities missing from a *complete* listing are deactivated (seed 002: "stale or removed
records are automatically deactivated on each sync"); after a listing that broke off, we
cannot know what is stale, so nothing is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.core.models import Device, Site
from apps.pull.client import LoopDetected, UpstreamClient
from apps.pull.models import Connection, Endpoint, SeenUnit
from apps.pull.schemas import MappingError, RecordMapper, category, check_unit
from apps.pull.services.common import StageCounts, quarantine_record

_SITE_FIELDS = ("name", "street", "city", "postal_code", "country", "latitude", "longitude",
                "timezone")


@dataclass(slots=True)
class EntityResult:
    assets: StageCounts = field(default_factory=StageCounts)
    meters: StageCounts = field(default_factory=StageCounts)
    units_registered: list[str] = field(default_factory=list)
    complete: bool = True
    error: str = ""
    # The provider's API is broken in a way no retry fixes (its pagination loops).
    broken: bool = False


def local_id_for(external_id: str) -> str:
    """DEXMA's did holds 25 characters: longer ids keep their head and a hash of the whole."""
    if len(external_id) <= 25:
        return external_id
    digest = hashlib.sha1(external_id.encode()).hexdigest()[:8]  # noqa: S324 (not security)
    return f"{external_id[:16]}~{digest}"


def entities_sync(
    *, connection: Connection, client: UpstreamClient, run: Any = None
) -> EntityResult:
    result = EntityResult()
    endpoints = {e.role: e for e in connection.endpoints.all()}
    seen_sites: set[str] = set()
    seen_meters: set[str] = set()
    try:
        if assets := endpoints.get(Endpoint.Role.ASSETS):
            _assets_sync(connection, client, assets, result, seen_sites, run)
        if meters := endpoints.get(Endpoint.Role.METERS):
            _meters_sync(connection, client, meters, result, seen_sites, seen_meters,
                         derive_assets=assets is None, run=run)
    except Exception as exc:
        result.complete = False
        result.broken = isinstance(exc, LoopDetected)
        result.error = f"entities: {type(exc).__name__}: {exc}"
        return result
    if endpoints.get(Endpoint.Role.METERS):
        # update() skips auto_now: the change time is set here, or pullers asking
        # `updated_since` would never hear of the deactivation.
        now = timezone.now()
        result.meters.deactivated = (
            Device.objects.filter(datasource=connection.datasource, is_active=True)
            .exclude(external_id__in=seen_meters).update(is_active=False, updated_at=now)
        )
        stale = [s.pk for s in Site.objects.filter(deployment_id=connection.deployment_id,
                                                   is_active=True)
                 if s.metadata.get("pull_connection") == connection.pk
                 and s.external_id not in seen_sites]
        result.assets.deactivated = Site.objects.filter(pk__in=stale).update(
            is_active=False, updated_at=now)
    return result


def _assets_sync(connection, client, endpoint, result, seen, run) -> None:
    mapper = RecordMapper(endpoint.fields)
    for page in client.pages(endpoint):
        rows = []
        for raw in page.records:
            result.assets.fetched += 1
            try:
                mapped = mapper(raw)
                external_id = _text(mapped.get("external_id"), "asset external_id")
                seen.add(external_id)
                rows.append((external_id, _site_values(mapped, mapper.leftovers(raw))))
            except MappingError as exc:
                result.assets.quarantined += quarantine_record(
                    connection=connection, role="assets", reason=str(exc), raw=raw, run=run)
        _sites_upsert(connection, rows, result.assets)


def _meters_sync(connection, client, endpoint, result, seen_sites, seen, *, derive_assets,
                 run) -> None:
    mapper = RecordMapper(endpoint.fields)
    known_units = set(connection.units.values_list("unit", flat=True))
    for page in client.pages(endpoint):
        rows, derived = [], []
        for raw in page.records:
            result.meters.fetched += 1
            try:
                mapped = mapper(raw)
                external_id = _text(mapped.get("external_id"), "meter external_id")
                seen.add(external_id)
                commodity, subtype = category(mapped.get("type"), mapped.get("subtype"),
                                              connection.type_map)
                unit = check_unit(mapped.get("unit"))
                asset_id = str(mapped.get("asset_id") or "").strip()
                if derive_assets and asset_id:
                    site = {"name": str(mapped.get("asset_name") or asset_id)}
                    for name in ("street", "city", "postal_code", "country"):
                        if mapped.get(name):
                            site[name] = str(mapped[name])
                    derived.append((asset_id, site))
                    seen_sites.add(asset_id)
            except MappingError as exc:
                result.meters.quarantined += quarantine_record(
                    connection=connection, role="meters", reason=str(exc), raw=raw, run=run)
                continue
            if unit not in known_units:
                SeenUnit.objects.get_or_create(connection=connection, unit=unit)
                known_units.add(unit)
                result.units_registered.append(unit)
            rows.append((external_id, {
                "name": str(mapped.get("name") or external_id)[:255],
                "commodity": commodity, "subtype": subtype, "unit": unit,
                "asset_id": asset_id, "metadata": mapper.leftovers(raw),
            }, raw))
        if derived:
            _sites_upsert(connection, list(dict(derived).items()), StageCounts())
        _devices_upsert(connection, rows, result.meters, run)


def _text(value: Any, what: str) -> str:
    if value is None or isinstance(value, dict | list) or not str(value).strip():
        raise MappingError(f"{what} is missing")
    return str(value).strip()


def _site_values(mapped: dict, extra: dict) -> dict:
    values: dict[str, Any] = {"name": _text(mapped.get("name"), "asset name")[:255],
                              "metadata": extra}
    for name in ("street", "city", "postal_code", "country", "timezone"):
        if mapped.get(name):
            values[name] = str(mapped[name])
    for name in ("latitude", "longitude"):
        if mapped.get(name) not in (None, ""):
            try:
                values[name] = float(mapped[name])
            except (TypeError, ValueError):
                raise MappingError(f"asset {name} is not a number: {mapped[name]!r}") from None
    return values


def _sites_upsert(connection: Connection, rows: list[tuple[str, dict]],
                  counts: StageCounts) -> None:
    if not rows:
        return
    with transaction.atomic():
        existing = {s.external_id: s for s in Site.objects.select_for_update().filter(
            deployment_id=connection.deployment_id, external_id__in=[r[0] for r in rows])}
        for external_id, values in rows:
            metadata = {**values.pop("metadata", {}), "pull_connection": connection.pk}
            site = existing.get(external_id)
            if site is None:
                Site.objects.create(deployment_id=connection.deployment_id,
                                    external_id=external_id, metadata=metadata, **values)
                counts.stored += 1
                continue
            wanted = {**values, "is_active": True}
            if site.metadata.get("pull_connection", connection.pk) == connection.pk:
                wanted["metadata"] = {**site.metadata, **metadata}
            if any(getattr(site, k) != v for k, v in wanted.items()):
                for k, v in wanted.items():
                    setattr(site, k, v)
                site.save()
                counts.stored += 1
            else:
                counts.unchanged += 1


def _devices_upsert(connection: Connection, rows: list, counts: StageCounts, run) -> None:
    if not rows:
        return
    deployment_id = connection.deployment_id
    with transaction.atomic():
        sites = dict(Site.objects.filter(deployment_id=deployment_id).values_list(
            "external_id", "id"))
        existing = {d.external_id: d for d in Device.objects.select_for_update().filter(
            deployment_id=deployment_id, external_id__in=[r[0] for r in rows])}
        new, changed = [], []
        for external_id, values, raw in rows:
            asset_id = values.pop("asset_id")
            values["site_id"] = sites.get(asset_id) if asset_id else None
            device = existing.get(external_id)
            if device is None:
                new.append(Device(deployment_id=deployment_id, datasource=connection.datasource,
                                  external_id=external_id, local_id=local_id_for(external_id),
                                  **values))
                continue
            if device.datasource_id != connection.datasource_id:
                counts.quarantined += quarantine_record(
                    connection=connection, role="meters", raw=raw, run=run,
                    reason=f"meter external id '{external_id}' already belongs to datasource "
                           f"#{device.datasource_id} of this deployment; rename one of them")
                continue
            wanted = {**values, "is_active": True}
            if any(getattr(device, k) != v for k, v in wanted.items()):
                for k, v in wanted.items():
                    setattr(device, k, v)
                device.updated_at = timezone.now()  # bulk_update skips auto_now
                changed.append(device)
            else:
                counts.unchanged += 1
        Device.objects.bulk_create(new)
        Device.objects.bulk_update(changed, ["name", "commodity", "subtype", "unit", "site_id",
                                             "metadata", "is_active", "updated_at"])
        counts.stored += len(new) + len(changed)
