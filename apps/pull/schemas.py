"""From provider records to the hub's canonical fields: paths, dates, categories, units.

Paths are dotted (`asset.id`, `items.0.value`) or a JSONPath subset (`$.asset.id`,
`$.items[0]`, `$['odd key']`). Each path is compiled once per run into a getter, because
the usage stage evaluates them for every one of hundreds of thousands of records.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from collections.abc import Callable
from typing import Any

_TOKEN = re.compile(r"\[(\d+)\]|\['([^']+)'\]|\.?([^.\[\]]+)")
_MISSING = object()
# Units a meter may report and the factor into the unit the parameter is stored in.
_UNIT_FACTORS: dict[tuple[str, str], float] = {
    ("Wh", "kWh"): 0.001, ("MWh", "kWh"): 1000.0, ("GWh", "kWh"): 1_000_000.0,
    ("MJ", "kWh"): 1 / 3.6, ("GJ", "kWh"): 1000 / 3.6, ("therm", "kWh"): 29.3071,
    ("therms", "kWh"): 29.3071,
    ("m3", "m³"): 1.0, ("l", "m³"): 0.001, ("L", "m³"): 0.001, ("litres", "m³"): 0.001,
    ("liters", "m³"): 0.001, ("ft³", "m³"): 0.0283168, ("ft3", "m³"): 0.0283168,
}
_UNIT_SHAPE = re.compile(r"^[A-Za-z0-9µ°³²/%.\- ]{1,32}$")

Getter = Callable[[Any], Any]


class MappingError(ValueError):
    """A record cannot be mapped; the message is the quarantine reason."""


def _steps(path: str) -> list[str | int]:
    text = path[1:] if path.startswith("$") else path
    steps: list[str | int] = []
    for index, quoted, plain in _TOKEN.findall(text):
        if index:
            steps.append(int(index))
        elif quoted:
            steps.append(quoted)
        elif plain.isdigit():
            steps.append(int(plain))
        else:
            steps.append(plain)
    return steps


def _expression(steps: list[str | int], names: dict[str, int]) -> str:
    """Python source of the value at ``steps`` of ``record`` (None where a step is missing).

    Every key and index appears as a literal (``repr``); each intermediate value is held in
    a temporary numbered by its path, so one name never stands for two different values.
    """
    source = "record"
    prefix: tuple[str | int, ...] = ()
    for step in steps:
        prefix = (*prefix, step)
        temp = f"_{names.setdefault(repr(prefix), len(names))}"
        if isinstance(step, int):
            source = (f"({temp}[{step!r}] if type({temp} := {source}) is list "
                      f"and {-step - 1 if step < 0 else step} < len({temp}) else None)")
        else:
            source = f"({temp}.get({step!r}) if type({temp} := {source}) is dict else None)"
    return source


def compile_path(path: str) -> Getter:
    """A function returning the value at ``path`` in a JSON document (``None`` if absent)."""
    return _compile({"value": path}, single=True)


def compile_fields(fields: dict[str, str], order: tuple[str, ...]) -> Callable[[Any], tuple]:
    """A function returning the values of ``order``'s fields in a record, as one tuple.

    ``None`` stands for a field the endpoint does not map or the record lacks. The usage
    stage's fast path unpacks it straight into locals: no dict per record.
    """
    names: dict[str, int] = {}
    parts = [_expression(_steps(fields[name]), names) if fields.get(name) else "None"
             for name in order]
    return _function(f"    return ({', '.join(parts)},)")


def _compile(fields: dict[str, str], *, single: bool = False) -> Callable[[Any], Any]:
    """One function for all of an endpoint's paths: one call per record, no loop over fields.

    The usage stage runs it for each of hundreds of thousands of records, so the lookups are
    generated as straight-line code once per endpoint instead of interpreted per record.
    """
    names: dict[str, int] = {}
    parts = [(name, _expression(_steps(path), names)) for name, path in fields.items()]
    if single:
        body = f"    return {parts[0][1]}"
    else:
        items = ", ".join(f"{name!r}: {expression}" for name, expression in parts)
        body = f"    return {{{items}}}"
    return _function(body)


def _function(body: str) -> Callable[[Any], Any]:
    namespace: dict[str, Any] = {}
    exec(f"def get(record):\n{body}\n", namespace)  # noqa: S102 - literals only, see above
    return namespace["get"]


class RecordMapper:
    """Maps one endpoint's records onto its canonical fields."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.getters = {name: compile_path(path) for name, path in fields.items() if path}
        self._map = _compile({name: path for name, path in fields.items() if path})
        self.top_level = {path.lstrip("$.").split(".")[0].split("[")[0]
                          for path in fields.values() if path}

    def __call__(self, record: Any) -> dict[str, Any]:
        if type(record) is not dict:
            raise MappingError(f"a record must be a JSON object, got {type(record).__name__}")
        return self._map(record)

    def leftovers(self, record: dict) -> dict:
        """The record's attributes no canonical field took: kept as-is in metadata."""
        return {k: v for k, v in record.items() if k not in self.top_level}


