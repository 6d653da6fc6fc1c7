"""Writes for the partner API: keys, upserts by external id, reading batches, tombstones."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.models import (
    COMMODITY_SUBTYPES,
    Commodity,
    Datasource,
    Deployment,
    Device,
    Quarantine,
    Run,
    Site,
)
from apps.core.services import (
    ReadingIn,
    Refused,
    quarantine_add,
    quarantine_payload,
    readings_ingest,
    run_logged,
)
from apps.partner_api.auth import key_generate, key_hash
from apps.partner_api.exceptions import ApiError
from apps.partner_api.models import ApiKey, IdempotencyRecord, Tombstone

PARTNER_DATASOURCE = "partner-api"


def apikey_create(*, name: str, deployments: Iterable[Deployment],
                  access: str = ApiKey.Access.READ,
                  rate_per_minute: int | None = None) -> tuple[ApiKey, str]:
    """A new key and its clear text, which is never stored and cannot be shown again."""
    prefix, raw = key_generate()
    key = ApiKey.objects.create(name=name, prefix=prefix, key_hash=key_hash(raw),
                                access=access, rate_per_minute=rate_per_minute)
    key.deployments.set(list(deployments))
    return key, raw


def apikey_rotate(*, key: ApiKey) -> str:
    prefix, raw = key_generate()
    key.prefix, key.key_hash = prefix, key_hash(raw)
    key.save(update_fields=["prefix", "key_hash"])
    return raw


# --- upserts ----------------------------------------------------------------------------

def _full_clean(obj, exclude=()) -> None:
    try:
        obj.full_clean(exclude=list(exclude), validate_unique=False)
    except ValidationError as exc:
        raise ApiError("the record is invalid; see 'fields'", code="invalid",
                       fields={k: [str(m) for m in v] for k, v in exc.message_dict.items()}
                       ) from None


@transaction.atomic
def site_upsert(*, deployment: Deployment, external_id: str,
                data: dict[str, Any]) -> tuple[Site, bool]:
    site = (Site.objects.select_for_update()
            .filter(deployment=deployment, external_id=external_id).first())
    created = site is None
    if created:
        site = Site(deployment=deployment, external_id=external_id)
    for name, value in data.items():
        setattr(site, name, value)
    _full_clean(site, exclude=["deployment"])
    site.save()
    return site, created


def _local_id(datasource: Datasource, external_id: str) -> str:
    """DEXMA's did: the external id when it fits in 25 characters and is free, else a hash."""
    taken = Device.objects.filter(datasource=datasource)
    if len(external_id) <= 25 and not taken.filter(local_id=external_id).exists():
        return external_id
    digest = hashlib.sha256(external_id.encode()).hexdigest()
    return f"x{digest[:24]}"


@transaction.atomic
def meter_upsert(*, deployment: Deployment, external_id: str,
                 data: dict[str, Any]) -> tuple[Device, bool]:
    """Create or update a meter; new meters join the deployment's partner datasource."""
    data = dict(data)
    asset = data.pop("asset", None)
    commodity = str(data.pop("commodity", "")).lower()
    if commodity not in Commodity.values:
        raise ApiError(f"type '{commodity}' is not one of Energy, Water, Waste",
                       code="invalid", fields={"type": ["one of Energy, Water, Waste"]})
    subtype = data.get("subtype") or ""
    if subtype and subtype not in COMMODITY_SUBTYPES[commodity]:
        raise ApiError(
            f"subtype '{subtype}' is not a {commodity} subtype; use one of "
            f"{', '.join(COMMODITY_SUBTYPES[commodity])}",
            code="invalid", fields={"subtype": ["not a subtype of this type"]})
    site = None
    if asset:
        site = Site.objects.filter(deployment=deployment, external_id=asset).first()
        if site is None:
            raise ApiError(f"no asset '{asset}' in this deployment; create it first with PUT "
                           f"/api/v1/assets/{asset}/", code="unknown_asset",
                           status_code=409, fields={"asset": ["unknown asset"]})
    device = (Device.objects.select_for_update()
              .filter(deployment=deployment, external_id=external_id).first())
    created = device is None
    if created:
        datasource, _ = Datasource.objects.get_or_create(
            deployment=deployment, key=PARTNER_DATASOURCE,
            defaults={"name": "Partner API", "kind": Datasource.Kind.PARTNER},
        )
        device = Device(deployment=deployment, datasource=datasource, external_id=external_id,
                        local_id=_local_id(datasource, external_id))
    device.site = site
    device.commodity = commodity
    device.subtype = subtype
    for name, value in data.items():
        if name != "subtype":
            setattr(device, name, value)
    if not device.name:
        device.name = external_id
    _full_clean(device, exclude=["deployment", "datasource"])
    device.save()
    return device, created


# --- reading batches ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict
    replayed: bool = False


def request_fingerprint(*, method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join([method.encode(), path.encode(), body])).hexdigest()


