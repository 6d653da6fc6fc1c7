"""The delivery invariant for IS3, over generated histories.

What IS3 holds, after delivery settles, is exactly what the hub accepted minus what the hub
visibly marked undeliverable (quarantined with a reason), with the latest value of every
reading. The simulator is the sandbox's IS3 with its silent discards (misaligned interval
readings, a second discrete resolution of a device parameter); the histories vary the order
of ingest (per parameter, per instant, shuffled, corrections and gaps filled later), the
resolutions, the zone and its DST days, the batch size (scaled down to a few values), the
faults (5xx, 429 with Retry-After, connections dropped before or after IS3 stored a body, a
worker killed after the call) and worker restarts between rounds.

PROPERTY_EXAMPLES sets the number of examples (the fault suite runs thousands).
"""

from __future__ import annotations

import datetime as dt
import itertools
from contextlib import ExitStack
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
import responses
from django.db import transaction
from django.utils import timezone
from hypothesis import given, note
from hypothesis import strategies as st

from apps.core.models import (
    Datasource,
    Deployment,
    Device,
    OutboundBatch,
    Parameter,
    Quarantine,
    Reading,
)
from apps.core.services import ReadingIn, link_get_or_create, readings_ingest
from apps.dexma import services
from apps.dexma.client import Is3Client
from apps.dexma.models import DexmaDatasource, Installation, SelectedDevice
from apps.dexma.selectors import datasource_accounts
from apps.dexma.services import live as dexma_live
from apps.sandbox.dexma.models import Is3Stats, Is3Value, PlatformDatasource, PlatformDeployment
from tests.sandbox.forwarding import FAULTS, Forwarder, WorkerKilled, property_settings

pytestmark = pytest.mark.django_db
EXAMPLES = 200  # in `make test`; PROPERTY_EXAMPLES overrides
INSERT = "https://insert.is3.test/readings"
ZONES = ["Europe/Madrid", "America/New_York", "UTC", "Asia/Kolkata"]
# A day before a DST change in Madrid and New York, and an ordinary one.
DAYS = [dt.date(2026, 3, 28), dt.date(2026, 3, 7), dt.date(2026, 10, 24), dt.date(2026, 6, 1)]
STEP = {"QH": dt.timedelta(minutes=15), "H": dt.timedelta(hours=1)}
BASE = {"active_energy_delta": 402, "active_power_avg": 401, "active_power": 401}
DIGIT = {"QH": 0, "H": 1, "D": 2}
OPERATION = {"active_energy_delta": 1, "active_power_avg": 2}
_numbers = itertools.count()


def _slot(day: dt.date, zone: ZoneInfo, resolution: str, index: int) -> tuple[dt.datetime,
                                                                             dt.datetime]:
    """The index-th interval of that resolution from the day's local midnight."""
    if resolution == "D":
        start = dt.datetime.combine(day + dt.timedelta(days=index), dt.time(), tzinfo=zone)
        end = dt.datetime.combine(day + dt.timedelta(days=index + 1), dt.time(), tzinfo=zone)
        return start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)
    start = midnight + index * STEP[resolution]
    return start, start + STEP[resolution]


