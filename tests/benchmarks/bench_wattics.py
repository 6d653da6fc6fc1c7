"""Wattics push throughput: the hub's sender vs a bare keep-alive requests loop.

100,000 packets across 20 streams, posted over HTTP to the sandbox collector served by
gunicorn (gthread) in a subprocess. Both sides use 20 concurrent senders, one per stream,
and post the same pre-built packets; the collector is reset in between. Targets: the hub
reaches at least 60% of the bare loop's throughput, and no packet arrives out of order.

    DJANGO_SETTINGS_MODULE=config.settings_test TEST_DATABASE_NAME=test_hub_wattics \
    .venv/bin/pytest tests/benchmarks/bench_wattics.py -s -o addopts="" -p no:cacheprovider
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import os
import resource
import threading
import time

import pytest
import requests

from apps.core.models import Datasource, Deployment, Device, OutboundBatch, Site
from apps.core.services import ReadingIn, readings_ingest
from apps.sandbox.wattics.models import CollectorAccount, CollectorMeter, CollectorPacket
from apps.wattics.models import WatticsAccount
from apps.wattics.schemas import packet_line
from apps.wattics.services import stream_create, streams_push
from tests.benchmarks._servers import gunicorn_server

PACKETS = int(os.environ.get("BENCH_WATTICS_PACKETS", "100000"))
STREAMS = int(os.environ.get("BENCH_WATTICS_STREAMS", "20"))
TARGET = 0.60
PATH = "/sandbox/wattics/measurements/v2/unifiedjson/"
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def collector_url():
    with gunicorn_server(threads=16) as base:
        yield base + PATH


def _setup(per_stream: int):
    deployment = Deployment.objects.create(slug="bench-wattics", name="Bench", timezone="UTC")
    ds = Datasource.objects.create(deployment=deployment, key="gw", name="gw")
    site = Site.objects.create(deployment=deployment, external_id="hq", name="HQ",
                               timezone="Europe/Madrid")
    WatticsAccount.objects.create(name="bench", username="bench", password="pw",
                                  deployment=deployment)
    collector = CollectorAccount(username="bench", log_packets=False)
    collector.set_password("pw")
    collector.save()
    streams = []
    for n in range(STREAMS):
        device = Device.objects.create(
            deployment=deployment, datasource=ds, site=site, external_id=f"bench-{n:02d}",
            local_id=f"bench-{n:02d}", name=f"bench {n}", commodity="energy", unit="kWh")
        streams.append(stream_create(device=device, meter_id=f"bench-meter-{n:02d}",
                                     kind="single", channels={"value": "temperature"},
                                     interval_seconds=60))
        CollectorMeter.objects.create(meter_id=f"bench-meter-{n:02d}", account=collector)
    records = (ReadingIn(device=f"bench-{n:02d}", parameter="temperature",
                         ts=START + dt.timedelta(minutes=i), value=round(20 + (i % 50) / 10, 1))
               for n in range(STREAMS) for i in range(per_stream))
    readings_ingest(deployment=deployment, records=records, source="bench")
    return streams


def _cpu() -> float:
    """CPU seconds of this process (the senders; the collector runs in its own)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _reset_collector() -> None:
    CollectorPacket.objects.all().delete()
    CollectorMeter.objects.update(last_ts=None, last_packet=None, accepted=0, discarded=0)


def _bare_loop(url: str, packets: dict[str, list[bytes]]) -> float:
    header = "Basic " + base64.b64encode(b"bench:pw").decode()
    errors: list[str] = []

    def send(lines: list[bytes]) -> None:
        with requests.Session() as session:
            session.headers.update({"Authorization": header, "Accept": "application/json",
                                    "Content-Type": "application/json"})
            for line in lines:
                response = session.post(url, data=line, timeout=30)
                if response.status_code != 200:
                    errors.append(response.text)

    threads = [threading.Thread(target=send, args=(lines,)) for lines in packets.values()]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    assert not errors, errors[:3]
    return elapsed


def _check_collector(per_stream: int) -> int:
    out_of_order = 0
    for meter in CollectorMeter.objects.all():
        times = list(CollectorPacket.objects.filter(meter=meter).order_by("pk")
                     .values_list("ts", flat=True))
        out_of_order += sum(1 for a, b in itertools.pairwise(times) if b <= a)
        assert meter.accepted == per_stream, (meter.meter_id, meter.accepted)
        out_of_order += meter.discarded
    return out_of_order


@pytest.mark.django_db(transaction=True)
def test_push_reaches_60_percent_of_a_bare_keep_alive_loop(collector_url, settings):
    settings.WATTICS_API_URL = collector_url
    settings.WATTICS_BATCH_PACKETS = 500
    per_stream = PACKETS // STREAMS
    total = per_stream * STREAMS
    started = time.perf_counter()
    streams = _setup(per_stream)
    setup_seconds = time.perf_counter() - started

    started = time.perf_counter()
    planned = streams_push(streams=streams, workers=STREAMS, deadline=0)
    plan_seconds = time.perf_counter() - started
    assert sum(r.planned.packets for r in planned.values()) == total

    packets: dict[str, list[bytes]] = {}
    for batch in OutboundBatch.objects.order_by("link_id", "position"):
        for packet in batch.payload["packets"]:
            packets.setdefault(packet["id"], []).append(packet_line(packet).encode())
    assert sum(len(v) for v in packets.values()) == total

    cpu = _cpu()
    bare = _bare_loop(collector_url, packets)
    bare_cpu = _cpu() - cpu
    assert _check_collector(per_stream) == 0
    _reset_collector()

    started, cpu = time.perf_counter(), _cpu()
    results = streams_push(streams=streams, workers=STREAMS, plan=False)
    hub = time.perf_counter() - started
    hub_cpu = _cpu() - cpu
    assert all(not r.error for r in results.values()), [r.error for r in results.values()]
    assert sum(r.sent for r in results.values()) == total
    out_of_order = _check_collector(per_stream)

    ratio = bare / hub
    print(f"\nwattics push: {total:,} packets, {STREAMS} streams, {STREAMS} senders each side")
    print(f"  setup (ingest {total:,} readings): {setup_seconds:.1f} s; "
          f"planning into batches: {plan_seconds:.1f} s ({total / plan_seconds:,.0f} packets/s)")
    print(f"  bare keep-alive requests loop: {bare:.1f} s = {total / bare:,.0f} packets/s")
    print(f"  hub sender (outbox, resume GET, progress): {hub:.1f} s = "
          f"{total / hub:,.0f} packets/s")
    print(f"  sender CPU per packet: bare {bare_cpu / total * 1e3:.2f} ms, "
          f"hub {hub_cpu / total * 1e3:.2f} ms")
    print(f"  ratio hub/bare: {ratio:.0%} (target >= {TARGET:.0%}); out of order: "
          f"{out_of_order}")
    assert out_of_order == 0
    assert ratio >= TARGET
