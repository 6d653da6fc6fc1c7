"""Packet building from stored readings, as delivery does it: arbitrary readings planned and
built for DEXMA IS3 and Wattics. Every body stays within the platform's limits, every value
in it is one the platform keeps, and every reading is either in a body or quarantined with a
reason.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.core.models import Datasource, Deployment, Device, OutboundBatch, Parameter, Quarantine
from apps.core.services import ReadingIn, link_get_or_create, readings_ingest
from apps.dexma.client import is3_body
from apps.dexma.models import DexmaDatasource, Installation, SelectedDevice
from apps.dexma.schemas import MAX_VALUES, frequency_of, misalignment
from apps.dexma.services import batch_build, channels_of, datasource_plan
from apps.dexma.services import batches as dexma_batches
from apps.dexma.services import live as dexma_live
from apps.wattics.schemas import packet_line
from apps.wattics.services import stream_create, stream_plan

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 3, 28, tzinfo=dt.UTC)  # a DST change in Madrid the next night
SMALL_LIMIT = 7
_numbers = itertools.count()


@pytest.fixture
def tenant(db):
    deployment = Deployment.objects.create(slug="deliv", name="Delivery", timezone="UTC")
    datasource = Datasource.objects.create(deployment=deployment, key="gw", name="Gateway")
    installation = Installation(dep_id="dep-deliv", deployment=deployment)
    installation.set_token("deliv-token-000000000")
    installation.save()
    return deployment, datasource, installation


def _device(deployment, datasource) -> Device:
    number = next(_numbers)
    return Device.objects.create(deployment=deployment, datasource=datasource,
                                 external_id=f"dev-{number}", local_id=f"dev-{number}",
                                 name=f"Device {number}", commodity="energy", unit="kWh")


def _dexma_datasource(installation, device, keys, zone) -> DexmaDatasource:
    number = device.external_id
    link = link_get_or_create(platform="dexma", name=f"fuzz/{number}",
                              deployment=installation.deployment)
    datasource = DexmaDatasource.objects.create(
        installation=installation, deployment=installation.deployment, name=f"DS {number}",
        platform_id=1000 + next(_numbers), key=f"hub-{number}", source_token="t",
        timezone=zone, link=link)
    selected = SelectedDevice.objects.create(datasource=datasource, device=device)
    selected.parameters.set(Parameter.objects.filter(key__in=keys))
    return datasource


reading_specs = st.lists(st.tuples(
    st.sampled_from(["active_energy", "active_energy_delta", "active_power"]),
    st.integers(0, 96 * 3),  # minutes past T0, in steps of 5
    st.sampled_from([5, 15, 15, 15, 60, 7, 1440]),  # interval length in minutes
    st.floats(-1e9, 1e9, allow_nan=False),
), min_size=1, max_size=40)


def _check_dexma(datasource: DexmaDatasource, limit: int) -> tuple[int, int]:
    """(values built, readings refused); asserts the IS3 contract on every batch."""
    zone = ZoneInfo(datasource.timezone)
    channels = channels_of(datasource)
    built_total = refused_total = 0
    for batch in OutboundBatch.objects.filter(link=datasource.link).order_by("position"):
        built = batch_build(batch, datasource, channels)
        assert len(built.values) <= limit
        assert all(reason.strip() for _, reason in built.refused)
        body = json.loads(is3_body(built.values))
        assert sum(len(m["values"]) for m in body) == len(built.values)
        for value in built.values:
            start = dt.datetime.fromisoformat(value.ts)
            assert start.utcoffset() == start.astimezone(zone).utcoffset()
            if value.p > 999:  # SSSFO: interval data, its start on the boundary
                end = start + dt.timedelta(minutes={0: 15, 1: 60, 2: 1440, 6: 30, 7: 10, 8: 5}[
                    (value.p // 10) % 10])
                frequency = frequency_of(start, end)
                assert misalignment(start, None, frequency, zone) == "", value
        built_total += len(built.values)
        refused_total += len(built.refused)
    return built_total, refused_total


def test_dexma_batches_hold_at_most_the_limit_and_only_aligned_interval_values(tenant,
                                                                              monkeypatch):
    deployment, source, installation = tenant
    monkeypatch.setattr(dexma_live, "MAX_VALUES", SMALL_LIMIT)
    monkeypatch.setattr(dexma_batches, "MAX_VALUES", SMALL_LIMIT)

    @given(specs=reading_specs, zone=st.sampled_from(["Europe/Madrid", "Asia/Kolkata",
                                                      "Australia/Lord_Howe", "UTC"]))
    @settings(max_examples=30, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(specs, zone):
        device = _device(deployment, source)
        datasource = _dexma_datasource(
            installation, device, ["active_energy", "active_energy_delta", "active_power"], zone)
        records = [ReadingIn(
            device=device.external_id, parameter=key, ts=T0 + dt.timedelta(minutes=5 * m),
            value=v, period_end=(T0 + dt.timedelta(minutes=5 * m + length)
                                 if key == "active_energy_delta" else None),
        ) for key, m, length, v in specs]
        result = readings_ingest(deployment=deployment, records=records, source="fuzz")
        assert not result.rejections
        datasource_plan(datasource=datasource, max_batches=1000)
        built, refused = _check_dexma(datasource, SMALL_LIMIT)
        # Every stored reading of the selection is in a body or refused with a reason.
        assert built + refused == result.accepted

    check()


def test_dexma_batches_of_a_large_backlog_never_pass_5000_values(tenant):
    deployment, source, installation = tenant
    device = _device(deployment, source)
    datasource = _dexma_datasource(installation, device, ["active_energy_delta"],
                                   "Europe/Madrid")
    quarter = dt.timedelta(minutes=15)
    stamps = [T0 + i * quarter for i in range(12_001)]
    result = readings_ingest(deployment=deployment, source="fuzz", records=[
        ReadingIn(device=device.external_id, parameter="active_energy_delta", ts=ts,
                  period_end=ts + quarter, value=1.0) for ts in stamps])
    assert result.inserted == 12_001
    assert datasource_plan(datasource=datasource, max_batches=100) == 3
    built, refused = _check_dexma(datasource, MAX_VALUES)
    assert (built, refused) == (12_001, 0)


def test_wattics_planned_packets_are_json_and_chronological(tenant):
    deployment, source, _ = tenant

    @given(specs=st.lists(st.tuples(st.integers(0, 500), st.floats(-1e12, 1e12)),
                          min_size=1, max_size=30),
           zone=st.sampled_from(["Europe/Madrid", "Pacific/Kiritimati", "America/St_Johns"]))
    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(specs, zone):
        device = _device(deployment, source)
        stream = stream_create(device=device, meter_id=f"wm-{device.external_id}",
                               kind="electricity", channels={"pC_1": "active_energy",
                                                             "aP_1": "active_power"},
                               timezone=zone)
        result = readings_ingest(deployment=deployment, source="fuzz", records=[
            ReadingIn(device=device.external_id, parameter=key,
                      ts=T0 + dt.timedelta(minutes=m), value=v)
            for (m, v), key in zip(specs, itertools.cycle(["active_energy", "active_power"]),
                                   strict=False)])
        stream_plan(stream=stream)
        packets = [p for b in OutboundBatch.objects.filter(link=stream.link).order_by(
            "position") for p in b.payload["packets"]]
        stamps = [dt.datetime.fromisoformat(p["tsISO8601"]) for p in packets]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        for packet in packets:
            assert "\n" not in packet_line(packet)
        assert sum(len(p) - 2 for p in packets) == result.accepted

    check()


def test_a_wattics_reading_too_large_for_its_unit_is_quarantined_not_a_crash(tenant):
    deployment, source, _ = tenant
    device = _device(deployment, source)
    stream = stream_create(device=device, meter_id="wm-huge", kind="electricity",
                           channels={"pC_1": "active_energy"}, timezone="Europe/Madrid")
    readings_ingest(deployment=deployment, source="fuzz", records=[
        ReadingIn(device=device.external_id, parameter="active_energy", ts=T0, value=1e306),
        ReadingIn(device=device.external_id, parameter="active_energy",
                  ts=T0 + dt.timedelta(minutes=15), value=2.0),
    ])
    planned = stream_plan(stream=stream)
    assert planned.packets == 1
    (batch,) = OutboundBatch.objects.filter(link=stream.link)
    assert [p["pC_1"] for p in batch.payload["packets"]] == [2000]
    entry = Quarantine.objects.get(source="wattics:stream:wm-huge")
    assert "beyond any number" in entry.reason and float(entry.payload["value"]) == 1e306
