"""Scenario 2: Redis (broker, cache, locks) stops for 30 seconds while partners push
readings. The API keeps answering: the database is the truth, Redis only speeds things up.
When Redis returns, empty, deliveries resume on their own and nothing is lost."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import scaled
from tests.faults.partners import Pusher
from tests.faults.platforms import (
    assert_platforms_hold_everything,
    delivered_everything,
    future_quarter,
)

pytestmark = pytest.mark.faults

def test_partner_api_answers_and_deliveries_resume_across_redis_outage(hub_factory):
    outage = scaled(30, 10)
    with hub_factory() as hub:
        seed = hub.seed_demo(days=1)
        hub.start()
        pids = {name: hub.pids(name)[0] for name in ("web", "worker", "beat")}
        since = future_quarter()
        pusher = Pusher(hub.base_url, seed["api_key"], start=since, every=0.5)
        pusher.start()
        time.sleep(5)
        down_at = time.monotonic()
        hub.stop_redis()
        time.sleep(outage)
        hub.start_redis()
        up_at = time.monotonic()
        time.sleep(5)
        log = pusher.stop()
        hub.wait_for(lambda: delivered_everything(hub, since), scaled(300, 180),
                     "every pushed reading delivered to IS3 and Wattics", interval=2)
        recovery = time.monotonic() - up_at
        stored = hub.sql("SELECT count(*) FROM core_reading WHERE ts >= %s", (since,))[0][0]
        during = log.statuses(down_at, up_at)
        held = assert_platforms_hold_everything(hub, since)
        print(f"FIGURES redis-outage ({outage}s): batches {log.batches_sent}, readings pushed "
              f"{log.readings_pushed}, accepted {log.readings_accepted}, stored {stored}; "
              f"answers during the outage {dict(during)}, slowest "
              f"{log.max_seconds(down_at, up_at):.2f}s; attempts {len(log.attempts)}; "
              f"delivered {held}; all delivered {recovery:.1f}s after Redis returned")

        assert {name: hub.pids(name)[0] for name in pids} == pids, "a process was restarted"
        assert during and all(status == 201 for status in during), during  # new readings
        assert len(log.attempts) == log.batches_sent  # no batch needed a retry
        assert log.readings_accepted == log.readings_pushed == stored
