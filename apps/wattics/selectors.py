"""Reads: which credentials a stream uses, its backlog, its holes and cadence."""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
from dataclasses import dataclass

from django.db.models import BigIntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.utils import timezone

from apps.core.models import Device, OutboundBatch, Quarantine
from apps.core.selectors import LinkAccounts, readings_of_pairs
from apps.wattics.models import WatticsAccount, WatticsChannel, WatticsLatePacket, WatticsStream
from apps.wattics.schemas import convert, parse_timestamp, unit_factor

PUSH_RUN_KIND = "wattics.push"
BACKFILL_RUN_KIND = "wattics.backfill"
LEVELS = ("device", "site", "deployment", "partner")  # most specific first


def account_for_device(*, device: Device) -> WatticsAccount | None:
    """The most specific account covering the device: meter, site, end-user, partner."""
    scope = (
        Q(device_id=device.pk)
        | Q(deployment_id=device.deployment_id)
        | Q(partner__members__deployment_id=device.deployment_id)
    )
    if device.site_id:
        scope |= Q(site_id=device.site_id)
    accounts = list(WatticsAccount.objects.filter(scope).distinct())

    def rank(account: WatticsAccount) -> int:
        return next(i for i, level in enumerate(LEVELS) if getattr(account, f"{level}_id"))

    return min(accounts, key=rank, default=None)


def account_for_stream(*, stream: WatticsStream) -> WatticsAccount | None:
    return account_for_device(device=stream.device)


def streams_of_account(*, account: WatticsAccount) -> list[WatticsStream]:
    """Streams that send with this account (a more specific account elsewhere wins)."""
    if account.device_id:
        candidates = WatticsStream.objects.filter(device_id=account.device_id)
    elif account.site_id:
        candidates = WatticsStream.objects.filter(device__site_id=account.site_id)
    elif account.deployment_id:
        candidates = WatticsStream.objects.filter(deployment_id=account.deployment_id)
    else:
        candidates = WatticsStream.objects.filter(
            deployment__wattics_partner_member__partner_id=account.partner_id
        )
    candidates = candidates.select_related("device", "link")
    return [s for s in candidates if (found := account_for_stream(stream=s)) and
            found.pk == account.pk]


def streams_with_backlog(queryset: QuerySet[WatticsStream]) -> QuerySet[WatticsStream]:
    """Streams annotated with `backlog`: packets planned and not yet sent.

    Only open batches are summed (sent ones pile up for ever), one subquery per stream.
    """
    open_items = (OutboundBatch.objects.filter(link=OuterRef("link"),
                                              state__in=OutboundBatch.OPEN_STATES)
                  .order_by().values("link").annotate(n=Sum("item_count")).values("n"))
    return queryset.annotate(backlog=Subquery(open_items, output_field=BigIntegerField()))


def stream_packet_times(
    *, stream: WatticsStream, since: dt.datetime, until: dt.datetime | None = None
) -> list[dt.datetime]:
    """The distinct instants at which the stream has data (one packet each)."""
    pairs = {(channel.device_id or stream.device_id, channel.parameter_id)
             for channel in WatticsChannel.objects.filter(stream=stream)}
    if not pairs:
        return []
    qs = readings_of_pairs(pairs).filter(ts__gte=since)
    if until is not None:
        qs = qs.filter(ts__lt=until)
    if stream.start_at:
        qs = qs.filter(ts__gte=stream.start_at)
    return sorted(set(qs.values_list("ts", flat=True)))


@dataclass(frozen=True, slots=True)
class Hole:
    after: dt.datetime  # last packet before the hole
    before: dt.datetime  # first packet after it
    missing: int  # registered intervals with no packet


@dataclass(frozen=True, slots=True)
class Cadence:
    registered_seconds: int
    observed_seconds: int | None
    holes: list[Hole]
    packets: int

    @property
    def mismatch(self) -> bool:
        """Data less frequent than registered: Wattics shows nothing (the seed's warning)."""
        return self.observed_seconds is not None and self.observed_seconds > self.registered_seconds

    @property
    def missing_intervals(self) -> int:
        return sum(h.missing for h in self.holes)


