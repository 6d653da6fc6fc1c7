"""Streams: creation with default channels, and planning readings into ordered batches.

A batch is a slice of one stream's packets in time order (up to WATTICS_BATCH_PACKETS),
built when planned and stored in the batch payload: what ops see in the admin is exactly
what goes on the wire, and sending needs no query per packet. The last batch of a planning
round carries the round's seq range, so the link's cursor moves once the round is sent.
Wattics takes one packet per POST, so a batch's packets go one by one, in order, and the
stream's `sent_through_ts` records how far a batch got (a retry resumes after it).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from apps.core.fanout import commit_seq_top, link_examined
from apps.core.models import Device, Parameter, Quarantine, Reading
from apps.core.selectors import readings_of_pairs, readings_seq_upto
from apps.core.services import (
    Refused,
    batch_enqueue,
    link_get_or_create,
    quarantine_add,
    quarantine_payload,
    reading_payload,
)
from apps.wattics.models import WatticsChannel, WatticsLatePacket, WatticsStream
from apps.wattics.schemas import (
    DEFAULT_ELECTRICITY_CHANNELS,
    UnitError,
    build_packet,
    convert,
    unit_factor,
)

PLATFORM = "wattics"


@dataclass(frozen=True, slots=True)
class Channel:
    device_id: int
    parameter_id: int
    field: str
    factor: float


def _quarantine_overflows(stream: WatticsStream, refused: list[tuple]) -> None:
    """Readings too large for their field's unit: never sent, kept with the reason (once)."""
    if not refused:
        return
    which = Q()
    for device_id, parameter_id, ts, _, _ in refused:
        which |= Q(device_id=device_id, parameter_id=parameter_id, ts=ts)
    readings = {(r.device_id, r.parameter_id, r.ts): r for r in Reading.objects.filter(which)
                .select_related("device", "parameter")}
    quarantine_add(
        source=Quarantine.source_for(PLATFORM, "stream", stream.meter_id),
        deployment_id=stream.deployment_id, kind=Quarantine.Kind.READING,
        entries=[Refused(
            f"not sent to Wattics stream {stream.meter_id}: {value!r} is beyond any number "
            f"in {channel.field}'s unit (factor {channel.factor:g}); correct the reading",
            quarantine_payload(reading_payload(readings[(device_id, parameter_id, ts)]),
                               context={"device_id": device_id, "parameter_id": parameter_id,
                                        "field": channel.field}))
            for device_id, parameter_id, ts, value, channel in refused
            if (device_id, parameter_id, ts) in readings])


@dataclass(slots=True)
class PlanResult:
    readings: int = 0
    packets: int = 0
    late_readings: int = 0
    late_packets: int = 0
    held_readings: int = 0  # already at Wattics before the stream started
    batches: int = 0


def stream_create(
    *,
    device: Device,
    meter_id: str,
    kind: str,
    interval_seconds: int = 900,
    channels: dict[str, str] | None = None,
    timezone: str = "",
    start_at: dt.datetime | None = None,
) -> WatticsStream:
    """A stream and its delivery link; electricity defaults to totals on phase 1.

    `channels` maps packet fields to parameter keys ({"value": "gas_volume"}, …).
    """
    if channels is None:
        if kind != WatticsStream.Kind.ELECTRICITY:
            raise ValidationError("a single-value stream needs channels={'value': <parameter>}")
        channels = DEFAULT_ELECTRICITY_CHANNELS
    with transaction.atomic():
        link = link_get_or_create(
            platform=PLATFORM, name=f"wattics {meter_id}", deployment=device.deployment
        )
        stream = WatticsStream.objects.create(
            deployment=device.deployment, device=device, meter_id=meter_id, kind=kind,
            interval_seconds=interval_seconds, timezone=timezone, start_at=start_at, link=link,
        )
        parameters = {p.key: p for p in Parameter.objects.filter(key__in=channels.values())}
        missing = set(channels.values()) - set(parameters)
        if missing:
            raise ValidationError(f"unknown parameter(s): {', '.join(sorted(missing))}")
        WatticsChannel.objects.bulk_create(
            WatticsChannel(stream=stream, field=field, parameter=parameters[key])
            for field, key in channels.items()
        )
        stream_channels(stream=stream)  # validates units and kinds
    return stream


