"""Scenario 1: the Celery worker is killed with SIGKILL in the middle of a DEXMA backfill and
of a Wattics push, then started again. Nothing is missing at the platforms, at most one IS3
batch goes twice, and no Wattics packet arrives out of order."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import scaled
from tests.faults.platforms import (
    DEXMA_KEY,
    dexma_compare,
    dexma_link_id,
    is3_stats,
    wattics_expected,
    wattics_meters,
    wattics_packets,
)

pytestmark = pytest.mark.faults

# The claim of the batch in flight lapses after the lease; then it is sent again. A batch
# (5,000 IS3 values, or 100 Wattics packets) takes a second or two to send, far below it.
ENV = {"OUTBOX_LEASE_SECONDS": str(scaled(30, 15)), "WATTICS_BATCH_PACKETS": "100"}

_BACKFILL_QUEUE = """
import datetime as dt, json
from django.utils import timezone
from apps.dexma import services
from apps.dexma.models import DexmaDatasource
from apps.dexma.tasks import backfill_run
ds = DexmaDatasource.objects.get(key=%r)
end = timezone.now() + dt.timedelta(hours=1)
backfill = services.backfill_start(datasource=ds, date_from=end - dt.timedelta(days=%d),
                                   date_to=end)
backfill_run.delay(backfill.pk)
print(json.dumps(backfill.pk))
"""


def _backfill_batches(hub, backfill_id: int) -> list[tuple[str, int, int]]:
    """(state, attempts, values) of the backfill's IS3 batches."""
    return hub.sql("SELECT state, attempts, item_count FROM core_outboundbatch "
                   "WHERE idempotency_key LIKE %s", (f"dexma:%:bf{backfill_id}:%",))


def _in_flight(hub, backfill_id: int) -> bool:
    """A backfill batch is being sent (claimed, no outcome yet)."""
    return any(state == "sending" for state, _, _ in _backfill_batches(hub, backfill_id))


def test_dexma_backfill_survives_worker_killed_mid_batch(hub_factory):
    days = scaled(30, 12)
    with hub_factory(env=ENV) as hub:
        hub.seed_demo(days=days)
        hub.start()
        link_id = dexma_link_id(hub, DEXMA_KEY)
        backfill_id = hub.shell(_BACKFILL_QUEUE % (DEXMA_KEY, days + 2))

        hub.wait_for(lambda: _in_flight(hub, backfill_id), 300, "a backfill batch in flight",
                     interval=0.02)
        hub.kill_worker()
        killed_at = time.monotonic()
        at_kill = _backfill_batches(hub, backfill_id)
        assert any(state != "sent" for state, _, _ in at_kill), "killed too late to tell"
        hub.start_worker()

        def backfill_sent() -> bool:
            batches = _backfill_batches(hub, backfill_id)
            return batches and all(state == "sent" for state, _, _ in batches)

        hub.wait_for(backfill_sent, scaled(600, 240), "every backfill batch acknowledged")
        recovery = time.monotonic() - killed_at
        batches = _backfill_batches(hub, backfill_id)
        comparison = dexma_compare(hub, DEXMA_KEY)
        stats = is3_stats(hub, DEXMA_KEY)
        state = hub.sql("SELECT state, values_sent, values_planned FROM dexma_backfill "
                        "WHERE id = %s", (backfill_id,))[0]
        open_links = hub.sql("SELECT count(*) FROM core_outboundbatch WHERE link_id = %s "
                             "AND state <> 'sent'", (link_id,))[0][0]
        print(f"FIGURES dexma-worker-kill: readings in hub {comparison.expected}, held by IS3 "
              f"{comparison.held}, batches {len(batches)} (sent at kill "
              f"{sum(s == 'sent' for s, _, _ in at_kill)}), batches sent more than once "
              f"{sum(a > 1 for _, a, _ in batches)}, IS3 stats {stats}, backfill {state}, "
              f"recovery {recovery:.1f}s")

        assert comparison.ok, str(comparison)
        assert open_links == 0
        # The backfill's own task died with the worker; live delivery finished its batches
        # and the backfill shows done, with every planned value acknowledged.
        hub.wait_for(lambda: hub.sql("SELECT state FROM dexma_backfill WHERE id = %s",
                                     (backfill_id,))[0][0] == "done", 30, "backfill done")
        assert state[1] == state[2] or hub.sql(
            "SELECT values_sent = values_planned FROM dexma_backfill WHERE id = %s",
            (backfill_id,))[0][0]
        # The batch in flight when the worker died may go twice; no other.
        assert sum(attempts > 1 for _, attempts, _ in batches) <= 1
        assert stats["overwrites"] <= max(values for _, _, values in batches)
        assert stats["refused"] == 0


