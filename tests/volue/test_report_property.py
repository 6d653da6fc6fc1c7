"""The delivery invariant for Volue EnergyUsage reports, over generated histories.

After delivery settles, for every (event, customer) the platform holds exactly one report whose
hourly kWh are what the hub's final readings give — computed here from the readings, not with
the hub's own function — or the report is visibly not there: waiting or flagged with what is
`missing`, or a dead batch with its error. Never a report with wrong numbers, never two
reports for one (event, customer), never a silent absence. What the platform holds is the
sandbox's own store of received reports (apps/sandbox/volue), reached through the forwarder
with scripted faults on the report POST and on the token endpoint; every request is checked
against Volue's OpenAPI document by the suite's contract fixture.

The histories vary the meters' resolution (15-minute interval energy or a cumulative register),
the ingest order (per meter, per instant, shuffled, in several steps), late corrections, gaps
filled later, DST days in Europe/Oslo, the reporting deadline, the faults and worker restarts
(a fresh client every round).

PROPERTY_EXAMPLES sets the number of examples (the fault suite runs thousands).
"""

from __future__ import annotations

import datetime as dt
import itertools
from contextlib import ExitStack

import pytest
import responses
from django.core.cache import cache
from django.db import transaction
from django.test import override_settings
from hypothesis import event, given, note
from hypothesis import strategies as st

from apps.core.models import Device, OutboundBatch, Reading
from apps.core.services import ReadingIn, readings_ingest
from apps.sandbox.volue.models import SbEvent, SbReport
from apps.volue.client import volue_client
from apps.volue.models import EnergyReport, VolueCustomer, VolueMeter
from apps.volue.schemas import event_parse
from apps.volue.services import event_record, reports_dispatch, reports_plan
from tests.sandbox.forwarding import FAULTS, Forwarder, WorkerKilled, property_settings

pytestmark = pytest.mark.django_db
EXAMPLES = 60  # in `make test`; PROPERTY_EXAMPLES overrides
API = "https://volue.property.test/energy-coordination/v1"
AUTH = "https://auth.volue.property.test/connect/token"
Q = dt.timedelta(minutes=15)
H = dt.timedelta(hours=1)
MAX_GAP = dt.timedelta(minutes=60)
# Event windows on Oslo's DST days (clocks change at 01:00 UTC) and an ordinary day.
STARTS = [dt.datetime(2026, 3, 29, 0, tzinfo=dt.UTC), dt.datetime(2026, 10, 25, 0, tzinfo=dt.UTC),
          dt.datetime(2026, 10, 24, 22, tzinfo=dt.UTC), dt.datetime(2026, 6, 1, 10, tzinfo=dt.UTC)]
KINDS = {"interval": "active_energy_delta", "cumulative": "active_energy"}
_numbers = itertools.count()


@st.composite
def histories(draw):
    start = draw(st.sampled_from(STARTS))
    hours = draw(st.integers(1, 3))
    # Readings from an hour before the window to an hour after it, as 15-minute slots.
    slots = (hours + 2) * 4
    meters = []
    records, truth = {}, {}
    for m in range(draw(st.integers(1, 2))):
        kind = draw(st.sampled_from(sorted(KINDS)))
        meters.append(kind)
        present = draw(st.sets(st.integers(0, slots), min_size=slots - 3, max_size=slots + 1))
        register = 1000.0
        for i in range(slots + 1):
            step = draw(st.integers(0, 40)) / 8  # exact in binary: sums stay exact
            register += step
            if kind == "interval" and i < slots:
                truth[(m, i)] = step
            elif kind == "cumulative":
                truth[(m, i)] = register
            if i in present and (m, i) in truth:
                records[(m, i)] = truth[(m, i)]
    order = draw(st.sampled_from(["per_meter", "per_instant", "shuffled"]))
    keys = sorted(records, key=(lambda k: k) if order == "per_meter" else (lambda k: (k[1], k)))
    if order == "shuffled":
        keys = draw(st.permutations(keys))
    steps = draw(st.integers(1, 3))
    cuts = sorted(draw(st.lists(st.integers(0, len(keys)), min_size=steps - 1,
                                max_size=steps - 1)))
    ingests = [[(k, records[k]) for k in keys[a:b]]
               for a, b in itertools.pairwise([0, *cuts, len(keys)])]
    # Gaps filled later: slots left out above arrive in a last step.
    filled = draw(st.lists(st.tuples(st.integers(0, len(meters) - 1), st.integers(0, slots)),
                           max_size=3, unique=True))
    late = [(key, truth[key]) for key in filled if key in truth and key not in records]
    if late:
        ingests.append(late)
    for key in draw(st.lists(st.sampled_from(sorted(records)), max_size=2)) if records else []:
        ingests.append([(key, records[key] + 0.5)])  # a late correction
    return {
        "start": start, "hours": hours, "meters": meters, "ingests": ingests,
        "faults": [draw(st.lists(st.sampled_from(("ok", "ok", *FAULTS)), max_size=3))
                   for _ in ingests],
        "token_faults": draw(st.lists(st.sampled_from(("ok", "500", "503", "429",
                                                       "drop_before")), max_size=2)),
        "deadline": draw(st.sampled_from([1, 6])),
    }


