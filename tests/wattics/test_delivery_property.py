"""The delivery invariant for Wattics, over generated histories.

After delivery settles, the collector holds, at every instant the hub has readings for, one
packet with every channel's latest value; the only exceptions are readings that arrived after
Wattics already had a packet at or past their instant (Wattics discards packets sent out of
order), and each of those is visible as an undeliverable (late) packet with its reason. The
collector is the sandbox's, with its silent discard of packets that are not newer than the
meter's last one; the histories vary the ingest order (per parameter, per instant, shuffled,
corrections and gaps filled later), the zone and its DST days, the round and batch sizes
(scaled down to a few readings), the faults (5xx, 429 with Retry-After, connections dropped
before or after the collector stored a packet, a worker killed after the call) and worker
restarts between rounds.

PROPERTY_EXAMPLES sets the number of examples (the fault suite runs thousands).
"""

from __future__ import annotations

import datetime as dt
import itertools
from contextlib import ExitStack

import pytest
import responses
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from hypothesis import given, note
from hypothesis import strategies as st

from apps.core.models import Datasource, Deployment, Device, OutboundBatch, Reading
from apps.core.services import ReadingIn, readings_ingest
from apps.sandbox.wattics.models import CollectorAccount, CollectorMeter, CollectorPacket
from apps.wattics.models import WatticsAccount, WatticsLatePacket
from apps.wattics.schemas import convert
from apps.wattics.selectors import stream_accounts
from apps.wattics.services import stream_create, stream_push
from apps.wattics.services.streams import stream_channels
from tests.sandbox.forwarding import FAULTS, Forwarder, WorkerKilled, property_settings

pytestmark = pytest.mark.django_db
EXAMPLES = 200  # in `make test`; PROPERTY_EXAMPLES overrides
URL = "https://collector.property.test/measurements/v2/unifiedjson/"
CHANNELS = {"aP_1": "active_power", "v_1": "voltage", "pC_1": "active_energy"}
ZONES = ["Europe/Madrid", "America/New_York", "UTC", "Asia/Kolkata"]
# Instants from 22:00 UTC the day before a DST change, and an ordinary day.
STARTS = [dt.datetime(2026, 3, 28, 22, tzinfo=dt.UTC), dt.datetime(2026, 10, 24, 22, tzinfo=dt.UTC),
          dt.datetime(2026, 3, 8, 4, tzinfo=dt.UTC), dt.datetime(2026, 6, 1, tzinfo=dt.UTC)]
_numbers = itertools.count()


@st.composite
def histories(draw):
    start = draw(st.sampled_from(STARTS))
    slots = draw(st.integers(1, 16))
    records = {}
    for field in CHANNELS:
        for index in draw(st.sets(st.integers(0, slots - 1), min_size=0, max_size=slots)):
            # A cumulative index grows; the other channels take any value.
            value = 10.0 + index if field == "pC_1" else float(draw(st.integers(0, 500)))
            records[(field, start + index * dt.timedelta(minutes=15))] = value
    if not records:
        records[("aP_1", start)] = 1.0
    order = draw(st.sampled_from(["per_parameter", "per_instant", "shuffled"]))
    keys = sorted(records, key=(lambda k: k) if order == "per_parameter"
                  else (lambda k: (k[1], k[0])))
    if order == "shuffled":
        keys = draw(st.permutations(keys))
    steps = draw(st.integers(1, 4))
    cuts = sorted(draw(st.lists(st.integers(0, len(keys)), min_size=steps - 1,
                                max_size=steps - 1)))
    ingests = [[(k, records[k]) for k in keys[a:b]]
               for a, b in itertools.pairwise([0, *cuts, len(keys)])]
    for key in draw(st.lists(st.sampled_from(sorted(records)), max_size=3)):
        ingests.append([(key, records[key] + 1000)])  # a late correction
    return {
        "zone": draw(st.sampled_from(ZONES)),
        "ingests": ingests,
        "faults": [draw(st.lists(st.sampled_from(("ok", "ok", *FAULTS)), max_size=4))
                   for _ in ingests],
        "round": draw(st.integers(1, 8)),
        "batch": draw(st.integers(1, 4)),
    }


def _world(history):
    number = next(_numbers)
    deployment = Deployment.objects.create(slug=f"wprop-{number}", name=f"W {number}",
                                           timezone=history["zone"])
    source = Datasource.objects.create(deployment=deployment, key="gw", name="Gateway")
    device = Device.objects.create(deployment=deployment, datasource=source,
                                   external_id=f"w{number}", local_id=f"w{number}",
                                   name=f"Meter {number}", commodity="energy", unit="kWh")
    WatticsAccount.objects.create(name="Acme", username=f"acme-{number}", password="s3cret",
                                  deployment=deployment)
    collector = CollectorAccount(username=f"acme-{number}", log_packets=True)
    collector.set_password("s3cret")
    collector.save()
    meter = CollectorMeter.objects.create(meter_id=f"wm-{number}", account=collector)
    stream = stream_create(device=device, meter_id=meter.meter_id, kind="electricity",
                           channels=CHANNELS, timezone=history["zone"])
    return deployment, device, stream, meter