def stream_channels(*, stream: WatticsStream) -> list[Channel]:
    """The stream's channels with unit factors; raises ValidationError on a bad mapping."""
    rows = list(WatticsChannel.objects.filter(stream=stream).select_related("parameter",
                                                                            "device"))
    errors = []
    if not rows:
        errors.append("the stream has no channels: map at least one field to a parameter")
    fields = {r.field for r in rows}
    if stream.kind == WatticsStream.Kind.SINGLE and fields != {"value"}:
        errors.append("a single-value stream has exactly one channel, the field 'value'")
    if stream.kind == WatticsStream.Kind.ELECTRICITY and "value" in fields:
        errors.append("an electricity stream uses the per-phase fields, not 'value'")
    channels = []
    for row in rows:
        if row.device_id and row.device.deployment_id != stream.deployment_id:
            errors.append(f"{row.field}: device {row.device} belongs to another deployment")
            continue
        if row.field.startswith("pC_") and row.parameter.kind != Parameter.Kind.CUMULATIVE:
            errors.append(f"{row.field} is energy since the meter's start: map a cumulative "
                          f"parameter (e.g. active_energy), not {row.parameter.key}")
            continue
        try:
            factor = unit_factor(row.field, row.source_unit or row.parameter.unit)
        except UnitError as exc:
            errors.append(str(exc))
            continue
        channels.append(Channel(row.device_id or stream.device_id, row.parameter_id, row.field,
                                factor))
    if errors:
        raise ValidationError(errors)
    return channels


def _cut(candidates, limit: int) -> dt.datetime | None:
    """The last instant of this round: whole instants holding about `limit` readings.

    Wattics takes one packet per instant, in time order, and a packet sent without one of its
    channels can never be completed (a later packet at the same instant is discarded). So a
    round ends on an instant boundary: the instant of the `limit`-th reading is taken whole.
    """
    at_limit = list(candidates.order_by("ts").values_list("ts", flat=True)[limit - 1:limit])
    return at_limit[0] if at_limit else None


