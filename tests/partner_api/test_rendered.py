"""Usage pages written as JSON by PostgreSQL: byte for byte what DRF renders for the dicts."""

import datetime as dt
import math
import random
import struct

import pytest
from django.db import connection

from apps.core.models import Site
from apps.core.services import ReadingIn, readings_ingest
from apps.partner_api import selectors, usage_sql
from apps.partner_api.params import PageRequest

from .conftest import QH, T0

pytestmark = pytest.mark.django_db

SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.1, 0.2 + 0.1, 1e-7, 1e-5, 1e-4, 0.0001234, 1e15, 1.5e15,
           1234567890123456.8, -1e15, 9999999999999998.0, 1e16, 1e21, 1e22, 123456789.0,
           5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308,
           100.0, 2.5, 1 / 3, 2 / 3, 12345.678]


def _random_doubles(count: int) -> list[float]:
    rng = random.Random(15)
    found = []
    while len(found) < count:
        value = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(value):
            found.append(value)
    # And the decimals meters send: a few digits at every scale.
    found += [round(rng.uniform(-1e6, 1e6), rng.randint(0, 6)) for _ in range(count)]
    found += [rng.randint(1, 99) * 10.0 ** rng.randint(-12, 24) for _ in range(count)]
    return found


def test_sql_writes_every_double_as_pythons_repr():
    values = SPECIAL + _random_doubles(20_000)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT '\"value\":' || {usage_sql.json_float('v::text')}, "
            f"length(v::text) >= {usage_sql.LONG_NUMBER} "
            "FROM unnest(%s::float8[]) WITH ORDINALITY AS t(v, i) ORDER BY i", [values])
        written = [text if not long else usage_sql.floats_python(text)
                   for text, long in cursor.fetchall()]
    mismatched = [(v, w) for v, w in zip(values, written, strict=True)
                  if w != f'"value":{v!r}']
    assert not mismatched[:20]


def test_the_halfway_doubles_postgresql_writes_longer_are_rewritten():
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::float8::text", [3.7e22])
        assert cursor.fetchone()[0] == "3.6999999999999998e+22"  # why floats_python exists
    assert usage_sql.floats_python(
        '{"meter":"\\"value\\":1.25","value":3.6999999999999998e+22,"cost":null}'
    ) == '{"meter":"\\"value\\":1.25","value":3.7e+22,"cost":null}'


VALUES = [0.1, 1e-7, 1e21, 3.7e22, -0.0, 1e15, 1234567890123456.8, 123.0, 5e-324, 2 / 3, 42.0]


@pytest.fixture
def varied(deployment, make_device):
    """Meters in three zones (and none), odd names, every value form, both period shapes."""
    madrid = Site.objects.create(deployment=deployment, external_id="mad", name="Madrid",
                                 timezone="Europe/Madrid")
    tokyo = Site.objects.create(deployment=deployment, external_id="tyo", name="Tokyo",
                                timezone="Asia/Tokyo")
    unknown = Site.objects.create(deployment=deployment, external_id="x", name="Nowhere",
                                  timezone="Mars/Olympus_Mons")
    make_device(deployment, "m-é\"\\\u2028✓", site=madrid, unit="kWh")
    make_device(deployment, "pv\t1", site=tokyo, subtype="On-site Renewable Electricity",
                unit="kWh")
    make_device(deployment, "plain", site=None, unit="m³")
    make_device(deployment, "lost", site=unknown, unit="kWh")
    madrid_day = dt.datetime(2026, 2, 28, 23, tzinfo=dt.UTC)  # 2026-03-01 in Madrid
    tokyo_day = dt.datetime(2026, 2, 28, 15, tzinfo=dt.UTC)
    records = []
    for meter in ("m-é\"\\\u2028✓", "pv\t1", "plain", "lost"):
        for i, value in enumerate(VALUES):
            cost = None if i % 3 else value * 0.1
            records.append(ReadingIn(
                device=meter, parameter="active_energy_delta", ts=T0 + i * QH,
                period_end=T0 + (i + 1) * QH, value=value, cost=cost,
                currency="EUR" if cost is not None else "", estimated=bool(i % 2)))
        for start in (madrid_day, tokyo_day, T0 - dt.timedelta(days=3)):
            records.append(ReadingIn(device=meter, parameter="active_energy_delta", ts=start,
                                     period_end=start + dt.timedelta(days=1), value=7.5))
        # Microseconds in both instants, and an export reading beside two records.
        odd = T0 + dt.timedelta(hours=9, microseconds=250)
        records.append(ReadingIn(device=meter, parameter="active_energy_delta", ts=odd,
                                 period_end=odd + QH, value=1.0))
        records += [ReadingIn(device=meter, parameter="exported_active_energy_delta",
                              ts=T0 + i * QH, period_end=T0 + (i + 1) * QH, value=v)
                    for i, v in ((0, 0.3), (4, 1e-7))]
    # A meter without any export reading: its records skip the export probe.
    make_device(deployment, "dry", site=madrid, unit="kWh")
    records += [ReadingIn(device="dry", parameter="active_energy_delta", ts=T0 + i * QH,
                          period_end=T0 + (i + 1) * QH, value=0.5 * i) for i in range(3)]
    result = readings_ingest(deployment=deployment, source="t", records=records)
    assert not result.rejections, result.rejections
    # A second commit: changed records get a later change time than the rest.
    readings_ingest(deployment=deployment, source="t", records=[ReadingIn(
        device="plain", parameter="active_energy_delta", ts=T0, period_end=T0 + QH,
        value=0.25)])


@pytest.mark.parametrize("style", ["cursor", "offset", "page"])
def test_a_rendered_page_is_byte_for_byte_drfs(api, varied, monkeypatch, style):
    def pages():
        bodies, params = [], {"limit": 7}
        if style == "offset":
            params["offset"] = 0
        if style == "page":
            params = {"page": 1, "page_size": 7}
        while True:
            response = api.get("/api/v1/usage/", params)
            assert response.status_code == 200, response.content
            bodies.append((response.content, response.get("Link")))
            body = response.json()
            if body["next"] is None:
                return bodies
            if style == "cursor":
                params = {"limit": 7, "cursor": body["next_cursor"]}
            else:
                params["offset" if style == "offset" else "page"] += 7 if style == "offset" else 1

    rendered = pages()
    monkeypatch.setattr(selectors, "usage_page", selectors.usage_list)
    assert pages() == rendered
    assert len(rendered) == 9  # 63 records, 7 a page
    text = b"".join(body for body, _ in rendered).decode()
    for seen in ("2026-03-01", "2026-03-02", '"redelivery":1e-07', '"value":1e+21',
                 '"value":-0.0', '"value":1000000000000000.0', "\\u2028", "m\\u00b3"[:1],
                 '"cost":null', '"currency":"EUR"', '.000250+00:00"', '"estimated":true',
                 '"meter":"dry"'):
        assert seen in text, seen


def test_the_rendered_path_is_the_one_taken(deployment, varied):
    page = PageRequest(5, 0)
    rows, positions, _ = selectors.usage_page(deployment=deployment,
                                              flt=selectors.SeriesFilter(), page=page)
    assert isinstance(rows, selectors.Rendered)
    assert len(positions) == 6


def test_a_zone_only_python_knows_falls_back_to_the_dicts(deployment, varied, monkeypatch):
    monkeypatch.setitem(selectors._ZONES, "Asia/Tokyo", None)
    rows, _, _ = selectors.usage_page(deployment=deployment, flt=selectors.SeriesFilter(),
                                      page=PageRequest(100, 0))
    assert isinstance(rows, list) and len(rows) == 63
