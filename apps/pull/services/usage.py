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
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from math import isfinite
from typing import Any

from django.db import transaction

from apps.core.http import HubHTTPError, PermanentError, TransientError
from apps.core.models import Device, Parameter, Quarantine, Reading, Run
from apps.core.services import ReadingIn, readings_ingest
from apps.core.services.ingest import CHUNK_SIZE
from apps.pull.client import LoopDetected, UpstreamClient
from apps.pull.models import Connection, Endpoint
from apps.pull.schemas import (
    MappingError,
    RecordMapper,
    compile_fields,
    parameter_for,
    parse_flag,
    parse_instant,
    parse_number,
    unit_factor,
)
from apps.pull.services.common import StageCounts, quarantine_record
from apps.pull.services.overlap import BehindStore, prefetched

# Readings handed to the store at a time (one flush in flight behind the fetching): large
# enough that a flush's fixed cost (transaction, lock, commit record) is small beside it.
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
        self._fast_targets: dict[str, tuple[str, float]] = {}
        self._currencies: dict[str, str] = {}
        self.records = self._fast_path(fields)

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

    def _fast_path(self, fields: dict[str, str]) -> Callable[[Any], list[ReadingIn]]:
        """A function from one provider record to its readings (MappingError: the reason).

        One pass per record: the common, well-formed record (a meter and instants already
        seen, a finite float, a flag, a cost in a currency already seen) is read by one
        generated function and checked inline, in a closure over everything it needs;
        anything else, extra quantities included, goes through `convert`, whose parse_*
        messages are the reasons and which teaches the fast path the meters, instants and
        currencies it has accepted.
        """
        cumulative = self.role == Endpoint.Role.READINGS
        order = (("meter_id", "value", "estimated", "timestamp", "", "", "") if cumulative
                 else ("meter_id", "value", "estimated", "start", "end", "cost", "currency"))
        read = compile_fields(fields, order)
        targets, instants, currencies = self._fast_targets, self._instants, self._currencies
        slow, good = self.convert, Reading.Quality.GOOD
        if self.extras:
            return slow

        def records(raw: Any) -> list[ReadingIn]:
            if type(raw) is dict:
                meter_id, value, estimated, start, end, cost, currency = read(raw)
                target = type(meter_id) is str and targets.get(meter_id)
                start = type(start) is str and instants.get(start)
                if (target and start and type(value) is float and isfinite(value)
                        and (estimated is True or estimated is False or estimated is None)):
                    parameter, factor = target
                    if cumulative:
                        return [ReadingIn(meter_id, parameter, start, value * factor, None,
                                          estimated is True)]
                    end = type(end) is str and instants.get(end)
                    if cost is None:
                        currency = ""
                    elif type(cost) is float and isfinite(cost) and type(currency) is str:
                        currency = currencies.get(currency)
                    else:
                        currency = None
                    if end and start < end and currency is not None:
                        return [ReadingIn(meter_id, parameter, start, value * factor, end,
                                          estimated is True, good, cost, currency)]
            return slow(raw)

        return records

    def convert(self, raw: Any) -> list[ReadingIn]:
        """The general path: the readings, or MappingError with the reason."""
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
            self._fast_targets[meter_id] = (parameter, factor)
            return [ReadingIn(device=meter_id, parameter=parameter, ts=ts, value=value * factor,
                              estimated=estimated)]
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
        self._fast_targets[meter_id] = (parameter, factor)
        if cost is not None:
            self._currencies[mapped.get("currency")] = currency
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
        return readings


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

    def store(records: list[ReadingIn], watermark: dt.datetime | None) -> tuple:
        # On the store's helper thread: one transaction per flush, the watermark with the
        # window's last records.
        with transaction.atomic():
            # Already beside the fetching: no merge thread of its own (see readings_ingest).
            outcome = (readings_ingest(deployment=connection.deployment, records=records,
                                       source=source, run=run, overlap=False)
                       if records else None)
            if watermark is not None:
                Connection.objects.filter(pk=connection.pk).update(usage_watermark=watermark)
        return outcome, watermark

    def stored(done: tuple) -> None:
        outcome, watermark = done
        if outcome is not None:
            result.counts.stored += outcome.inserted + outcome.updated
            result.counts.unchanged += outcome.unchanged
            result.counts.quarantined += outcome.quarantined
            result.duplicates += outcome.duplicates
        if watermark is not None:
            connection.usage_watermark = result.watermark = watermark

    behind = BehindStore(on_done=stored)

    def flush(watermark: dt.datetime | None = None) -> None:
        """Hand the buffer to the store and go on fetching; one flush in flight at a time."""
        if buffer or watermark is not None:
            records = buffer.copy()
            buffer.clear()
            behind.submit(store, records, watermark)

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
                                  end, zone, buffer, result, run, flush, behind.wait, on_page)
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
        behind.close()  # waits for the last flush, raising its error if it failed
        gc.unfreeze()
    result.production_ignored = sum(c.production_ignored for c in converters.values())
    return result


def _window_fetch(connection, client, endpoint, convert, start, end, zone, buffer, result, run,
                  flush, settle, on_page) -> None:
    params = {connection.date_from_param: format_instant(start, connection.date_format, zone),
              connection.date_to_param: format_instant(end, connection.date_format, zone)}
    role = endpoint.role
    extend, records_of = buffer.extend, convert.records
    pages = client.pages(endpoint, params)
    if not client.fetches_ahead(endpoint):
        pages = prefetched(pages)  # one request at a time otherwise: a helper reads ahead
    for page in pages:
        result.counts.fetched += len(page.records)
        for raw in page.records:
            try:
                extend(records_of(raw))
            except MappingError as exc:
                settle()  # the connection is the store's while a flush is in flight
                result.counts.quarantined += quarantine_record(
                    connection=connection, role=role, reason=str(exc), raw=raw, run=run,
                    kind=Quarantine.Kind.READING, mapped=_partial(convert, raw))
        if len(buffer) >= FLUSH_SIZE:
            flush()
        if on_page is not None:
            on_page()


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
