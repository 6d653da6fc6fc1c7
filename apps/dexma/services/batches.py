"""What goes out to IS3: checked configuration, batches rebuilt from their bounds, the sender."""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.db import connections, transaction
from django.db.models import DurationField, ExpressionWrapper, F, TextField
from django.db.models.functions import Cast

from apps.core.models import Device, OutboundBatch, Parameter, Quarantine, Reading
from apps.core.selectors import readings_of_pairs
from apps.core.services import (
    Outcome,
    Refused,
    quarantine_add,
    quarantine_payload,
    reading_payload,
)
from apps.dexma.client import Is3Client, Is3Value, is3_body
from apps.dexma.models import DexmaDatasource, SelectedDevice
from apps.dexma.schemas import (
    MAX_VALUES,
    Channel,
    Is3MappingError,
    code_for,
    did_check,
    frequency_of,
    misalignment,
)

logger = logging.getLogger(__name__)

PLATFORM = "dexma"
DISABLED_RETRY_SECONDS = 300
State = OutboundBatch.State


def _frequencies(device: Device, parameter: Parameter) -> set[str]:
    lengths = (
        Reading.objects.filter(device=device, parameter=parameter, period_end__isnull=False)
        .annotate(length=ExpressionWrapper(F("period_end") - F("ts"),
                                           output_field=DurationField()))
        .values_list("length", flat=True).distinct().order_by()[:50]
    )
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return {frequency_of(start, start + length) for length in lengths}


def selection_resolutions(
    *, devices: dict[int, Device], parameters: dict[int, set[int]],
    fixed: dict[int, dict[str, str]] | None = None,
) -> dict[int, dict[str, str]]:
    """Check what the platform can take and fix each interval parameter's resolution.

    Refuses a did over 25 characters, a parameter without a DEXMA code or with an operation
    that has none, an interval frequency that has none, and a device parameter with two
    discrete resolutions (the seed: a device parameter cannot have two at once).
    Returns {device id: {parameter id: frequency}} for interval parameters with readings.
    A resolution already in `fixed` (what the datasource sent before) stays as it is: the
    platform holds it, and readings at any other resolution are quarantined when sent.
    """
    fixed = fixed or {}
    catalogue = {p.pk: p for p in Parameter.objects.filter(
        pk__in={p for ps in parameters.values() for p in ps})}
    result: dict[int, dict[str, str]] = {}
    errors: list[str] = []
    for device_id, parameter_ids in parameters.items():
        device = devices[device_id]
        try:
            did_check(device.local_id)
        except Is3MappingError as exc:
            errors.append(f"{device.name}: {exc}")
            continue
        by_code: dict[int, set[str]] = defaultdict(set)
        result[device_id] = {}
        for parameter_id in sorted(parameter_ids):
            parameter = catalogue[parameter_id]
            try:
                if parameter.kind != Parameter.Kind.INTERVAL:
                    code_for(parameter)
                    continue
                kept = fixed.get(device_id, {}).get(str(parameter_id))
                found = {kept} if kept else _frequencies(device, parameter)
                for frequency in found:
                    code_for(parameter, frequency)
            except Is3MappingError as exc:
                errors.append(f"{device.name}: {exc}")
                continue
            if len(found) > 1:
                errors.append(
                    f"{device.name}: '{parameter.key}' has readings at {len(found)} resolutions "
                    f"({', '.join(sorted(found))}); a device parameter cannot have two discrete "
                    "resolutions on DEXMA: send one of them, or a cumulative index instead")
                continue
            if found:
                result[device_id][str(parameter_id)] = next(iter(found))
                by_code[parameter.dexma_code] |= found
        for code, found in by_code.items():
            if len(found) > 1:
                errors.append(f"{device.name}: interval parameters of code {code} at "
                              f"{', '.join(sorted(found))}; a device parameter cannot have two "
                              "discrete resolutions on DEXMA")
    if errors:
        raise Is3MappingError("; ".join(errors))
    return result


def _first_frequency(readings, zone: ZoneInfo) -> str | None:
    """The frequency of the earliest of these interval readings that IS3 would keep (a
    misaligned one is quarantined, never sent: it fixes nothing on the platform)."""
    for start, end in readings.filter(period_end__isnull=False).order_by("ts").values_list(
            "ts", "period_end")[:500]:
        try:
            frequency = frequency_of(start, end)
        except Is3MappingError:
            continue
        if not misalignment(start, end, frequency, zone):
            return frequency
    return None


def channels_of(datasource: DexmaDatasource) -> dict[tuple[int, int], Channel]:
    channels = {}
    for selection in datasource.selections.select_related("device").prefetch_related(
        "parameters"
    ):
        for parameter in selection.parameters.all():
            channels[(selection.device_id, parameter.pk)] = Channel(
                device_id=selection.device_id, parameter_id=parameter.pk,
                did=selection.device.local_id, parameter=parameter,
                frequency=selection.resolutions.get(str(parameter.pk)),
            )
    return channels


