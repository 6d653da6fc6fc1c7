"""From provider records to canonical fields."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from apps.pull.schemas import (
    MappingError,
    category,
    check_unit,
    compile_path,
    parse_instant,
    unit_factor,
)

DOC = {"a": {"b": [{"c": 1}, {"c": 2}]}, "odd key": "x", "n": None}


@pytest.mark.parametrize(("path", "value"), [
    ("a.b.1.c", 2), ("$.a.b[0].c", 1), ("$['odd key']", "x"), ("a.missing.c", None),
    ("a.b[5].c", None), ("n", None),
])
def test_paths_read_dotted_and_jsonpath_forms(path, value):
    assert compile_path(path)(DOC) == value


def test_meter_types_map_onto_scaler_categories_case_insensitively():
    assert category("Natural_Gas", None, {"natural_gas": "energy/Natural Gas"}) == (
        "energy", "Natural Gas")


def test_an_unmapped_meter_type_says_how_to_map_it():
    with pytest.raises(MappingError, match="add it to the connection's type map"):
        category("steam-ish", None, {})


def test_a_subtype_outside_the_category_is_refused():
    with pytest.raises(MappingError, match="not a water sub-category"):
        category("water", "Diesel", {"water": "water/Potable"})


def test_naive_timestamps_are_read_in_the_assumed_zone():
    madrid = zoneinfo.ZoneInfo("Europe/Madrid")
    assert parse_instant("2026-07-01T10:00:00", "ts", madrid) == dt.datetime(
        2026, 7, 1, 8, tzinfo=dt.UTC)
    assert parse_instant("2026-07-01T10:00:00Z", "ts", madrid).hour == 10


def test_new_units_are_registrable_but_garbage_is_not():
    assert check_unit(" kvarh ") == "kvarh"
    with pytest.raises(MappingError, match="neither known nor"):
        check_unit("<script>")


def test_units_convert_into_the_parameter_unit():
    assert unit_factor("MWh", "kWh") == 1000
    assert unit_factor("litres", "m³") == 0.001
    assert unit_factor("kg", "kWh") is None