@st.composite
def histories(draw):
    zone = draw(st.sampled_from(ZONES))
    day = draw(st.sampled_from(DAYS))
    devices = draw(st.integers(1, 2))
    records = {}
    for device in range(devices):
        for key in ("active_energy_delta", "active_power_avg", "active_power"):
            if not draw(st.booleans()):
                continue
            resolution = draw(st.sampled_from(["QH", "H", "D"]))
            for index in draw(st.sets(st.integers(0, 11 if resolution != "D" else 2),
                                      min_size=1, max_size=8)):
                start, end = _slot(day, ZoneInfo(zone), resolution, index)
                if key == "active_power":
                    end = None
                elif draw(st.integers(0, 9)) == 0:  # misaligned: IS3 would drop it
                    start, end = start + dt.timedelta(minutes=7), end + dt.timedelta(minutes=7)
                records[(device, key, start)] = (end, float(draw(st.integers(0, 999))))
        # Another resolution of the same device parameter, sent later: IS3 keeps one.
        if draw(st.integers(0, 3)) == 0:
            other = draw(st.sampled_from(["QH", "H"]))
            for index in draw(st.sets(st.integers(12, 20), min_size=1, max_size=3)):
                start, end = _slot(day, ZoneInfo(zone), other, index)
                records.setdefault((device, "active_energy_delta", start), (end, 5.0))
    if not records:
        records[(0, "active_power", _slot(day, ZoneInfo(zone), "QH", 0)[0])] = (None, 1.0)
    order = draw(st.sampled_from(["per_parameter", "per_instant", "shuffled"]))
    keys = sorted(records, key=lambda k: (k[1], k[0], k[2]) if order == "per_parameter"
                  else (k[2], k[0], k[1]))
    if order == "shuffled":
        keys = draw(st.permutations(keys))
    steps = draw(st.integers(1, 4))
    cuts = sorted(draw(st.lists(st.integers(0, len(keys)), min_size=steps - 1,
                                max_size=steps - 1)))
    parts = [keys[a:b] for a, b in itertools.pairwise([0, *cuts, len(keys)])]
    ingests = [[(k, records[k]) for k in part] for part in parts]
    # Late corrections: some readings come again with another value in a later step.
    corrections = draw(st.lists(st.sampled_from(sorted(records)), max_size=4))
    for key in corrections:
        ingests.append([(key, (records[key][0], records[key][1] + 1000))])
    faults = [draw(st.lists(st.sampled_from(("ok", "ok", *FAULTS)), max_size=4))
              for _ in ingests]
    return {"zone": zone, "devices": devices, "ingests": ingests, "faults": faults,
            "limit": draw(st.integers(1, 8))}


@pytest.fixture
def settings_fixture(settings):
    settings.DEXMA_INSERT_URL = INSERT
    return settings


def _world(history):
    number = next(_numbers)
    deployment = Deployment.objects.create(slug=f"prop-{number}", name=f"Prop {number}",
                                           timezone=history["zone"])
    installation = Installation(dep_id=f"prop-dep-{number}", deployment=deployment)
    installation.set_token(f"prop-token-{number:012d}")
    installation.save()
    account = PlatformDeployment.objects.create(dep_id=f"prop-dep-{number}", name="Prop")
    remote = PlatformDatasource.objects.create(
        deployment=account, app_id="63", key=f"hub-prop-{number}", name="Prop",
        timezone=history["zone"], source_token=f"src-{number}")
    link = link_get_or_create(platform="dexma", name=f"prop/{number}", deployment=deployment)
    datasource = DexmaDatasource.objects.create(
        installation=installation, deployment=deployment, name="Prop", platform_id=remote.pk,
        key=remote.key, source_token=remote.source_token, timezone=history["zone"], link=link)
    parameters = list(Parameter.objects.filter(key__in=BASE))
    source = Datasource.objects.create(deployment=deployment, key="gw", name="Gateway")
    devices = []
    for n in range(history["devices"]):
        device = Device.objects.create(deployment=deployment, datasource=source,
                                       external_id=f"m{number}-{n}",
                                       local_id=f"m{number}-{n}", name=f"Meter {n}",
                                       commodity="energy", unit="kWh")
        # Selected before it has readings: no resolution can be fixed yet.
        SelectedDevice.objects.create(datasource=datasource, device=device).parameters.set(
            parameters)
        devices.append(device)
    return deployment, datasource, remote, devices


def _settle(datasource, clock):
    """Deliver until nothing is open: each round a fresh worker (client and sender)."""
    for _ in range(60):
        clock[0] += dt.timedelta(hours=2)  # past any retry delay and any lapsed lease
        datasource.refresh_from_db()
        try:
            with Is3Client(max_retries=0) as client:
                result = services.datasource_deliver(datasource=datasource, client=client,
                                                     now=clock[0])
        except WorkerKilled:
            continue
        open_batches = OutboundBatch.objects.filter(link_id=datasource.link_id).exclude(
            state__in=[OutboundBatch.State.SENT, OutboundBatch.State.DEAD])
        if not result.batches_planned and not open_batches.exists():
            return
    raise AssertionError("delivery did not settle in 60 rounds")


def _aligned(start: dt.datetime, end: dt.datetime | None, zone: ZoneInfo) -> bool:
    local = start.astimezone(zone)
    if end is None:
        return True
    length = end - start
    if local.second or local.microsecond:
        return False
    if length in (STEP["QH"],):
        return local.minute % 15 == 0
    if length == STEP["H"]:
        return local.minute == 0
    return local.hour == 0 and local.minute == 0


def _resolution(start: dt.datetime, end: dt.datetime) -> str:
    length = end - start
    return "QH" if length == STEP["QH"] else "H" if length == STEP["H"] else "D"


