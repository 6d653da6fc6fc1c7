"""Scenario 3: PostgreSQL restarts (`pg_ctl restart -m fast`, every connection cut) while
partners push and deliveries run. Web, worker and beat carry on without being restarted;
nothing the hub acknowledged is lost."""

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


def test_web_and_workers_recover_from_postgres_restart(hub_factory):
    with hub_factory() as hub:
        seed = hub.seed_demo(days=1)
        hub.start()
        pids = {name: hub.pids(name)[0] for name in ("web", "worker", "beat")}
        since = future_quarter()
        pusher = Pusher(hub.base_url, seed["api_key"], start=since, every=0.5)
        pusher.start()
        time.sleep(scaled(10, 5))
        restart_at = time.monotonic()
        took = hub.restart_postgres()
        back_at = time.monotonic()
        time.sleep(scaled(20, 10))
        log = pusher.stop()
        first_ok = min((a.at for a in log.attempts
                        if a.at >= back_at and a.status and a.status < 300), default=None)
        hub.wait_for(lambda: delivered_everything(hub, since), scaled(300, 180),
                     "every pushed reading delivered to IS3 and Wattics", interval=2)
        delivered_after = time.monotonic() - back_at
        # Fresh work after the restart: the worker and beat still run tasks on their own.
        ran_after = hub.sql("SELECT count(*) FROM core_run WHERE started_at > now() - %s::interval",
                            (f"{int(time.monotonic() - back_at)} seconds",))[0][0]
        stored = hub.sql("SELECT count(*) FROM core_reading WHERE ts >= %s", (since,))[0][0]
        held = assert_platforms_hold_everything(hub, since)
        failures = {s: n for s, n in log.statuses(restart_at).items() if not s or s >= 300}
        print(f"FIGURES postgres-restart: restart took {took:.1f}s; batches {log.batches_sent}, "
              f"readings pushed {log.readings_pushed}, accepted {log.readings_accepted}, "
              f"stored {stored}; failed answers after the restart began {failures}; first 2xx "
              f"{(first_ok - back_at) if first_ok else float('nan'):.1f}s after PostgreSQL was "
              f"back; runs since {ran_after}; delivered {held}; all delivered "
              f"{delivered_after:.1f}s after the restart")

        assert {name: hub.pids(name)[0] for name in pids} == pids, "a process was restarted"
        assert first_ok is not None
        # While the database is away the API says "come back" (503), never a bare 500.
        assert 500 not in failures, failures
        assert log.readings_accepted == log.readings_pushed == stored
        assert ran_after > 0