def idempotent(*, key: ApiKey, idempotency_key: str | None, fingerprint: str,
               produce: Callable[[], Answer]) -> Answer:
    """Run `produce` once per (API key, Idempotency-Key); later calls get the first answer.

    The record is inserted in the same transaction as the work: a concurrent retry waits
    on the unique index until the first commits, then replays its answer.
    """
    if not idempotency_key:
        return produce()
    if len(idempotency_key) > 255:
        raise ApiError("Idempotency-Key is longer than 255 characters", code="invalid")
    if "\x00" in idempotency_key:  # PostgreSQL text cannot hold it
        raise ApiError("Idempotency-Key contains a NUL character", code="invalid")
    previous = IdempotencyRecord.objects.filter(api_key=key, key=idempotency_key).first()
    if previous is None:
        try:
            with transaction.atomic():
                # Claimed first: a concurrent twin blocks here, not after doing the work.
                record = IdempotencyRecord.objects.create(
                    api_key=key, key=idempotency_key, fingerprint=fingerprint,
                    status_code=0, response={})
                answer = produce()
                record.status_code, record.response = answer.status, answer.body
                record.save(update_fields=["status_code", "response"])
                return answer
        except IntegrityError:
            previous = IdempotencyRecord.objects.filter(api_key=key, key=idempotency_key).first()
            if previous is None:
                raise
    if previous.fingerprint != fingerprint:
        raise ApiError(
            f"Idempotency-Key '{idempotency_key}' was already used for a different request; "
            "use a new key for new data", code="idempotency_key_reused", status_code=422)
    return Answer(previous.status_code, previous.response, replayed=True)


_NOT_AN_OBJECT = "a reading must be a JSON object"
# Core's ReadingIn field names where the wire record names them differently.
_WIRE_FIELD = {"device": "meter"}


def readings_push(*, deployment: Deployment, key: ApiKey, records: list[Any]) -> Answer:
    """Store a batch through the core ingest; answer with counts and per-index rejections."""
    positions = [i for i, item in enumerate(records) if isinstance(item, dict)]
    incoming = [_reading_in(records[i]) for i in positions]
    not_objects = [i for i, item in enumerate(records) if not isinstance(item, dict)]
    source = Quarantine.source_for("partner_api", "key", key.prefix)
    with run_logged(kind="partner_api.push", target=f"partner API push ({key.name})",
                    deployment=deployment) as run:
        with transaction.atomic():
            result = readings_ingest(deployment=deployment, records=incoming, source=source,
                                     run=run)
            # Core indexes count only the objects handed over: map them back to the batch.
            rejections = [(positions[r.index], _WIRE_FIELD.get(r.field, r.field), r.reason)
                          for r in result.rejections]
            if not_objects:
                quarantine_add(
                    source=source, deployment_id=deployment.pk, kind=Quarantine.Kind.RECORD,
                    run=run, entries=[Refused(_NOT_AN_OBJECT,
                                              quarantine_payload(raw=_json(records[i])))
                                      for i in not_objects])
                rejections = sorted(rejections + [(i, None, _NOT_AN_OBJECT)
                                                  for i in not_objects])
        run.counts = {**result.as_counts(), "quarantined": len(rejections),
                      "received": len(records)}
        if rejections:
            run.status = Run.Status.PARTIAL if result.accepted else Run.Status.FAILED
            run.error = f"{len(rejections)} of {len(records)} readings rejected"
    body = {
        "received": len(records),
        "accepted": result.accepted,
        "inserted": result.inserted,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "duplicates": result.duplicates,
        "rejected": len(rejections),
        "rejections": [{"index": i, "field": f, "reason": r} for i, f, r in rejections],
    }
    # As the asset and meter upserts: 201 when something new was stored, 200 otherwise.
    return Answer(201 if result.inserted else 200, body)


def _reading_in(item: dict[str, Any]) -> ReadingIn:
    """The wire record (`meter`, not core's `device`); missing keys fail core validation."""
    get = item.get
    return ReadingIn(device=get("meter", ""), parameter=get("parameter", ""), ts=get("ts", ""),
                     value=get("value"), period_end=get("period_end"),
                     estimated=get("estimated", False), quality=get("quality", 0),
                     cost=get("cost"), currency=get("currency") or "")


def _json(item: Any) -> Any:
    """The raw item if the database can store it as JSON (no NaN or infinity), else its repr."""
    try:
        json.dumps(item, allow_nan=False)
        return item
    except (TypeError, ValueError):
        return repr(item)


# --- housekeeping -------------------------------------------------------------------------

def tombstones_purge(*, older_than: dt.timedelta | None = None) -> int:
    """Forget deletions once the documented retention has passed."""
    keep = older_than or dt.timedelta(days=settings.PARTNER_API_TOMBSTONE_DAYS)
    deleted, _ = Tombstone.objects.filter(deleted_at__lt=timezone.now() - keep).delete()
    return deleted


def idempotency_purge(*, older_than: dt.timedelta = dt.timedelta(days=1)) -> int:
    """Forget first answers once no client would still retry them."""
    deleted, _ = IdempotencyRecord.objects.filter(
        created_at__lt=timezone.now() - older_than).delete()
    return deleted
