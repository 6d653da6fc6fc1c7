"""Against the sandbox collector over a real socket."""

import io
import random

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.core.models import OutboundBatch, Run
from apps.sandbox.wattics.models import (
    CollectorAccount,
    CollectorFault,
    CollectorMeter,
    CollectorPacket,
)
from apps.wattics.services import stream_push, streams_push
from tests.wattics.conftest import T0, Q, ingest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
PATH = "/sandbox/wattics/measurements/v2/unifiedjson/"


@pytest.fixture(autouse=True)
def collector(live_server, settings):
    settings.WATTICS_API_URL = live_server.url + PATH
    account = CollectorAccount(username="acme", auto_register=True)
    account.set_password("s3cret")
    account.save()
    return account


def received(meter_id):
    return list(CollectorPacket.objects.filter(meter__meter_id=meter_id).order_by("pk"))


def test_parallel_streams_never_reorder_within_a_stream(deployment, account, make_stream):
    streams = [make_stream(deployment, f"wm-{n}") for n in range(6)]
    rng = random.Random(7)
    for s in streams:
        ingest(deployment, s.device, "temperature", [rng.uniform(15, 25) for _ in range(25)])
    results = streams_push(streams=streams, workers=6)
    assert all(not r.error for r in results.values())
    for s in streams:
        packets = received(s.meter_id)
        assert len(packets) == 25 and not any(p.discarded for p in packets)
        times = [p.ts for p in packets]
        assert times == sorted(times) and len(set(times)) == 25


def test_timeout_whose_packet_arrived_leaves_no_duplicate_and_no_gap(
        deployment, account, make_stream, settings):
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [20])
    stream_push(stream=stream)
    settings.WATTICS_READ_TIMEOUT = 0.3
    CollectorFault.objects.create(delay_ms=900, remaining=1)  # stored, answered too late
    ingest(deployment, stream.device, "temperature", [21, 22], start=T0 + Q)
    result = stream_push(stream=stream)
    assert result.sent == 2, result
    meter = CollectorMeter.objects.get(meter_id="wm-1")
    assert meter.accepted == 3 and meter.discarded == 0


def test_timeout_whose_packet_was_lost_sends_it_again(deployment, account, make_stream,
                                                      settings):
    stream = make_stream(deployment)
    settings.WATTICS_READ_TIMEOUT = 0.3
    CollectorFault.objects.create(status=503, delay_ms=900, remaining=1)  # lost
    ingest(deployment, stream.device, "temperature", [20, 21])
    assert stream_push(stream=stream).sent == 2
    meter = CollectorMeter.objects.get(meter_id="wm-1")
    assert meter.accepted == 2 and meter.discarded == 0


def test_injected_503_delays_the_stream_without_losing_order(
        deployment, account, make_stream, settings):
    settings.WATTICS_SEND_RETRIES = 0
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [20, 21, 22])
    fault = CollectorFault.objects.create(status=503)
    result = stream_push(stream=stream)
    assert result.sent == 0 and "later packets of this stream wait" in result.error
    fault.delete()
    OutboundBatch.objects.filter(link=stream.link).update(next_attempt_at=timezone.now())
    assert stream_push(stream=stream).sent == 3
    assert [p.packet["value"] for p in received("wm-1")] == [20, 21, 22]


def test_backfill_command_sends_everything_and_reports_progress(
        deployment, account, make_stream):
    streams = [make_stream(deployment, f"wm-{n}") for n in range(3)]
    for s in streams:
        ingest(deployment, s.device, "temperature", list(range(10)))
    out = io.StringIO()
    call_command("wattics_backfill", "--deployment", deployment.slug, stdout=out)
    assert "30/30 packets" in out.getvalue() and "Sent 30 packets." in out.getvalue()
    run = Run.objects.get(kind="wattics.backfill")
    assert run.status == "succeeded" and run.counts["packets_done"] == 30
    assert out.getvalue().count("100%|") == 1 and "packets/s" in out.getvalue()
    assert CollectorPacket.objects.filter(discarded=False).count() == 30


def test_backfill_command_with_nothing_to_send_draws_no_bar(deployment, account, make_stream):
    make_stream(deployment, "wm-empty")
    out = io.StringIO()

    call_command("wattics_backfill", "--deployment", deployment.slug, stdout=out)

    assert "0/0" not in out.getvalue() and "%|" not in out.getvalue()
    assert out.getvalue().count("Sent 0 packets.") == 1