def stream_plan(*, stream: WatticsStream) -> PlanResult:
    """Turn the stream's new readings into batches of packets, in time order.

    A round looks at the readings changed since `examined_seq`, up to a snapshot of the
    newest seq, and plans them by time, whole instants at a time. A round that cannot take
    them all (more than WATTICS_PLAN_MAX_READINGS) plans the earliest instants, keeps
    `examined_seq` and remembers its snapshot in `round_seq`: the next round goes on after
    `planned_ts` with the same readings, so no instant is ever split between two rounds.

    Readings at or before what is already planned (or already at Wattics) can never be
    delivered: Wattics discards packets that are not chronological. They are recorded as
    late packets and counted on the stream, never sent. On a stream's very first round,
    readings up to the packet Wattics already held when the stream started (a meter fed
    before, by an earlier stream) are counted as already at Wattics instead.
    """
    result = PlanResult()
    # Read before the readings (see datasource_plan): a round that plans everything it finds
    # has examined the stream's readings up to this commit.
    examined = commit_seq_top(deployment_id=stream.deployment_id)
    channels = stream_channels(stream=stream)
    by_pair = {(c.device_id, c.parameter_id): c for c in channels}
    zone = stream.zone_name
    with transaction.atomic():
        locked = WatticsStream.objects.select_for_update().get(pk=stream.pk)
        changed = readings_of_pairs(by_pair, after_seq=locked.examined_seq)
        snapshot = readings_seq_upto(changed)
        if snapshot is None:
            link_examined(link_id=locked.link_id, seq=examined)
            return result
        scope = changed.filter(seq__lte=snapshot)
        if locked.round_seq is not None and locked.planned_ts is not None:
            # Planned by the earlier rounds of this sweep, and unchanged since.
            scope = scope.exclude(seq__lte=locked.round_seq, ts__lte=locked.planned_ts)
        if locked.start_at:
            scope = scope.filter(ts__gte=locked.start_at)
        marks = [t for t in (locked.planned_ts, locked.last_accepted_ts) if t is not None]
        watermark = max(marks) if marks else None
        candidates = scope if watermark is None else scope.filter(ts__gt=watermark)
        cut = _cut(candidates, settings.WATTICS_PLAN_MAX_READINGS)
        partial = cut is not None and candidates.filter(ts__gt=cut).exists()
        first_round = locked.examined_seq == 0 and locked.planned_ts is None
        held_through = locked.last_accepted_ts if first_round else None

        fields: dict[dt.datetime, dict[str, float]] = defaultdict(dict)
        counts: dict[dt.datetime, int] = defaultdict(int)
        rows = (scope.filter(ts__lte=cut) if partial else scope).values_list(
            "device_id", "parameter_id", "ts", "value")
        refused = []
        for device_id, parameter_id, ts, value in rows.iterator(chunk_size=5000):
            result.readings += 1
            if held_through is not None and ts <= held_through:
                result.held_readings += 1
                continue
            channel = by_pair[(device_id, parameter_id)]
            converted = convert(value, channel.factor)
            if not math.isfinite(converted):
                # A huge reading overflows in the unit conversion; JSON has no infinity.
                refused.append((device_id, parameter_id, ts, value, channel))
                continue
            fields[ts][channel.field] = converted
            counts[ts] += 1
        _quarantine_overflows(locked, refused)
        packets, late = [], []
        for ts in sorted(fields):
            packet = build_packet(locked.meter_id, ts, zone, fields[ts])
            if watermark is not None and ts <= watermark:
                late.append(WatticsLatePacket(
                    stream=locked, ts=ts, packet=packet, readings=counts[ts],
                    reason=(f"older than {watermark.isoformat()}, already planned or at "
                            "Wattics: Wattics discards packets sent out of order"),
                ))
                result.late_readings += counts[ts]
            else:
                packets.append((ts, packet))
        WatticsLatePacket.objects.bulk_create(late)
        result.late_packets, result.packets = len(late), len(packets)
        size = settings.WATTICS_BATCH_PACKETS
        chunks = [packets[i:i + size] for i in range(0, len(packets), size)]
        for number, chunk in enumerate(chunks):
            # The sweep's last batch carries its seq range: the link's cursor moves once
            # everything up to the snapshot is at Wattics.
            last = number == len(chunks) - 1 and not partial
            batch_enqueue(
                link=locked.link,
                seq_from=locked.examined_seq if last else None,
                seq_to=snapshot if last else None,
                payload={"packets": [p for _, p in chunk]},
                item_count=len(chunk),
                key=f"{PLATFORM}:{locked.link_id}:{locked.pk}:{snapshot}:"
                    f"{chunk[0][0].timestamp():.0f}:{number}",
            )
        result.batches = len(chunks)
        changes: dict = {"late_count": locked.late_count + result.late_readings,
                         "held_count": locked.held_count + result.held_readings}
        if held_through is not None:
            changes["held_through_ts"] = held_through
        if partial:
            changes.update(round_seq=snapshot, planned_ts=cut)
        else:
            changes.update(examined_seq=snapshot, round_seq=None)
        if packets:
            changes["planned_ts"] = packets[-1][0]
            times = ([locked.planned_ts] if locked.planned_ts else []) + [t for t, _ in packets]
            gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
            if len(gaps) >= 4:
                changes["observed_interval_seconds"] = int(statistics.median(gaps))
        WatticsStream.objects.filter(pk=locked.pk).update(**changes)
        if not partial:
            link_examined(link_id=locked.link_id, seq=examined)
    for name, value in changes.items():
        setattr(stream, name, value)
    return result