@dataclass(slots=True)
class Built:
    values: list[Is3Value] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)  # (reading id, reason)


class Converter:
    """Readings to IS3 values in the datasource's zone; a timestamp is converted once."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._stamps: dict[dt.datetime, str] = {}
        self._intervals: dict[tuple[dt.datetime, dt.datetime | None], tuple[str, str]] = {}
        self._codes: dict[tuple[int, str | None], int] = {}

    def stamp(self, ts: dt.datetime) -> str:
        text = self._stamps.get(ts)
        if text is None:
            text = self._stamps[ts] = ts.astimezone(self.zone).isoformat()
        return text

    def interval(self, ts: dt.datetime, end: dt.datetime | None) -> tuple[str, str]:
        """(frequency, reason it cannot go)."""
        key = (ts, end)
        found = self._intervals.get(key)
        if found is None:
            try:
                frequency = frequency_of(ts, end)
                found = (frequency, misalignment(ts, end, frequency, self.zone))
            except Is3MappingError as exc:
                found = ("", str(exc))
            self._intervals[key] = found
        return found

    def code(self, channel: Channel, frequency: str | None = None) -> int:
        key = (channel.parameter_id, frequency)
        code = self._codes.get(key)
        if code is None:
            code = self._codes[key] = channel.code(frequency)
        return code

    def value(self, channel: Channel, ts: dt.datetime, end: dt.datetime | None,
              v: float) -> Is3Value | str:
        if not channel.interval:
            return Is3Value(channel.did, self.stamp(ts), self.code(channel), v)
        frequency, reason = self.interval(ts, end)
        if reason:
            return reason
        if channel.frequency and frequency != channel.frequency:
            return (f"{frequency} interval, but this device parameter is configured at "
                    f"{channel.frequency}: a device parameter cannot have two discrete "
                    "resolutions on DEXMA")
        return Is3Value(channel.did, self.stamp(ts), self.code(channel, frequency), v)


def zone_of(datasource: DexmaDatasource) -> ZoneInfo:
    return ZoneInfo(datasource.timezone or "UTC")


def batch_readings(batch: OutboundBatch, datasource: DexmaDatasource):
    """The readings a batch was planned for, in chronological order."""
    payload = batch.payload or {}
    pairs = [tuple(p) for p in payload.get("pairs", [])]
    if "backfill" in payload:
        qs = readings_of_pairs(pairs, through_seq=payload["seq_max"]).filter(
            ts__gte=payload["from"], ts__lt=payload["to"])
    else:
        qs = readings_of_pairs(pairs, after_seq=batch.seq_from, through_seq=batch.seq_to)
    return qs.order_by("ts", "device_id", "parameter_id")


class _Instants(dict):
    """Database text of a timestamp → aware datetime (SQLite's text is naive UTC)."""

    def __call__(self, text: str | None) -> dt.datetime | None:
        if text is None:
            return None
        found = self.get(text)
        if found is None:
            found = dt.datetime.fromisoformat(text)
            if found.tzinfo is None:
                found = found.replace(tzinfo=dt.UTC)
            self[text] = found
        return found


def batch_build(batch: OutboundBatch, datasource: DexmaDatasource,
                channels: dict[tuple[int, int], Channel]) -> Built:
    built = Built()
    convert = Converter(zone_of(datasource))
    # Timestamps come as text and are parsed once per distinct value: a batch of 5,000 holds
    # few distinct instants, and parsing each row's two datetimes dominated the build.
    rows = batch_readings(batch, datasource).values_list(
        "pk", "device_id", "parameter_id", Cast("ts", TextField()),
        Cast("period_end", TextField()), "value")
    instant = _Instants()
    # At most 5,000 rows: one plain fetch beats a server-side cursor.
    for pk, device_id, parameter_id, ts_text, end_text, v in rows:
        ts, end = instant(ts_text), instant(end_text)
        channel = channels.get((device_id, parameter_id))
        if channel is None:  # no longer selected: the platform would bill a datapoint
            continue
        value = convert.value(channel, ts, end, v)
        if isinstance(value, str):
            built.refused.append((pk, value))
        else:
            built.values.append(value)
    if len(built.values) > MAX_VALUES:  # the bounds only ever shrink; never send past the limit
        raise Is3MappingError(f"batch {batch.pk} rebuilt with {len(built.values)} values, more "
                              f"than IS3's {MAX_VALUES}; requeue after replanning")
    return built


def _quarantine(datasource: DexmaDatasource, refused: list[tuple[int, str]]) -> int:
    """Misaligned or unmappable readings: never sent, kept with the reason (once)."""
    if not refused:
        return 0
    readings = {r.pk: r for r in Reading.objects.filter(
        pk__in=[pk for pk, _ in refused]).select_related("device", "parameter")}
    return quarantine_add(
        source=Quarantine.source_for(PLATFORM, "datasource", datasource.key),
        deployment_id=datasource.deployment_id, kind=Quarantine.Kind.READING,
        entries=[Refused(f"not sent to DEXMA datasource '{datasource.name}': {reason}",
                         quarantine_payload(reading_payload(readings[pk]), context={
                             "reading_id": pk, "datasource": datasource.pk}))
                 for pk, reason in refused if pk in readings])


class Is3Sender:
    """Sends one datasource's batches; `outbox_dispatch` calls it once per claimed batch.

    With `prefetch`, the next batch of the link is built in a second thread while IS3
    answers the current one (a backfill is a long queue of batches sent one at a time).
    The prefetch needs committed data: it uses its own database connection.
    """

    def __init__(self, *, datasource: DexmaDatasource, client: Is3Client,
                 prefetch: bool = False, channels: dict | None = None) -> None:
        self.datasource = datasource
        self.client = client
        self.channels = channels if channels is not None else channels_of(datasource)
        self.values_sent = 0
        self.quarantined = 0
        self._pool = ThreadPoolExecutor(max_workers=1) if prefetch else None
        self._next: tuple[int, Future] | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.submit(connections.close_all).result()
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> Is3Sender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _prefetch_after(self, batch: OutboundBatch, datasource: DexmaDatasource) -> None:
        following = OutboundBatch.objects.filter(
            link_id=batch.link_id, position__gt=batch.position, state__in=OutboundBatch.OPEN_STATES
        ).order_by("position").first()
        self._next = None
        if following is not None and self._pool is not None:
            self._next = (following.pk, self._pool.submit(
                batch_build, following, datasource, self.channels))

    def _built(self, batch: OutboundBatch, datasource: DexmaDatasource) -> Built:
        if self._next is not None and self._next[0] == batch.pk:
            try:
                return self._next[1].result()
            except Exception:  # built again below, where a failure is recorded properly
                logger.warning("prefetch of batch %s failed; building it again", batch.pk)
        return batch_build(batch, datasource, self.channels)

    def _fix_resolutions(self, batch: OutboundBatch) -> None:
        """Fix the resolution of interval device parameters this batch sends first.

        A device selected before it had readings has no resolution yet. IS3 keeps one
        discrete resolution per device parameter and silently drops values of another (seed:
        "a device parameter cannot have two discrete resolutions at once"), so the first
        reading sent decides, and is recorded before it goes: later readings of another
        resolution are quarantined, never sent to be lost. Locked per selection, so a live
        delivery and a backfill of the same datasource cannot fix two different ones.
        """
        open_pairs = [pair for pair, c in self.channels.items()
                      if c.interval and not c.frequency]
        if not open_pairs:
            return
        readings = batch_readings(batch, self.datasource)
        changed = False
        with transaction.atomic():
            selections = {s.device_id: s for s in SelectedDevice.objects.select_for_update()
                          .filter(datasource_id=self.datasource.pk,
                                  device_id__in={d for d, _ in open_pairs})}
            for device_id, parameter_id in open_pairs:
                selection = selections.get(device_id)
                if selection is None:
                    continue
                key = str(parameter_id)
                if key not in selection.resolutions:
                    frequency = _first_frequency(readings.filter(
                        device_id=device_id, parameter_id=parameter_id),
                        zone_of(self.datasource))
                    if frequency is None:
                        continue
                    code = self.channels[(device_id, parameter_id)].parameter.dexma_code
                    # The platform's device parameter is the did and the base code: another
                    # interval parameter of the same code may have fixed it already.
                    frequency = next(
                        (selection.resolutions[str(p)] for (d, p), c in self.channels.items()
                         if d == device_id and c.interval and c.parameter.dexma_code == code
                         and str(p) in selection.resolutions), frequency)
                    selection.resolutions = {**selection.resolutions, key: frequency}
                    selection.save(update_fields=["resolutions"])
                    logger.info("DEXMA datasource %s: %s/%s fixed at %s by its first reading",
                                self.datasource.pk, device_id, parameter_id, frequency)
                changed = True
        if changed:
            self.channels = channels_of(self.datasource)
            self._next = None  # a prefetched build used the open resolutions

    def __call__(self, batch: OutboundBatch) -> Outcome:
        # The local state decides (asking the platform before each insert would exhaust the
        # APIv3 budget): a datasource disabled after planning gets nothing.
        current = DexmaDatasource.objects.filter(pk=self.datasource.pk).first()
        if current is None or not current.sendable:
            return Outcome(ok=False, retry_after=DISABLED_RETRY_SECONDS, error=(
                f"DEXMA datasource '{self.datasource.name}' is not enabled here (enabled, "
                "consent and platform status); not sent, kept until it is enabled again"))
        self._fix_resolutions(batch)
        built = self._built(batch, current)
        if self._pool is not None:
            self._prefetch_after(batch, current)
        self.quarantined += _quarantine(current, built.refused)
        if not built.values:
            return Outcome(ok=True, body="nothing to send (all refused or deselected)")
        self.client.insert(source_key=current.key, source_token=current.source_token,
                           body=is3_body(built.values))
        self.values_sent += len(built.values)
        return Outcome(ok=True, status=200, body="OK")