def _settle(stream):
    """Push until nothing is open: each round a fresh worker; retries made due at once."""
    for _ in range(60):
        OutboundBatch.objects.filter(link_id=stream.link_id).exclude(
            state__in=[OutboundBatch.State.SENT, OutboundBatch.State.DEAD]
        ).update(next_attempt_at=timezone.now())
        try:
            result = stream_push(stream=stream)
        except WorkerKilled:
            continue
        open_batches = OutboundBatch.objects.filter(link_id=stream.link_id).exclude(
            state__in=[OutboundBatch.State.SENT, OutboundBatch.State.DEAD])
        if not result.planned.readings and not open_batches.exists():
            return
    raise AssertionError("delivery did not settle in 60 rounds")


def _held(meter) -> dict[dt.datetime, dict]:
    packets = CollectorPacket.objects.filter(meter=meter, discarded=False)
    return {p.ts: p.packet for p in packets}


def _check(stream, meter, arrived_after, watermarks):
    factors = {c.field: c.factor for c in stream_channels(stream=stream)}
    fields = {p: f for f, p in CHANNELS.items()}
    held = _held(meter)
    meter.refresh_from_db()
    assert meter.discarded == 0  # the hub never sent a packet out of order
    late: dict[dt.datetime, list[dict]] = {}
    for packet in WatticsLatePacket.objects.filter(stream=stream):
        assert packet.reason
        late.setdefault(packet.ts, []).append(packet.packet)
    final = Reading.objects.filter(device=stream.device).values_list(
        "parameter__key", "ts", "value")
    instants = set()
    delivered = 0
    for key, ts, value in final:
        field, expected = fields[key], convert(value, factors[fields[key]])
        instants.add(ts)
        if held.get(ts, {}).get(field) == expected:
            delivered += 1
            continue
        # Not at Wattics: allowed only when it arrived once Wattics was past its instant,
        # and then it must be visibly undeliverable.
        step = arrived_after[(field, ts)]
        watermark = watermarks[step - 1] if step else None
        assert watermark is not None and watermark >= ts, (field, ts, "lost")
        assert any(p.get(field) == expected for p in late.get(ts, [])), (field, ts, "unmarked")
    assert set(held) <= instants  # nothing the hub has no reading for
    # The admin's accounts say the same, and add up.
    stream.refresh_from_db()
    accounts = stream_accounts(stream=stream)
    assert (accounts.accepted, accounts.delivered, accounts.pending,
            accounts.undeliverable_total, accounts.unaccounted) == (
        len(final), delivered, 0, len(final) - delivered, 0), accounts


def test_wattics_holds_what_was_accepted_minus_what_was_marked_undeliverable(settings):
    settings.WATTICS_API_URL = URL
    settings.WATTICS_SEND_RETRIES = 1
    settings.WATTICS_RETRY_BACKOFF = 0.0

    @property_settings(EXAMPLES)
    @given(history=histories())
    def check(history):
        with ExitStack() as stack:
            # Per example and undone after it: assigning to the `settings` fixture here would
            # stack one override per example (thousands in `make faults`).
            stack.enter_context(override_settings(WATTICS_PLAN_MAX_READINGS=history["round"],
                                                  WATTICS_BATCH_PACKETS=history["batch"]))
            stack.enter_context(transaction.atomic())  # rolled back: examples stay apart
            stack.callback(transaction.set_rollback, True)
            rsps = stack.enter_context(responses.RequestsMock(
                assert_all_requests_are_fired=False))
            collector = Forwarder(rsps, url=URL, methods=("POST", "GET"),
                                  sandbox_path="/sandbox/wattics/measurements/v2/unifiedjson/")
            deployment, device, stream, meter = _world(history)
            arrived_after: dict[tuple[str, dt.datetime], int] = {}
            watermarks: list[dt.datetime | None] = []
            for number, (step, faults) in enumerate(
                    zip(history["ingests"], history["faults"], strict=True)):
                readings_ingest(deployment=deployment, source="property", records=[
                    ReadingIn(device=device.external_id, parameter=CHANNELS[field], ts=ts,
                              value=value) for (field, ts), value in step])
                for key, _ in step:
                    arrived_after[key] = number
                collector.fail_next(faults)
                _settle(stream)
                meter.refresh_from_db()
                watermarks.append(meter.last_ts)
            note(f"collector: {sorted((ts, p) for ts, p in _held(meter).items())}")
            late = WatticsLatePacket.objects.filter(stream=stream)
            note(f"late: {list(late.values_list('ts', 'packet', 'reason'))}")
            note(f"faults hit: {collector.faults_hit}; watermarks: {watermarks}")
            _check(stream, meter, arrived_after, watermarks)

    check()

