"""Scenario: the hub scaled out on one database. Two web processes (a partner pushes to
both), four Celery workers each consuming its own queue set, and beat; mid-run the DEXMA
worker is killed (SIGKILL) and a new one takes its place.

Afterwards every pushed reading is at IS3 and at the Wattics collector, at most the DEXMA
batch in flight at the kill went twice (the documented at-least-once: its claim lapses
after `OUTBOX_LEASE_SECONDS`, then it is sent again), every ordered link's batches were
acknowledged in position order, and no Wattics packet arrived out of order.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.harness import free_port
from tests.faults.partners import Pusher
from tests.faults.platforms import (
    DEXMA_KEY,
    assert_platforms_hold_everything,
    delivered_everything,
    dexma_link_id,
    future_quarter,
    is3_stats,
)

# Four workers, two web processes and beat on two cores: the full set only.
pytestmark = [pytest.mark.faults, pytest.mark.faults_full]

# Each worker's queues (config/settings/jobs.py PLATFORM_QUEUES; "celery" is the default queue,
# where beat's fan-out lands). DEXMA has two consumers, so the kill leaves one.
QUEUE_SETS = {
    "worker": ("celery",),
    "worker-dexma": ("dexma",),
    "worker-wattics": ("wattics",),
    "worker-other": ("volue", "pull", "dexma"),
}


def _out_of_order_links(hub) -> dict[int, list[int]]:
    """Ordered links whose batches were acknowledged out of position order: link -> the
    positions in acknowledgement order."""
    rows = hub.sql(
        "SELECT b.link_id, b.position FROM core_outboundbatch b "
        "JOIN core_deliverylink l ON l.id = b.link_id "
        "WHERE l.ordered AND b.state = 'sent' ORDER BY b.link_id, b.sent_at, b.id")
    by_link: dict[int, list[int]] = {}
    for link_id, position in rows:
        by_link.setdefault(link_id, []).append(position)
    return {link: seen for link, seen in by_link.items() if seen != sorted(seen)}


def test_two_web_processes_and_four_workers_share_one_database(hub_factory):
    with hub_factory(worker_concurrency=1, web_workers=1) as hub:
        seed = hub.seed_demo(days=1)
        hub.apply_schedules()
        first = hub.start_web()
        second = hub.start_web("web-2", free_port())
        for name, queues in QUEUE_SETS.items():
            hub.start_worker("config", "-Q", ",".join(queues), name=name)
        hub.start_beat()
        link = dexma_link_id(hub, DEXMA_KEY)
        already = hub.sql("SELECT coalesce(max(position), 0) FROM core_outboundbatch "
                          "WHERE link_id = %s", (link,))[0][0]

        since = future_quarter()
        # One partner behind a load balancer: its batches go to each web process in turn.
        # (Two partners pushing disjoint time ranges of the same meters would make one's
        # readings late data for Wattics, which takes each meter's packets in time order.)
        pushers = [Pusher((first, second), seed["api_key"], start=since, every=0.25)]
        for pusher in pushers:
            pusher.start()
        time.sleep(20)
        killed_at = time.monotonic()
        hub.kill_worker(name="worker-dexma")
        time.sleep(10)
        hub.start_worker("config", "-Q", "dexma", name="worker-dexma-2")
        time.sleep(20)
        logs = [pusher.stop() for pusher in pushers]
        hub.wait_for(lambda: delivered_everything(hub, since), 300,
                     "every pushed reading delivered to IS3 and Wattics", interval=2)
        done = time.monotonic() - killed_at
        held = assert_platforms_hold_everything(hub, since)
        batches = hub.sql("SELECT attempts, item_count FROM core_outboundbatch "
                          "WHERE link_id = %s AND position > %s", (link, already))
        stats = is3_stats(hub, DEXMA_KEY)
        connections = hub.sql("SELECT count(*) FROM pg_stat_activity "
                              "WHERE datname = 'hub'")[0][0]
        pushed = sum(log.readings_pushed for log in logs)
        accepted = sum(log.readings_accepted for log in logs)
        twice = sum(attempts > 1 for attempts, _ in batches)
        print(f"FIGURES scale-out: 2 web processes, {len(QUEUE_SETS)} workers (+1 after the "
              f"kill); pushed {pushed} readings, accepted {accepted}, delivered {held}; "
              f"DEXMA batches {len(batches)}, sent more than once {twice}, IS3 overwrites "
              f"{stats['overwrites']}; all delivered {done:.0f}s after the kill; database "
              f"connections at the end {connections}")

        assert accepted == pushed
        # The batch in flight when the worker died may go twice; no other.
        assert twice <= 1, batches
        assert stats["overwrites"] <= max((n for _, n in batches), default=0)
        assert not _out_of_order_links(hub)