def _expected_code(key: str, start: dt.datetime, end: dt.datetime | None) -> int:
    if end is None:
        return BASE[key]
    return BASE[key] * 100 + DIGIT[_resolution(start, end)] * 10 + OPERATION[key]


def _explain(deployment, datasource, is3) -> None:
    """What a failing example shows besides its history."""
    quarantine = Quarantine.objects.filter(source=f"dexma:datasource:{datasource.key}")
    batches = OutboundBatch.objects.filter(link_id=datasource.link_id)
    selections = SelectedDevice.objects.filter(datasource=datasource)
    readings = Reading.objects.filter(device__deployment=deployment).values_list(
        "device__local_id", "parameter__key", "ts", "period_end", "value", "seq")
    note(f"quarantined: {list(quarantine.values_list('payload', 'reason'))}")
    note(f"batches: {list(batches.values_list('seq_from', 'seq_to', 'state', 'last_body'))}")
    note(f"resolutions: {list(selections.values_list('device_id', 'resolutions'))}")
    note(f"readings: {list(readings)}")
    note(f"faults hit: {is3.faults_hit}")


def _check(deployment, datasource, remote):
    zone = ZoneInfo(datasource.timezone)
    accepted = {r.pk: r for r in Reading.objects.filter(device__deployment=deployment)
                .select_related("device", "parameter")}
    held = {(did, p, ts): v for did, p, ts, v in Is3Value.objects.filter(
        series__datasource=remote).values_list("series__did", "series__p", "ts", "v")}
    quarantined = {}
    for entry in Quarantine.objects.filter(source=f"dexma:datasource:{datasource.key}"):
        assert entry.reason, entry.payload
        quarantined[entry.payload["context"]["reading_id"]] = entry.reason
    expected = {}
    for pk, reading in accepted.items():
        key = (reading.device.local_id,
               _expected_code(reading.parameter.key, reading.ts, reading.period_end), reading.ts)
        if pk in quarantined:
            assert key not in held, (quarantined[pk], key)
            continue
        expected[key] = reading.value
    # Nothing silently lost, nothing extra, every value the latest.
    assert held == expected
    # The admin's accounts say the same, and add up.
    accounts = datasource_accounts(datasource=datasource)
    assert (accounts.accepted, accounts.delivered, accounts.pending,
            accounts.undeliverable_total, accounts.unaccounted) == (
        len(accepted), len(expected), 0, len(accepted) - len(expected), 0)
    # And nothing refused that IS3 would have kept: misaligned, or another resolution of a
    # device parameter (did and base code) than the one IS3 holds.
    held_resolutions = {(did, p // 100): (p // 10) % 10 for did, p, _ in held if p >= 10000}
    for pk in quarantined:
        reading = accepted[pk]
        if not _aligned(reading.ts, reading.period_end, zone):
            continue
        code = _expected_code(reading.parameter.key, reading.ts, reading.period_end)
        kept = held_resolutions.get((reading.device.local_id, code // 100))
        assert kept is not None and kept != (code // 10) % 10, quarantined[pk]
    stats = Is3Stats.objects.filter(datasource=remote).first()
    assert stats is None or stats.discarded == 0  # the hub never sent what IS3 drops


def test_is3_holds_what_was_accepted_minus_what_was_marked_undeliverable(settings_fixture):
    @property_settings(EXAMPLES)
    @given(history=histories())
    def check(history):
        with ExitStack() as stack:
            # Each example in a savepoint rolled back at its end: a failing one leaves
            # nothing behind for the next (nor a broken transaction).
            stack.enter_context(transaction.atomic())
            stack.callback(transaction.set_rollback, True)
            rsps = stack.enter_context(responses.RequestsMock(
                assert_all_requests_are_fired=False))
            stack.enter_context(mock.patch.object(dexma_live, "MAX_VALUES", history["limit"]))
            is3 = Forwarder(rsps, url=INSERT, sandbox_path="/sandbox/dexma/is3/readings")
            deployment, datasource, remote, devices = _world(history)
            clock = [timezone.now()]
            for step, faults in zip(history["ingests"], history["faults"], strict=True):
                records = [ReadingIn(device=devices[d].external_id, parameter=key, ts=start,
                                     value=value, period_end=end)
                           for (d, key, start), (end, value) in step]
                readings_ingest(deployment=deployment, records=records, source="property")
                is3.fail_next(faults)
                _settle(datasource, clock)
            _explain(deployment, datasource, is3)
            _check(deployment, datasource, remote)

    check()
