"""Readings to DEXMA through IS3: configuration checks, live delivery, backfill, verification.

Batches go through the core outbox, one delivery link per DEXMA datasource (ordered).
A batch does not store its values; it stores bounds from which it is rebuilt the same way
every time it is sent:

- live: the seq range (seq_from, seq_to], planned so that it holds at most 5,000 values of
  the datasource's device parameters. A reading changed after planning gets a new seq, so it
  leaves the range (which only shrinks) and lands in a later batch: nothing is lost.
- backfill: a time window [from, to) of whole timestamps holding at most 5,000 values among
  readings with seq <= the backfill's snapshot; what changes later is live delivery's.

Both also store the device parameters they were planned for, so a selection changed between
planning and sending cannot grow a batch past the IS3 limit.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.db import connections, transaction
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Q, Sum
from django.utils import timezone

from apps.core.http import HubHTTPError
from apps.core.models import (
    DeliveryLink,
    Device,
    OutboundBatch,
    Parameter,
    Quarantine,
    Reading,
)
from apps.core.services import Outcome, batch_enqueue, link_planned_seq, outbox_dispatch
from apps.dexma.client import DexmaClient, Is3Client, Is3Value, describe_error, is3_body
from apps.dexma.mapping import (
    MAX_VALUES,
    Channel,
    MappingError,
    code_for,
    did_check,
    frequency_of,
    misalignment,
)
from apps.dexma.models import Backfill, DexmaDatasource

logger = logging.getLogger(__name__)

PLATFORM = "dexma"
DISABLED_RETRY_SECONDS = 300
State = OutboundBatch.State
OPEN = (State.PENDING, State.SENDING, State.RETRY)


# --- configuration -----------------------------------------------------------------------


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
    *, devices: dict[int, Device], parameters: dict[int, set[int]]
) -> dict[int, dict[str, str]]:
    """Check what the platform can take and fix each interval parameter's resolution.

    Refuses a did over 25 characters, a parameter without a DEXMA code or with an operation
    that has none, an interval frequency that has none, and a device parameter with two
    discrete resolutions (the seed: a device parameter cannot have two at once).
    Returns {device id: {parameter id: frequency}} for interval parameters with readings.
    """
    catalogue = {p.pk: p for p in Parameter.objects.filter(
        pk__in={p for ps in parameters.values() for p in ps})}
    result: dict[int, dict[str, str]] = {}
    errors: list[str] = []
    for device_id, parameter_ids in parameters.items():
        device = devices[device_id]
        try:
            did_check(device.local_id)
        except MappingError as exc:
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
                found = _frequencies(device, parameter)
                for frequency in found:
                    code_for(parameter, frequency)
            except MappingError as exc:
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
        raise MappingError("; ".join(errors))
    return result


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


def _pairs_q(pairs: Iterable[tuple[int, int]]) -> Q:
    by_device: dict[int, list[int]] = defaultdict(list)
    for device_id, parameter_id in pairs:
        by_device[device_id].append(parameter_id)
    cond = Q(pk__in=[])
    for device_id, parameter_ids in by_device.items():
        cond |= Q(device_id=device_id, parameter_id__in=parameter_ids)
    return cond


# --- building a batch ----------------------------------------------------------------------


@dataclass(slots=True)
class Built:
    values: list[Is3Value] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)  # (reading id, reason)


class _Converter:
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
            except MappingError as exc:
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


def _zone(datasource: DexmaDatasource) -> ZoneInfo:
    return ZoneInfo(datasource.timezone or "UTC")


def batch_readings(batch: OutboundBatch, datasource: DexmaDatasource):
    """The readings a batch was planned for, in chronological order."""
    payload = batch.payload or {}
    pairs = [tuple(p) for p in payload.get("pairs", [])]
    qs = Reading.objects.filter(_pairs_q(pairs))
    if "backfill" in payload:
        qs = qs.filter(ts__gte=payload["from"], ts__lt=payload["to"],
                       seq__lte=payload["seq_max"])
    else:
        qs = qs.filter(seq__gt=batch.seq_from, seq__lte=batch.seq_to)
    return qs.order_by("ts", "device_id", "parameter_id")


def batch_build(batch: OutboundBatch, datasource: DexmaDatasource,
                channels: dict[tuple[int, int], Channel]) -> Built:
    built = Built()
    convert = _Converter(_zone(datasource))
    rows = batch_readings(batch, datasource).values_list(
        "pk", "device_id", "parameter_id", "ts", "period_end", "value")
    # At most 5,000 rows: one plain fetch beats a server-side cursor.
    for pk, device_id, parameter_id, ts, end, v in rows:
        channel = channels.get((device_id, parameter_id))
        if channel is None:  # no longer selected: the platform would bill a datapoint
            continue
        value = convert.value(channel, ts, end, v)
        if isinstance(value, str):
            built.refused.append((pk, value))
        else:
            built.values.append(value)
    if len(built.values) > MAX_VALUES:  # the bounds only ever shrink; never send past the limit
        raise MappingError(f"batch {batch.pk} rebuilt with {len(built.values)} values, more than "
                           f"IS3's {MAX_VALUES}; requeue after replanning")
    return built


def _quarantine(datasource: DexmaDatasource, refused: list[tuple[int, str]]) -> int:
    """Misaligned or unmappable readings: never sent, kept with the reason (once)."""
    if not refused:
        return 0
    source = f"dexma:{datasource.key}"
    ids = [pk for pk, _ in refused]
    already = set(Quarantine.objects.filter(source=source, payload__reading_id__in=ids)
                  .values_list("payload__reading_id", flat=True))
    readings = {r.pk: r for r in Reading.objects.filter(pk__in=ids).select_related(
        "device", "parameter")}
    rows = []
    for pk, reason in refused:
        reading = readings.get(pk)
        if pk in already or reading is None:
            continue
        rows.append(Quarantine(
            deployment_id=datasource.deployment_id, kind=Quarantine.Kind.READING, source=source,
            reason=f"not sent to DEXMA datasource '{datasource.name}': {reason}",
            payload={"device": reading.device.external_id, "parameter": reading.parameter.key,
                     "ts": reading.ts.isoformat(), "value": reading.value,
                     "period_end": reading.period_end.isoformat() if reading.period_end else None,
                     "reading_id": pk, "datasource": datasource.pk},
        ))
    Quarantine.objects.bulk_create(rows)
    return len(rows)


class Is3Sender:
    """Sends one datasource's batches; `outbox_dispatch` calls it once per claimed batch.

    With `prefetch`, the next batch of the link is built in a second thread while IS3
    answers the current one (a backfill is a long queue of batches sent one at a time).
    The prefetch needs committed data: it uses its own database connection.
    """

    def __init__(self, *, datasource: DexmaDatasource, client: Is3Client,
                 prefetch: bool = False) -> None:
        self.datasource = datasource
        self.client = client
        self.channels = channels_of(datasource)
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
            link_id=batch.link_id, position__gt=batch.position, state__in=OPEN
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

    def __call__(self, batch: OutboundBatch) -> Outcome:
        # The local state decides (asking the platform before each insert would exhaust the
        # APIv3 budget): a datasource disabled after planning gets nothing.
        current = DexmaDatasource.objects.filter(pk=self.datasource.pk).first()
        if current is None or not current.sendable:
            return Outcome(ok=False, retry_after=DISABLED_RETRY_SECONDS, error=(
                f"DEXMA datasource '{self.datasource.name}' is not enabled here (enabled, "
                "consent and platform status); not sent, kept until it is enabled again"))
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


# --- live delivery -----------------------------------------------------------------------


@dataclass(slots=True)
class DeliveryResult:
    batches_planned: int = 0
    sent: int = 0
    failed: int = 0
    dead: int = 0
    values_sent: int = 0
    quarantined: int = 0
    skipped: str = ""

    def as_counts(self) -> dict:
        return {"planned": self.batches_planned, "sent": self.sent, "failed": self.failed,
                "dead": self.dead, "values": self.values_sent, "quarantined": self.quarantined,
                **({"skipped": self.skipped} if self.skipped else {})}


def datasource_plan(*, datasource: DexmaDatasource, max_batches: int = 20) -> int:
    """Put the datasource's new readings (seq above what is planned) into batches of at most
    5,000 values; late readings are new readings too. Returns the batches planned."""
    if datasource.link_id is None:
        return 0
    pairs = sorted(channels_of(datasource))
    if not pairs:
        return 0
    cond = _pairs_q(pairs)
    planned = 0
    for _ in range(max_batches):
        with transaction.atomic():
            link = DeliveryLink.objects.select_for_update().get(pk=datasource.link_id)
            start = link_planned_seq(link=link)
            base = Reading.objects.filter(cond, seq__gt=start)
            at_limit = list(base.order_by("seq").values_list("seq", flat=True)
                            [MAX_VALUES - 1:MAX_VALUES])
            upper = at_limit[0] if at_limit else base.aggregate(top=Max("seq"))["top"]
            if upper is None:
                break
            count = base.filter(seq__lte=upper).count()
            batch_enqueue(link=link, seq_from=start, seq_to=upper,
                          payload={"pairs": [list(p) for p in pairs]}, item_count=count)
            planned += 1
    return planned


def _dispatch(*, datasource: DexmaDatasource, result: DeliveryResult, limit: int,
              client: Is3Client | None, now: dt.datetime | None = None) -> None:
    own = client is None
    client = client or Is3Client()
    try:
        sender = Is3Sender(datasource=datasource, client=client)
        done = outbox_dispatch(send=sender, link=datasource.link, limit=limit, now=now)
    finally:
        if own:
            client.close()
    result.sent += done.sent
    result.failed += done.failed
    result.dead += done.dead
    result.values_sent += sender.values_sent
    result.quarantined += sender.quarantined


def datasource_deliver(*, datasource: DexmaDatasource, limit: int = 50,
                       client: Is3Client | None = None,
                       now: dt.datetime | None = None) -> DeliveryResult:
    """Plan new readings, then send due batches (only while the datasource is enabled)."""
    result = DeliveryResult()
    if datasource.link_id is None:
        result.skipped = "no delivery link (not registered on the platform)"
        return result
    result.batches_planned = datasource_plan(datasource=datasource)
    if not datasource.sendable:
        result.skipped = "datasource not enabled"
        return result
    _dispatch(datasource=datasource, result=result, limit=limit, client=client, now=now)
    return result


def live_start_seq() -> int:
    """Where live delivery of a new datasource starts: history goes by backfill."""
    return Reading.objects.aggregate(top=Max("seq"))["top"] or 0


# --- backfill ----------------------------------------------------------------------------


def backfill_start(*, datasource: DexmaDatasource, date_from: dt.datetime,
                   date_to: dt.datetime) -> Backfill:
    if datasource.link_id is None:
        raise MappingError(f"datasource '{datasource.name}' is not registered on the platform")
    if date_to <= date_from:
        raise MappingError("the backfill's end must be after its start")
    return Backfill.objects.create(datasource=datasource, date_from=date_from, date_to=date_to,
                                   seq_snapshot=live_start_seq())


def _backfill_key(backfill: Backfill, start: dt.datetime) -> str:
    return f"{PLATFORM}:{backfill.datasource.link_id}:bf{backfill.pk}:{start.isoformat()}"


def backfill_plan(*, backfill: Backfill) -> int:
    """Cut the history into windows of whole timestamps, each at most 5,000 values, oldest
    first; resumable from `planned_until` (batch keys make a repeat harmless)."""
    if backfill.state != Backfill.State.PLANNING:
        return 0
    datasource = backfill.datasource
    pairs = sorted(channels_of(datasource))
    start = backfill.planned_until or backfill.date_from
    counts = list(
        Reading.objects.filter(_pairs_q(pairs), ts__gte=start, ts__lt=backfill.date_to,
                               seq__lte=backfill.seq_snapshot)
        .values("ts").annotate(n=Count("pk")).order_by("ts").values_list("ts", "n")
    )
    windows: list[tuple[dt.datetime, dt.datetime, int]] = []
    window_start, size = None, 0
    for ts, n in counts:
        if n > MAX_VALUES:
            raise MappingError(f"{n} values at {ts.isoformat()}: more than IS3 takes in one "
                               "message; split the datasource")
        if window_start is not None and size + n > MAX_VALUES:
            windows.append((window_start, ts, size))
            window_start, size = None, 0
        if window_start is None:
            window_start = ts
        size += n
    if window_start is not None:
        windows.append((window_start, backfill.date_to, size))
    base_payload = {"backfill": backfill.pk, "seq_max": backfill.seq_snapshot,
                    "pairs": [list(p) for p in pairs]}
    link = datasource.link
    for window_from, window_to, size in windows:
        with transaction.atomic():
            batch_enqueue(link=link, key=_backfill_key(backfill, window_from), item_count=size,
                          payload={**base_payload, "from": window_from.isoformat(),
                                   "to": window_to.isoformat()})
            Backfill.objects.filter(pk=backfill.pk).update(
                planned_until=window_to, batches=F("batches") + 1,
                values_planned=F("values_planned") + size)
    Backfill.objects.filter(pk=backfill.pk).update(state=Backfill.State.SENDING)
    backfill.refresh_from_db()
    return len(windows)


def _backfill_batches(backfill: Backfill):
    return OutboundBatch.objects.filter(
        link_id=backfill.datasource.link_id,
        idempotency_key__startswith=f"{PLATFORM}:{backfill.datasource.link_id}:bf{backfill.pk}:")


def backfill_refresh(*, backfill: Backfill) -> Backfill:
    """Progress from the outbox itself: what IS3 acknowledged, what is still open."""
    batches = _backfill_batches(backfill)
    sent = batches.filter(state=State.SENT).aggregate(n=Sum("item_count"))["n"] or 0
    changes: dict = {"values_sent": sent}
    finished = not batches.filter(state__in=OPEN).exists()
    if backfill.state == Backfill.State.SENDING and finished:
        dead = batches.filter(state=State.DEAD).count()
        changes["state"] = Backfill.State.FAILED if dead else Backfill.State.DONE
        changes["finished_at"] = timezone.now()
        if dead:
            changes["error"] = (f"{dead} batch(es) dead: see the outbox; requeue them, "
                                "then run the backfill again")
    Backfill.objects.filter(pk=backfill.pk).update(**changes)
    backfill.refresh_from_db()
    return backfill


def backfill_run(*, backfill: Backfill, client: Is3Client | None = None,
                 progress: Callable[[Backfill], None] | None = None,
                 deadline: float | None = None, prefetch: bool = True) -> Backfill:
    """Plan what is left, then send until every backfill batch is acknowledged, the link
    stops (retry later, or broken), or `deadline` (time.monotonic) passes."""
    datasource = DexmaDatasource.objects.select_related("link").get(pk=backfill.datasource_id)
    backfill.datasource = datasource
    try:
        backfill_plan(backfill=backfill)
    except MappingError as exc:
        Backfill.objects.filter(pk=backfill.pk).update(state=Backfill.State.FAILED,
                                                       error=str(exc))
        backfill.refresh_from_db()
        return backfill
    own = client is None
    client = client or Is3Client()
    try:
        with Is3Sender(datasource=datasource, client=client, prefetch=prefetch) as sender:
            _backfill_send(backfill=backfill, datasource=datasource, sender=sender,
                           progress=progress, deadline=deadline)
    finally:
        if own:
            client.close()
    return backfill_refresh(backfill=backfill)


def _backfill_send(*, backfill: Backfill, datasource: DexmaDatasource, sender: Is3Sender,
                   progress: Callable[[Backfill], None] | None,
                   deadline: float | None) -> None:
    while datasource.sendable:
        done = outbox_dispatch(send=sender, link=datasource.link, limit=20)
        backfill = backfill_refresh(backfill=backfill)
        if progress is not None:
            progress(backfill)
        if backfill.state != Backfill.State.SENDING or not done.sent:
            break
        if deadline is not None and time.monotonic() > deadline:
            break


# --- verification ----------------------------------------------------------------------------

# Not public: APIv3 parameter keys by base code (the seed's example is EACTIVE).
READBACK_KEYS = {402: "EACTIVE"}
READBACK_OPERATIONS = {"delta": "DELTA", "avg": "AVG", "max": "MAX", "min": "MIN"}


@dataclass(slots=True)
class Verification:
    sampled: int = 0
    matched: int = 0
    differences: list[dict] = field(default_factory=list)
    error: str = ""

    @property
    def summary(self) -> str:
        if self.error:
            return f"verification failed after {self.sampled} sampled intervals: {self.error}"
        text = f"{self.matched} of {self.sampled} sampled intervals match"
        if self.differences:
            text += f"; {len(self.differences)} differ"
        return text


def _samples(qs, *, sample: int, chunks: int = 4) -> list[list]:
    """Up to `sample` readings as `chunks` runs of consecutive ones spread over the range."""
    total = qs.count()
    if not total:
        return []
    per = max(1, sample // chunks)
    runs, seen = [], set()
    for k in range(chunks):
        offset = (max(total - per, 0) * k) // max(chunks - 1, 1)
        rows = [r for r in qs[offset:offset + per] if r[0] not in seen]
        seen.update(r[0] for r in rows)
        if rows:
            runs.append(rows)
    return runs


def datasource_verify(*, datasource: DexmaDatasource, date_from: dt.datetime | None = None,
                      date_to: dt.datetime | None = None, sample: int = 48,
                      client: DexmaClient | None = None) -> Verification:
    """Read a sample of intervals per device parameter back through APIv3 and compare.

    IS3's 200 OK means accepted, not stored (the seed), so this is the proof of arrival.
    """
    date_to = date_to or timezone.now()
    date_from = date_from or date_to - dt.timedelta(days=2)
    link = datasource.link
    done = datasource.backfills.filter(state=Backfill.State.DONE).aggregate(
        top=Max("seq_snapshot"))["top"] or 0
    delivered_to = max(link.cursor if link else 0, done)
    channels = channels_of(datasource)
    convert = _Converter(_zone(datasource))
    result = Verification()
    own = client is None
    client = client or DexmaClient(datasource.installation.token)
    try:
        devices = {d.local_id: d.id for d in
                   client.devices_list(datasource_id=datasource.platform_id)}
        for (device_id, parameter_id), channel in sorted(channels.items()):
            qs = (Reading.objects.filter(device_id=device_id, parameter_id=parameter_id,
                                         ts__gte=date_from, ts__lt=date_to,
                                         seq__lte=delivered_to)
                  .order_by("ts").values_list("pk", "ts", "period_end", "value"))
            for run in _samples(qs, sample=sample):
                expected = {}
                for _, ts, end, v in run:
                    value = convert.value(channel, ts, end, v)
                    if not isinstance(value, str):  # quarantined ones were never sent
                        expected[ts] = value
                if not expected:
                    continue
                one = next(iter(expected.values()))
                if channel.interval:
                    resolution = next(k for k, f in (
                        ("QH", 0), ("H", 1), ("D", 2), ("W", 3), ("M", 4), ("HH", 6),
                        ("TM", 7), ("FM", 8)) if (one.p // 10) % 10 == f)
                    operation = READBACK_OPERATIONS[channel.parameter.operation]
                else:
                    resolution, operation = "B", "RAW"
                found: dict[dt.datetime, float] = {}
                if channel.did in devices:
                    back = client.readings_get(
                        device_id=devices[channel.did],
                        parameter_key=READBACK_KEYS.get(channel.parameter.dexma_code,
                                                        str(channel.parameter.dexma_code)),
                        resolution=resolution, operation=operation,
                        date_from=min(expected).astimezone(convert.zone).isoformat(),
                        date_to=(max(expected) + dt.timedelta(seconds=1)).astimezone(
                            convert.zone).isoformat())
                    found = {dt.datetime.fromisoformat(r.ts): r.v for r in back}
                for ts, value in sorted(expected.items()):
                    result.sampled += 1
                    got = found.get(ts)
                    if got is not None and abs(got - value.v) <= 1e-9 * max(1.0, abs(value.v)):
                        result.matched += 1
                    else:
                        result.differences.append({
                            "did": value.did, "p": value.p, "ts": value.ts,
                            "hub": value.v, "dexma": got,
                        })
    except HubHTTPError as exc:
        result.error = describe_error(exc)
    finally:
        if own:
            client.close()
    DexmaDatasource.objects.filter(pk=datasource.pk).update(
        verified_at=timezone.now(), verification=result.summary,
        verification_details=result.differences[:200])
    return result