def _world(history, make_device):
    from apps.core.models import Deployment

    number = next(_numbers)
    deployment = Deployment.objects.create(slug=f"vprop-{number}", name=f"V {number}",
                                           timezone="Europe/Oslo")
    customer = VolueCustomer.objects.create(deployment=deployment, key=f"c{number}",
                                            name="Nordlys")
    devices = []
    for m, _ in enumerate(history["meters"]):
        device = make_device(deployment, f"v{number}-{m}")
        VolueMeter.objects.create(customer=customer, device=device, remote_id=f"loc-{number}-{m}",
                                  meter_point_id=f"70705750000{number % 10**6:06d}{m}")
        devices.append(device)
    start, hours = history["start"], history["hours"]
    event_id = f"ev-{number}"
    targets = [{"locationId": f"loc-{number}-{m}",
                "meterPointId": f"70705750000{number % 10**6:06d}{m}", "resolution": "01:00:00",
                "points": [{"timestamp": (start + i * H).isoformat(), "maxPowerInKiloWatts": 5}
                           for i in range(hours)]} for m in range(len(devices))]
    payload = {"payloadType": "LocationLPC", "targets": targets}
    SbEvent.objects.create(event_id=event_id, notification_type="LocationLPC", payload=payload,
                           created_at=start - 6 * H)  # the platform raised it
    event_record(event=event_parse(event_id, (start - 6 * H).isoformat(), payload),
                 source="webhook")
    return deployment, customer, devices, event_id


def _ingest(deployment, history, devices, step):
    first = history["start"] - H
    records = []
    for (m, i), value in step:
        kind = history["meters"][m]
        ts = first + i * Q
        records.append(ReadingIn(devices[m].external_id, KINDS[kind], ts, value,
                                 period_end=ts + Q if kind == "interval" else None))
    readings_ingest(deployment=deployment, records=records, source="property")


def _settle(clock):
    """Plan and send until nothing is open: each round a fresh worker (client)."""
    for _ in range(40):
        clock[0] += dt.timedelta(minutes=10)  # past any retry delay and any lapsed lease
        reports_plan(now=clock[0])
        # Batches are enqueued at the machine's time; on the test's clock they are due now.
        OutboundBatch.objects.filter(link__platform="volue", state__in=[
            OutboundBatch.State.PENDING, OutboundBatch.State.RETRY]).update(
            next_attempt_at=clock[0])
        client = volue_client(sleep=lambda _s: None, max_retries=1)
        try:
            reports_dispatch(client=client, now=clock[0])
        except WorkerKilled:
            continue
        open_batches = OutboundBatch.objects.filter(link__platform="volue").exclude(
            state__in=[OutboundBatch.State.SENT, OutboundBatch.State.DEAD])
        if not open_batches.exists():
            return
    raise AssertionError("delivery did not settle in 40 rounds")


def _register_at(rows: list[tuple[dt.datetime, float]], instant: dt.datetime) -> float | None:
    """A register's value at an instant: read there, or on the line between the readings
    either side when they are at most the allowed gap apart."""
    exact = [v for ts, v in rows if ts == instant]
    if exact:
        return exact[0]
    before = [(ts, v) for ts, v in rows if ts < instant]
    after = [(ts, v) for ts, v in rows if ts > instant]
    if not before or not after:
        return None
    (t0, v0), (t1, v1) = before[-1], after[0]
    if t1 - t0 > MAX_GAP:
        return None
    return v0 + (instant - t0) / (t1 - t0) * (v1 - v0)


def _expected(device: Device, kind: str, start: dt.datetime, hours: int):
    """Hourly kWh from the device's final readings; None when an hour cannot be known."""
    rows = list(Reading.objects.filter(device=device, parameter__key=KINDS[kind])
                .order_by("ts").values_list("ts", "value"))
    out = []
    for h in range(hours):
        begin = start + h * H
        if kind == "interval":
            quarters = {ts: v for ts, v in rows if begin <= ts < begin + H}
            if len(quarters) < 4:
                return None
            out.append(sum(quarters.values()))
        else:
            first, last = _register_at(rows, begin), _register_at(rows, begin + H)
            if first is None or last is None or last < first:
                return None
            out.append(last - first)
    return out