def parse_instant(value: Any, what: str, assumed: zoneinfo.ZoneInfo) -> dt.datetime:
    """An aware UTC datetime from ISO 8601 text; naive text is read in ``assumed``."""
    if not isinstance(value, str) or not value:
        raise MappingError(f"{what} is missing or not text: {value!r}")
    try:
        instant = dt.datetime.fromisoformat(value)
    except ValueError:
        raise MappingError(f"{what} '{value}' is not an ISO 8601 date or timestamp") from None
    if instant.tzinfo is None:
        # The source documents its zone in the connection; a DST gap/fold resolves by fold=0.
        instant = instant.replace(tzinfo=assumed)
    return instant.astimezone(dt.UTC)


def parse_number(value: Any, what: str) -> float:
    if type(value) is float and math.isfinite(value):  # the common case, first
        return value
    if isinstance(value, bool) or value is None:
        raise MappingError(f"{what} is not a number: {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise MappingError(f"{what} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise MappingError(f"{what} is not a finite number: {value!r}")
    return number


def parse_flag(value: Any) -> bool:
    if type(value) is bool:
        return value
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes", "y", "estimated", "e"}
    return bool(value)


def category(provider_type: Any, subtype: Any, type_map: dict[str, str]) -> tuple[str, str]:
    """(commodity, subtype) on Scaler's categories for a provider's meter type."""
    from apps.core.models import COMMODITY_SUBTYPES

    text = str(provider_type or "").strip()
    lowered = {k.lower(): v for k, v in type_map.items()}
    mapped = lowered.get(text.lower())
    if mapped is None and text.lower() in COMMODITY_SUBTYPES:
        mapped = text.lower()
    if mapped is None:
        raise MappingError(
            f"meter type '{text}' has no Scaler category; add it to the connection's type map "
            '(e.g. "' + (text or "type") + '": "energy/Off-site Electricity")'
        )
    commodity, _, mapped_subtype = mapped.partition("/")
    chosen = str(subtype).strip() if subtype else mapped_subtype
    if chosen:
        by_lower = {s.lower(): s for s in COMMODITY_SUBTYPES[commodity]}
        if chosen.lower() not in by_lower:
            raise MappingError(f"meter subtype '{chosen}' is not a {commodity} sub-category")
        chosen = by_lower[chosen.lower()]
    return commodity, chosen


def check_unit(unit: Any) -> str:
    """The unit as text if it is known or can be registered as new."""
    text = str(unit or "").strip()
    if not text or not _UNIT_SHAPE.match(text):
        raise MappingError(f"unit {unit!r} is neither known nor a unit symbol that can be "
                           "registered (e.g. kWh, m³, litres)")
    return text


def unit_factor(unit: str, parameter_unit: str) -> float | None:
    """Factor from the meter's unit into the parameter's; None when not convertible."""
    if not parameter_unit or unit == parameter_unit:
        return 1.0
    return _UNIT_FACTORS.get((unit, parameter_unit))


def parameter_for(mapping: dict[str, str], commodity: str, subtype: str) -> str | None:
    return mapping.get(f"{commodity}/{subtype}") or mapping.get(commodity)
