"""Per-record validation: a ReadingIn becomes a row tuple (columns as `_FIELDS`) or is refused.

`_validator` checks the common, well-typed record inline; anything else goes through
`_validate`, whose messages (and the field each one names) are the contract.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from apps.core.models import Deployment, Parameter, Reading
from apps.core.services.ingest.records import InvalidReading, ReadingIn

UTC = dt.UTC
# `Reading.Quality.values` rebuilds its list on every access; read it once.
_QUALITY_VALUES = Reading.Quality.values
# Integers this far from zero always convert to a finite float; larger ones take the slow path.
_FAST_INT_LIMIT = 2**1000
# Instants the hub accepts. Far beyond any meter's life, and far enough from the ends of the
# calendar that every time zone can still write them when a reading is delivered.
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


def _validate(
    record: ReadingIn,
    devices: dict[str, int],
    parameters: dict[str, Parameter],
    deployment: Deployment,
) -> tuple:
    device_id = devices.get(record.device) if isinstance(record.device, str) else None
    if device_id is None:
        # Same words for "no such device" and "another deployment's device": nothing leaks.
        raise InvalidReading(
            f"unknown device '{record.device}' in deployment '{deployment.slug}'; "
            "create the device first or fix its external id",
            "device",
        )
    parameter = parameters.get(record.parameter) if isinstance(record.parameter, str) else None
    if parameter is None:
        raise InvalidReading(
            f"unknown parameter '{record.parameter}'; use a key of the parameter catalogue",
            "parameter",
        )
    ts = _aware(record.ts, "timestamp", "ts")
    value = _finite(record.value, "value")
    period_end = None
    if parameter.kind == Parameter.Kind.INTERVAL:
        if record.period_end in (None, ""):
            raise InvalidReading(
                f"'{parameter.key}' is interval data: the reading needs a period_end",
                "period_end",
            )
        period_end = _aware(record.period_end, "period_end", "period_end")
        if period_end <= ts:
            raise InvalidReading(
                f"period_end {period_end.isoformat()} is not after ts {ts.isoformat()}",
                "period_end",
            )
    elif record.period_end not in (None, ""):
        raise InvalidReading(
            f"'{parameter.key}' is {parameter.kind} data: a reading at an instant has no "
            "period_end; use an interval parameter for values over a period",
            "period_end",
        )
    cost = None if record.cost in (None, "") else _finite(record.cost, "cost")
    currency = record.currency or ""
    if not isinstance(currency, str):
        raise InvalidReading("currency must be text: an ISO 4217 code like EUR", "currency")
    if cost is not None and not currency:
        raise InvalidReading("cost given without currency; add an ISO 4217 code like EUR",
                             "currency")
    if currency and not (len(currency) == 3 and currency.isascii() and currency.isupper()
                         and currency.isalpha()):
        raise InvalidReading(f"currency '{currency}' is not an ISO 4217 code like EUR",
                             "currency")
    if not isinstance(record.estimated, bool):
        raise InvalidReading("estimated must be true or false", "estimated")
    quality = record.quality
    if quality not in _QUALITY_VALUES or isinstance(quality, bool):
        raise InvalidReading(f"quality must be one of {_QUALITY_VALUES}", "quality")
    return (device_id, parameter.pk, ts, period_end, value, record.estimated, int(quality), cost,
            currency)


def _validator(
    devices: dict[str, int],
    parameters: dict[str, Parameter],
    deployment: Deployment,
) -> Callable[[ReadingIn], tuple]:
    """`_validate` with the common, well-typed record checked inline (a million times a batch).

    Anything off the fast path — an unknown key, a string that does not parse, a naive or
    non-finite value, a cost, an odd type — goes through `_validate` itself, so results and
    error messages are exactly `_validate`'s.
    """
    kinds = {key: (p.pk, p.kind == Parameter.Kind.INTERVAL) for key, p in parameters.items()}
    device_get, kind_get = devices.get, kinds.get
    datetime, fromisoformat, utc = dt.datetime, dt.datetime.fromisoformat, UTC
    isfinite = math.isfinite
    earliest, latest = EARLIEST, LATEST
    qualities = frozenset(_QUALITY_VALUES)
    quality_types = frozenset({int, Reading.Quality})
    currencies: set[str] = set()  # codes already found well-formed in this call

    def aware(value: Any) -> dt.datetime | None:
        if type(value) is datetime and value.tzinfo is utc:  # as the edges hand most over
            return value if earliest <= value < latest else None
        if type(value) is str:
            try:
                value = fromisoformat(value)
            except ValueError:
                return None
        elif type(value) is not datetime:
            return None
        if value.utcoffset() is None:
            return None
        try:
            value = value.astimezone(utc)
        except OverflowError:
            return None
        return value if earliest <= value < latest else None

    def validate(record: ReadingIn) -> tuple:
        device, key = record.device, record.parameter
        if type(device) is not str or type(key) is not str:
            return _validate(record, devices, parameters, deployment)
        device_id = device_get(device)
        parameter = kind_get(key)
        ts = None if device_id is None or parameter is None else aware(record.ts)
        if ts is not None:
            value = record.value
            if type(value) is int and -_FAST_INT_LIMIT < value < _FAST_INT_LIMIT:
                value = float(value)
            period_end = record.period_end
            if parameter[1]:
                period_end = aware(period_end)
                period_ok = period_end is not None and period_end > ts
            else:
                period_ok = period_end is None
            estimated, quality = record.estimated, record.quality
            cost, currency = record.cost, record.currency
            if cost is None:
                cost_ok = not currency
                currency = ""
            else:
                if type(cost) is int and -_FAST_INT_LIMIT < cost < _FAST_INT_LIMIT:
                    cost = float(cost)
                cost_ok = (type(cost) is float and isfinite(cost) and type(currency) is str
                           and (currency in currencies or _iso_currency(currency, currencies)))
            if (
                type(value) is float
                and isfinite(value)
                and period_ok
                and cost_ok
                and (estimated is True or estimated is False)
                and type(quality) in quality_types
                and quality in qualities
            ):
                return (device_id, parameter[0], ts, period_end, value, estimated, int(quality),
                        cost, currency)
        return _validate(record, devices, parameters, deployment)

    return validate


def _iso_currency(code: Any, seen: set[str]) -> bool:
    """Whether `code` has the shape of an ISO 4217 code (EUR); remembers the good ones."""
    if (type(code) is str and len(code) == 3 and code.isascii() and code.isupper()
            and code.isalpha()):
        seen.add(code)
        return True
    return False


def _aware(value: dt.datetime | str, what: str, field: str) -> dt.datetime:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise InvalidReading(
                f"{what} '{value}' is not ISO 8601 (e.g. 2026-06-01T00:00:00+02:00)", field
            ) from None
    elif not isinstance(value, dt.datetime):
        raise InvalidReading(f"{what} must be an ISO 8601 timestamp with an offset", field)
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidReading(
            f"{what} '{value.isoformat()}' has no UTC offset; send it with an offset or Z",
            field,
        )
    try:
        instant = value.astimezone(UTC)
    except OverflowError:
        instant = None
    if instant is None or not EARLIEST <= instant < LATEST:
        raise InvalidReading(
            f"{what} '{value.isoformat()}' is outside the accepted range "
            f"{EARLIEST.date().isoformat()} to {LATEST.date().isoformat()} (UTC)",
            field,
        )
    return instant


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise InvalidReading(f"{what} must be a number, got {type(value).__name__}", what)
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise InvalidReading(f"{what} '{value}' is not a number", what) from None
    if not math.isfinite(number):
        raise InvalidReading(f"{what} {value!r} is not a finite number", what)
    return number

