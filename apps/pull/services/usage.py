"""Stage 2 of a sync: usage from the watermark (minus the lookback) up to now.

The range is cut into windows no longer than the provider allows. Readings are ingested in
chunks as pages arrive; the watermark moves only after a whole window is stored, in the
same transaction as the window's last chunk — so a worker killed mid-window leaves the
watermark at the last complete window, and the re-run re-reads from there (the ingest is
idempotent: nothing is lost, nothing duplicated).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import queue
import threading
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from math import isfinite
from typing import Any

from django import db
from django.db import transaction

from apps.core.http import HubHTTPError, PermanentError, TransientError
from apps.core.models import Device, Parameter, Quarantine, Run
from apps.core.services import ReadingIn, readings_ingest
from apps.core.services.ingest import CHUNK_SIZE
from apps.pull.client import LoopDetected, Page, UpstreamClient
from apps.pull.models import Connection, Endpoint
from apps.pull.schemas import (
    MappingError,
    RecordMapper,
    parameter_for,
    parse_flag,
    parse_instant,
    parse_number,
    unit_factor,
)
from apps.pull.services.common import StageCounts, quarantine_record

# Several ingest chunks per flush: the ingest merges chunk n while it validates chunk n + 1
# (with one chunk per flush it never overlaps, and fetching stops while the merge runs).
FLUSH_SIZE = 5 * CHUNK_SIZE
# A refusal the provider may give for a range that is too long or too heavy.
_SHRINK_STATUSES = {400, 408, 413, 422, 500, 502, 503, 504}


@dataclass(slots=True)
class UsageResult:
    counts: StageCounts = field(default_factory=StageCounts)
    windows: int = 0
    window_shrinks: int = 0
    duplicates: int = 0
    production_ignored: int = 0
    complete: bool = True
    error: str = ""
    watermark: dt.datetime | None = None
    broken: bool = False  # as EntityResult.broken


@dataclass(frozen=True, slots=True)
class _Meter:
    commodity: str
    subtype: str
    unit: str


class _RecordConverter:
    """Turns mapped usage records into ReadingIn, or raises MappingError with the reason."""

    def __init__(self, connection: Connection, role: str, fields: dict[str, str]) -> None:
        self.role = role
        self.mapper = RecordMapper(fields)
        self.zone = zoneinfo.ZoneInfo(connection.source_timezone)
        self.meters = {
            ext: _Meter(c, s, u) for ext, c, s, u in Device.objects.filter(
                datasource=connection.datasource).values_list(
                    "external_id", "commodity", "subtype", "unit")
        }
        self.parameters = dict(Parameter.objects.values_list("key", "unit"))
        mapping = (connection.consumption_parameters if role == Endpoint.Role.CONSUMPTION
                   else connection.reading_parameters)
        self.mapping = mapping
        self.redelivery = connection.consumption_parameters.get("redelivery")
        self.production = connection.consumption_parameters.get("production")
        # Only the extra quantities the endpoint maps can appear in a mapped record.
        self.extras = tuple((name, key) for name, key in (("redelivery", self.redelivery),
                                                          ("production", self.production))
                            if fields.get(name))
        self._targets: dict[tuple[str, str | None], tuple[str, float]] = {}
        self._instants: dict[str, dt.datetime] = {}
        self.production_ignored = 0

    def _instant(self, value: Any, what: str) -> dt.datetime:
        # Usage pages repeat the same period for every meter: parse each text once.
        if type(value) is str:
            cached = self._instants.get(value)
            if cached is not None:
                return cached
            if len(self._instants) > 50_000:
                self._instants.clear()
            parsed = self._instants[value] = parse_instant(value, what, self.zone)
            return parsed
        return parse_instant(value, what, self.zone)

    def _target(self, meter_id: str, meter: _Meter, key: str | None,
                what: str) -> tuple[str, float]:
        cached = self._targets.get((meter_id, key))
        if cached:
            return cached
        parameter = key or parameter_for(self.mapping, meter.commodity, meter.subtype)
        if not parameter:
            raise MappingError(
                f"no {what} parameter mapped for {meter.commodity}"
                f"{'/' + meter.subtype if meter.subtype else ''} meters; add one to the "
                "connection's parameter map")
        factor = unit_factor(meter.unit, self.parameters.get(parameter, ""))
        if factor is None:
            raise MappingError(
                f"meter unit '{meter.unit}' cannot be converted to {parameter} "
                f"({self.parameters.get(parameter)}); map the meter to a parameter in its unit")
        self._targets[(meter_id, key)] = (parameter, factor)
        return parameter, factor

    def __call__(self, raw: Any) -> tuple[list[ReadingIn], dict[str, Any]]:
        # One pass per record; the well-formed common case is checked inline, anything else
        # goes through the parse_* functions, whose messages are the quarantine reasons.
        mapped = self.mapper(raw)
        meter_id = mapped.get("meter_id")
        if type(meter_id) is not str:
            meter_id = "" if meter_id is None else str(meter_id)
        meter = self.meters.get(meter_id)
        if meter is None:
            raise MappingError(f"meter '{meter_id}' is unknown to this connection; it was not "
                               "in the meter listing")
        value = mapped.get("value")
        if type(value) is not float or not isfinite(value):
            value = parse_number(value, "value")
        estimated = mapped.get("estimated")
        if type(estimated) is not bool:
            estimated = parse_flag(estimated)
        instants = self._instants
        if self.role == Endpoint.Role.READINGS:
            ts = mapped.get("timestamp")
            ts = (type(ts) is str and instants.get(ts)) or self._instant(ts, "timestamp")
            parameter, factor = self._targets.get((meter_id, None)) or self._target(
                meter_id, meter, None, "cumulative")
            return [ReadingIn(device=meter_id, parameter=parameter, ts=ts, value=value * factor,
                              estimated=estimated)], mapped
        start, end = mapped.get("start"), mapped.get("end")
        start = (type(start) is str and instants.get(start)) or self._instant(start, "start")
        end = (type(end) is str and instants.get(end)) or self._instant(end, "end")
        if end <= start:
            raise MappingError(f"end {end.isoformat()} is not after start {start.isoformat()}")
        cost, currency = mapped.get("cost"), mapped.get("currency")
        if cost not in (None, ""):
            cost = parse_number(cost, "cost")
            if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
                raise MappingError("cost given without an ISO 4217 currency (e.g. EUR)")
            currency = currency.upper()
        else:
            cost, currency = None, ""
        parameter, factor = self._targets.get((meter_id, None)) or self._target(
            meter_id, meter, None, "interval")
        readings = [ReadingIn(device=meter_id, parameter=parameter, ts=start, period_end=end,
                              value=value * factor, estimated=estimated, cost=cost,
                              currency=currency)]
        for name, key in self.extras:
            extra = mapped.get(name)
            if extra in (None, ""):
                continue
            if not key:
                self.production_ignored += 1
                continue
            parameter, factor = self._target(meter_id, meter, key, name)
            readings.append(ReadingIn(device=meter_id, parameter=parameter, ts=start,
                                      period_end=end, value=parse_number(extra, name) * factor,
                                      estimated=estimated))
        return readings, mapped


def _floor_day(instant: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    local = instant.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)


def format_instant(instant: dt.datetime, fmt: str, zone: zoneinfo.ZoneInfo) -> str:
    """A range bound as the provider wants it: in its zone, or in UTC if the format says Z."""
    if "Z" in fmt.replace("%Z", ""):
        return instant.astimezone(dt.UTC).strftime(fmt)
    return instant.astimezone(zone).strftime(fmt)


def _date_only(fmt: str) -> bool:
    return not any(d in fmt for d in ("%H", "%I", "%M", "%S", "%s", "%c", "%X", "%T"))


def usage_sync(
    *,
    connection: Connection,
    client: UpstreamClient,
    run: Run | None = None,
    now: dt.datetime | None = None,
    on_page: Callable[[], None] | None = None,
) -> UsageResult:
    result = UsageResult()
    endpoints = [e for e in connection.endpoints.all()
                 if e.role in (Endpoint.Role.CONSUMPTION, Endpoint.Role.READINGS)]
    if not endpoints:
        return result
    zone = zoneinfo.ZoneInfo(connection.source_timezone)
    now = now or dt.datetime.now(dt.UTC)
    if connection.usage_watermark:
        start = connection.usage_watermark - dt.timedelta(days=connection.lookback_days)
    else:
        start = now - dt.timedelta(days=connection.initial_days)
    date_only = _date_only(connection.date_format)
    if date_only:
        start = _floor_day(start, zone)
    window = dt.timedelta(days=max(1, connection.max_range_days))
    smallest = dt.timedelta(hours=max(1, connection.min_window_hours))
    if date_only:
        smallest = max(smallest, dt.timedelta(days=1))
    converters = {e.role: _RecordConverter(connection, e.role, e.fields) for e in endpoints}
    buffer: list[ReadingIn] = []
    source = Quarantine.source_for("pull", "connection", connection.key)

    def flush(watermark: dt.datetime | None = None) -> None:
        with transaction.atomic():
            if buffer:
                outcome = readings_ingest(deployment=connection.deployment, records=buffer,
                                          source=source, run=run)
                result.counts.stored += outcome.inserted + outcome.updated
                result.counts.unchanged += outcome.unchanged
                result.counts.quarantined += outcome.quarantined
                result.duplicates += outcome.duplicates
                buffer.clear()
            if watermark is not None:
                Connection.objects.filter(pk=connection.pk).update(usage_watermark=watermark)
                connection.usage_watermark = watermark
                result.watermark = watermark

    # Hundreds of thousands of short-lived records: keep the cyclic collector off the
    # long-lived heap (Django, the app registry) while they flow; unfrozen afterwards.
    gc.freeze()
    try:
        while start < now:
            end = min(start + window, now)
            if date_only and end < now:
                end = _floor_day(end, zone)
            if date_only and end == now:
                end = _floor_day(now, zone) + dt.timedelta(days=1)
                end = max(end, start + dt.timedelta(days=1))
            try:
                for endpoint in endpoints:
                    _window_fetch(connection, client, endpoint, converters[endpoint.role], start,
                                  end, zone, buffer, result, run, flush, on_page)
            except LoopDetected as exc:
                result.complete, result.error, result.broken = False, f"usage: {exc}", True
                break
            except HubHTTPError as exc:
                shrinkable = isinstance(exc, TransientError | PermanentError) and (
                    exc.status_code in _SHRINK_STATUSES or exc.status_code is None)
                if shrinkable and exc.status_code != 429 and end - start > smallest:
                    # The provider refused or timed out on this range: ask for less at a time.
                    window = max(smallest, (end - start) / 2)
                    if date_only:
                        window = dt.timedelta(days=max(1, window.days))
                    result.window_shrinks += 1
                    continue
                result.complete, result.error = False, f"usage: {exc}"
                break
            flush(watermark=min(end, now))
            result.windows += 1
            start = end
        else:
            flush()
    finally:
        gc.unfreeze()
    result.production_ignored = sum(c.production_ignored for c in converters.values())
    return result


def _window_fetch(connection, client, endpoint, convert, start, end, zone, buffer, result, run,
                  flush, on_page) -> None:
    params = {connection.date_from_param: format_instant(start, connection.date_format, zone),
              connection.date_to_param: format_instant(end, connection.date_format, zone)}
    role = endpoint.role
    for page in prefetched(client.pages(endpoint, params)):
        for raw in page.records:
            result.counts.fetched += 1
            try:
                readings, _ = convert(raw)
            except MappingError as exc:
                result.counts.quarantined += quarantine_record(
                    connection=connection, role=role, reason=str(exc), raw=raw, run=run,
                    kind=Quarantine.Kind.READING, mapped=_partial(convert, raw))
                continue
            buffer.extend(readings)
        if len(buffer) >= FLUSH_SIZE:
            flush()
        if on_page is not None:
            on_page()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def prefetched(pages: Iterator[Page], depth: int = 4) -> Iterator[Page]:
    """The pages of ``pages``, fetched and decoded by a helper thread up to ``depth`` ahead.

    The provider's time to answer and the hub's time to store then overlap instead of
    adding up; memory stays bounded by ``depth`` pages. Errors surface in the caller, in
    order; a caller that stops early stops the helper too.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for page in pages:
                if not offer(page):
                    return
            outcome: object = _DONE
        except BaseException as exc:
            outcome = _Failure(exc)
        finally:
            db.connections.close_all()  # a token refresh may have opened one here
        offer(outcome)

    helper = threading.Thread(target=produce, name="pull-prefetch", daemon=True)
    helper.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        helper.join(timeout=30)


def _partial(convert: _RecordConverter, raw: Any) -> dict[str, Any]:
    """What could be read of a bad record, in the reading shape replay expects."""
    try:
        mapped = convert.mapper(raw)
    except MappingError:
        return {}
    meter_id = str(mapped.get("meter_id") or "")
    parameter = ""
    if meter := convert.meters.get(meter_id):
        kind = "cumulative" if convert.role == Endpoint.Role.READINGS else "interval"
        with contextlib.suppress(MappingError):
            parameter = convert._target(meter_id, meter, None, kind)[0]
    ts = mapped.get("start", mapped.get("timestamp"))
    # Ops fix the reading fields and replay; "raw" keeps what the provider sent.
    return {"device": meter_id, "parameter": parameter, "ts": ts,
            "period_end": mapped.get("end"), "value": mapped.get("value"),
            "cost": mapped.get("cost"), "currency": mapped.get("currency") or ""}