def observed_interval(times: list[dt.datetime]) -> int | None:
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    return int(statistics.median(gaps)) if gaps else None


def stream_cadence(
    *, stream: WatticsStream, days: int = 7, now: dt.datetime | None = None
) -> Cadence:
    """Compare the stream's data cadence with its registered interval; list the holes."""
    now = now or timezone.now()
    times = stream_packet_times(stream=stream, since=now - dt.timedelta(days=days), until=now)
    interval = stream.interval_seconds
    holes = []
    for a, b in itertools.pairwise(times):
        gap = (b - a).total_seconds()
        if gap > interval * 1.5:
            holes.append(Hole(after=a, before=b, missing=int(gap // interval) - 1 or 1))
    return Cadence(registered_seconds=interval, observed_seconds=observed_interval(times),
                   holes=holes, packets=len(times))


def stream_accounts(*, stream: WatticsStream) -> LinkAccounts:
    """The stream's readings (its channels, from its start): at Wattics, waiting, or
    undeliverable by reason (already there before the stream, late, refused, unconvertible).
    """
    accounts = LinkAccounts(scope="readings of the stream's channels from its start")
    channels = list(WatticsChannel.objects.filter(stream=stream).select_related("parameter"))
    if not channels:
        return accounts
    fields = {(c.device_id or stream.device_id, c.parameter_id): c.field for c in channels}
    readings = readings_of_pairs(fields)
    if stream.start_at:
        readings = readings.filter(ts__gte=stream.start_at)
    accounts.accepted = readings.count()
    undeliverable = accounts.undeliverable
    if stream.held_through_ts:
        held = readings.filter(ts__lte=stream.held_through_ts).count()
        if held:
            undeliverable["at Wattics before this stream started"] = held
        readings = readings.filter(ts__gt=stream.held_through_ts)
    # Not yet examined, or in a batch not yet done.
    examined = Q(seq__lte=stream.examined_seq)
    if stream.round_seq is not None and stream.planned_ts is not None:
        examined |= Q(seq__lte=stream.round_seq, ts__lte=stream.planned_ts)
    done = Q(ts__lte=stream.sent_through_ts) if stream.sent_through_ts else Q(pk__in=[])
    accounts.pending = readings.exclude(examined & done).count()
    settled = {(d, p, ts): v for d, p, ts, v in readings.filter(examined & done).values_list(
        "device_id", "parameter_id", "ts", "value")}
    stamps = {ts for _, _, ts in settled}
    refused_at = set()
    for entry in Quarantine.objects.filter(
            source=Quarantine.source_for("wattics", "stream", stream.meter_id)):
        payload, context = entry.payload, entry.payload.get("context") or {}
        if entry.kind == Quarantine.Kind.RECORD:  # a packet refused by Wattics (400):
            # every reading of that instant
            refused_at.add(parse_timestamp(payload["raw"]["tsISO8601"]))
        elif (key := (context.get("device_id"), context.get("parameter_id"),
                      dt.datetime.fromisoformat(payload.get("ts", "")))) in settled:
            settled.pop(key)
            undeliverable["beyond any number in the field's unit"] = (
                undeliverable.get("beyond any number in the field's unit", 0) + 1)
    late = {}
    for packet in WatticsLatePacket.objects.filter(stream=stream, ts__in=stamps):
        late.setdefault(packet.ts, []).append(packet.packet)
    factors = {c.field: unit_factor(c.field, c.source_unit or c.parameter.unit)
               for c in channels}
    for (device_id, parameter_id, ts), value in settled.items():
        field = fields[(device_id, parameter_id)]
        if ts in refused_at:
            reason = "refused by Wattics (400, quarantined)"
        elif any(p.get(field) == convert(value, factors[field]) for p in late.get(ts, [])):
            reason = "late: Wattics already had a later packet (out of order)"
        else:
            accounts.delivered += 1
            continue
        undeliverable[reason] = undeliverable.get(reason, 0) + 1
    return accounts.close()