def _check(history, customer, devices, event_id):
    report = EnergyReport.objects.filter(event__event_id=event_id, customer=customer).first()
    held = [r.body for r in SbReport.objects.filter(event_id=event_id)]
    assert len(held) <= 1, f"{len(held)} reports at Volue for one (event, customer)"
    expected = [_expected(d, kind, history["start"], history["hours"])
                for d, kind in zip(devices, history["meters"], strict=True)]
    complete = all(e is not None for e in expected)
    assert report is not None, "no report at all: a silent absence"
    if not held:
        # Visibly not sent: waiting or flagged with what is missing, or a dead batch.
        if report.state == EnergyReport.State.QUEUED:
            assert report.batch is not None and report.batch.state == OutboundBatch.State.DEAD
            assert report.batch.last_error, "dead without its error"
        else:
            assert not complete, f"complete data but the report is {report.state}"
            assert report.missing, "not sent and no reason"
        return
    # Whatever the platform holds has the numbers the final readings give, or the hub says
    # visibly that they changed after it was sent.
    [body] = held
    assert body["eventId"] == event_id
    by_location = {p["locationId"]: p for p in body["payloads"]}
    assert len(by_location) == len(devices)
    sent_right = complete
    for m, device in enumerate(devices):
        payload = by_location[VolueMeter.objects.get(device=device).remote_id]
        hours = [(p["timestamp"], p["kiloWattHours"]) for p in payload["points"]]
        assert [ts for ts, _ in hours] == [
            (history["start"] + h * H).isoformat().replace("+00:00", "Z")
            for h in range(history["hours"])]
        if expected[m] is None or any(abs(kwh - want) > 1e-6 for (_, kwh), want in
                                      zip(hours, expected[m], strict=True)):
            sent_right = False
    if not sent_right:
        assert report.superseded, f"Volue holds wrong kWh, unmarked: {body} vs {expected}"


def test_volue_holds_each_report_once_with_the_readings_kwh_or_it_is_visibly_not_sent(
        settings, make_device):
    settings.VOLUE_API_URL = API
    settings.VOLUE_AUTH_URL = AUTH
    settings.VOLUE_CLIENT_ID = "hub"
    settings.VOLUE_CLIENT_SECRET = "s3cret"
    settings.VOLUE_MAX_GAP_MINUTES = int(MAX_GAP.total_seconds() // 60)
    settings.OUTBOX_RETRY_SCHEDULE = [60]
    settings.OUTBOX_LEASE_SECONDS = 300

    @property_settings(EXAMPLES)
    @given(history=histories())
    def check(history):
        cache.delete(volue_client().api.auth.cache_key)  # a token is fetched in this example
        with ExitStack() as stack:
            # Per example and undone after it: assigning to the `settings` fixture here would
            # stack one override per example (thousands in `make faults`).
            stack.enter_context(override_settings(
                VOLUE_REPORT_DEADLINE_HOURS=history["deadline"]))
            stack.enter_context(transaction.atomic())  # rolled back: examples stay apart
            stack.callback(transaction.set_rollback, True)
            rsps = stack.enter_context(responses.RequestsMock(
                assert_all_requests_are_fired=False))
            platform = Forwarder(rsps, url=f"{API}/reports",
                                 sandbox_path="/sandbox/volue/api/reports")
            tokens = Forwarder(rsps, url=AUTH, sandbox_path="/sandbox/volue/connect/token")
            tokens.fail_next(history["token_faults"])
            deployment, customer, devices, event_id = _world(history, make_device)
            clock = [history["start"] + history["hours"] * H]
            for step, faults in zip(history["ingests"], history["faults"], strict=True):
                _ingest(deployment, history, devices, step)
                platform.fail_next(faults)
                _settle(clock)
            report = EnergyReport.objects.filter(event__event_id=event_id).first()
            note(f"report: {report and (report.state, report.missing, report.superseded)}")
            batch = report.batch if report is not None else None
            note(f"batch: {batch and (batch.state, batch.attempts, batch.last_error)}")
            note(f"held: {list(SbReport.objects.filter(event_id=event_id).values('body'))}")
            note(f"faults hit: {platform.faults_hit} / token {tokens.faults_hit}")
            _check(history, customer, devices, event_id)
            held = SbReport.objects.filter(event_id=event_id).count()
            event(f"outcome: {report.state}, batch {batch and batch.state}, held {held}, "
                  f"superseded {bool(report.superseded)}")
            for fault in {*platform.faults_hit, *(f"token {f}" for f in tokens.faults_hit)}:
                event(f"fault hit: {fault}")

    check()