@pytest.mark.faults_full
def test_dexma_backfill_command_killed_resumes(hub_factory):
    """`manage.py dexma_backfill` killed mid-way; `--resume` finishes it, nothing missing."""
    days = scaled(30, 12)
    with hub_factory(beat=False, env=ENV) as hub:
        hub.seed_demo(days=days)
        hub.start()
        start_day = hub.shell("import datetime as dt; from django.utils import timezone; "
                              f"print((timezone.now() - dt.timedelta(days={days + 2}))"
                              ".date().isoformat())")
        end_day = hub.shell("import datetime as dt; from django.utils import timezone; "
                            "print((timezone.now() + dt.timedelta(days=2)).date().isoformat())")
        hub.popen_manage("backfill", "dexma_backfill", DEXMA_KEY, "--from", start_day,
                         "--to", end_day, "--no-verify")
        backfill_id = hub.wait_for(
            lambda: (hub.sql("SELECT max(id) FROM dexma_backfill")[0][0]), 60,
            "the backfill to be recorded")

        hub.wait_for(lambda: _in_flight(hub, backfill_id), 300, "a backfill batch in flight",
                     interval=0.02)
        hub.kill("backfill")
        killed_at = time.monotonic()
        at_kill = _backfill_batches(hub, backfill_id)
        assert any(state != "sent" for state, _, _ in at_kill), "killed too late to tell"
        # The claim of the batch in flight lapses after OUTBOX_LEASE_SECONDS; then it goes.
        done = hub.manage("dexma_backfill", "--resume", str(backfill_id), "--no-verify",
                          check=False)
        while "stopped" in done.stderr and time.monotonic() - killed_at < 120:
            time.sleep(5)
            done = hub.manage("dexma_backfill", "--resume", str(backfill_id), "--no-verify",
                              check=False)
        recovery = time.monotonic() - killed_at
        batches = _backfill_batches(hub, backfill_id)
        comparison = dexma_compare(hub, DEXMA_KEY)
        stats = is3_stats(hub, DEXMA_KEY)
        print(f"FIGURES dexma-command-kill: readings in hub {comparison.expected}, held by IS3 "
              f"{comparison.held}, batches {len(batches)} (sent at kill "
              f"{sum(s == 'sent' for s, _, _ in at_kill)}), sent more than once "
              f"{sum(a > 1 for _, a, _ in batches)}, IS3 stats {stats}, "
              f"resumed to done in {recovery:.1f}s")

        assert done.returncode == 0, done.stderr
        assert comparison.ok, str(comparison)
        assert sum(attempts > 1 for _, attempts, _ in batches) <= 1
        assert stats["overwrites"] <= max(values for _, _, values in batches)


def test_wattics_push_survives_worker_killed(hub_factory):
    days = scaled(10, 3)
    with hub_factory(env=ENV) as hub:
        hub.seed_demo(days=days)
        # History from the first reading on (the demo's streams start a day back).
        hub.sql("UPDATE wattics_watticsstream SET start_at = now() - %s::interval",
                (f"{days + 1} days",))
        hub.start()
        expected = wattics_expected(hub)
        total = sum(len(v) for v in expected.values())

        def mid_push() -> bool:
            accepted = sum(a for a, _, _ in wattics_meters(hub).values())
            return total * 0.2 < accepted < total * 0.8

        hub.wait_for(mid_push, 300, "a fifth of the Wattics packets accepted", interval=0.1)
        hub.kill_worker()
        killed_at = time.monotonic()
        accepted_at_kill = sum(a for a, _, _ in wattics_meters(hub).values())
        hub.start_worker()

        def all_accepted() -> bool:
            meters = wattics_meters(hub)
            return all(meters.get(m, (0, 0, None))[0] >= len(v) for m, v in expected.items())

        hub.wait_for(all_accepted, scaled(600, 240), "every Wattics packet accepted")
        recovery = time.monotonic() - killed_at
        meters = wattics_meters(hub)
        packets = wattics_packets(hub)
        print(f"FIGURES wattics-worker-kill: packets expected {total}, accepted at kill "
              f"{accepted_at_kill}, accepted {sum(a for a, _, _ in meters.values())}, "
              f"discarded (out of order) {sum(d for _, d, _ in meters.values())}, "
              f"recovery {recovery:.1f}s")

        for meter_id, stamps in expected.items():
            taken = [ts for ts, discarded in packets.get(meter_id, []) if not discarded]
            assert taken == stamps, f"{meter_id}: accepted packets differ from the readings"
            assert meters[meter_id][1] == 0, f"{meter_id}: packets arrived out of order"


@pytest.mark.faults_full
def test_wattics_backfill_command_killed_then_run_again(hub_factory):
    """`manage.py wattics_backfill` killed mid-way; run again, it resumes from what Wattics
    last accepted: nothing missing, nothing out of order."""
    days = scaled(10, 3)
    with hub_factory(beat=False, env=ENV) as hub:
        hub.seed_demo(days=days)
        hub.sql("UPDATE wattics_watticsstream SET start_at = now() - %s::interval",
                (f"{days + 1} days",))
        hub.start()
        expected = wattics_expected(hub)
        total = sum(len(v) for v in expected.values())
        hub.popen_manage("wattics_backfill", "wattics_backfill", "--workers", "3")

        def mid_push() -> bool:
            accepted = sum(a for a, _, _ in wattics_meters(hub).values())
            return total * 0.2 < accepted < total * 0.8

        hub.wait_for(mid_push, 300, "a fifth of the Wattics packets accepted", interval=0.1)
        hub.kill("wattics_backfill")
        killed_at = time.monotonic()
        accepted_at_kill = sum(a for a, _, _ in wattics_meters(hub).values())
        done = hub.manage("wattics_backfill", "--workers", "3", check=False)
        # A batch claimed by the killed run waits for its lease; run again until all are in.
        while (sum(a for a, _, _ in wattics_meters(hub).values()) < total
               and time.monotonic() - killed_at < scaled(300, 120)):
            time.sleep(5)
            done = hub.manage("wattics_backfill", "--workers", "3", check=False)
        recovery = time.monotonic() - killed_at
        meters = wattics_meters(hub)
        packets = wattics_packets(hub)
        print(f"FIGURES wattics-command-kill: packets expected {total}, accepted at kill "
              f"{accepted_at_kill}, accepted {sum(a for a, _, _ in meters.values())}, "
              f"discarded (out of order) {sum(d for _, d, _ in meters.values())}, "
              f"all accepted {recovery:.1f}s after the kill")

        assert done.returncode == 0, done.stderr
        for meter_id, stamps in expected.items():
            taken = [ts for ts, discarded in packets.get(meter_id, []) if not discarded]
            assert taken == stamps, f"{meter_id}: accepted packets differ from the readings"
            assert meters[meter_id][1] == 0, f"{meter_id}: packets arrived out of order"
