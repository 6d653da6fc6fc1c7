"""Scenario 4: platform storms. IS3 and the Wattics collector answer 500, then 503, then 429
with `Retry-After`, while partners keep pushing; DEXMA's APIv3 throttles with `Retry-After`
and then runs on a low hourly budget. Nothing is lost, the hub never spends more than the
announced budget, and it never comes back before the `Retry-After` it was given.

The sandbox records when each request arrived and what it answered (PlatformRequest for
IS3 and APIv3, CollectorRequest for Wattics): the waits are judged on the platform's clock.
"""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
import threading
import time

import pytest

from tests.faults.conftest import scaled
from tests.faults.load import DEMO_METERS, Pusher, Stats, delivery_lag, lag_by_platform
from tests.faults.platforms import dexma_compare, wattics_expected, wattics_packets

pytestmark = pytest.mark.faults

DEXMA_KEY = "hub-demo-acme"
# The harness's OUTBOX_RETRY_SCHEDULE is 2,5,10,20 s and deliveries tick every 5 s: a wait
# may exceed Retry-After by the hub's own backoff step plus one tick (and the time a busy
# worker on a shared machine takes to pick the task up), never fall short of it.
LONGEST_OWN_WAIT = 20 + 5 + 10
EARLY_TOLERANCE = 0.05  # seconds: the two arrival stamps come from the same clock


def _requests(hub, table: str, key: str, where: str = "TRUE",
              params: tuple = ()) -> dict[str, list[tuple[dt.datetime, int, int | None]]]:
    rows = hub.sql(f"SELECT {key}, arrived_at, status, retry_after FROM {table} "
                   f"WHERE {where} ORDER BY arrived_at, id", params)
    found: dict[str, list] = {}
    for credential, arrived, status, retry_after in rows:
        found.setdefault(credential, []).append((arrived, status, retry_after))
    return found


def _waits(by_credential: dict[str, list]) -> list[tuple[str, float, float]]:
    """(credential, Retry-After given, seconds until that credential's next request)."""
    waits = []
    for credential, rows in by_credential.items():
        for (arrived, status, retry_after), (following, _, _) in itertools.pairwise(rows):
            if status == 429 and retry_after is not None:
                waits.append((credential, float(retry_after),
                              (following - arrived).total_seconds()))
    return waits


def _describe(waits: list[tuple[str, float, float]]) -> str:
    if not waits:
        return "none"
    over = [gap - asked for _, asked, gap in waits]
    return (f"{len(waits)} waits after 429, Retry-After {waits[0][1]:.0f}s; waited beyond it "
            f"min {min(over):.2f}s, median {statistics.median(over):.2f}s, "
            f"max {max(over):.2f}s")


def _caught_up(hub) -> dict | bool:
    summary = lag_by_platform(delivery_lag(hub))
    done = all(summary[p]["undelivered"] == 0 and summary[p]["open_batches"] == 0
               for p in ("dexma", "wattics"))
    return summary if done else False


def _switch_storm(hub, *, status: int, retry_after: int | None, enabled: bool = True) -> None:
    hub.sql("UPDATE sandbox_dexma_platformfault SET status = %s, retry_after = %s, "
            "enabled = %s WHERE target = 'is3'", (status, retry_after, enabled))
    hub.sql("UPDATE sandbox_wattics_collectorfault SET status = %s, retry_after = %s, "
            "enabled = %s", (status, retry_after, enabled))


def test_storm_then_throttling_loses_nothing_and_waits_as_asked(hub_factory):
    # Each 5xx phase spans at least two delivery ticks (5 s), so every platform meets it.
    errors_for = scaled(60, 24)
    throttled_for = scaled(60, 24)
    retry_after = scaled(10, 4)
    with hub_factory() as hub:
        hub_seed = hub.seed_demo(days=1)
        hub.start()
        # The seeded day reaches Wattics first; DEXMA's link starts at the live edge.
        hub.wait_for(lambda: _caught_up(hub), scaled(300, 180),
                     "the seeded readings delivered before the storm", interval=3)

        stats, stop = Stats(), threading.Event()
        newest = hub.sql("SELECT max(ts) FROM core_reading")[0][0]
        pushed_from = newest.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=2)
        pusher = Pusher(base_url=hub.base_url, api_key=hub_seed["api_key"],
                        meters=list(DEMO_METERS), start=pushed_from, stats=stats, stop=stop,
                        pause=1.0)
        # Switches exist (answering normally) from here on: every request is recorded.
        hub.sql("INSERT INTO sandbox_dexma_platformfault (target, enabled, status, hits) "
                "VALUES ('is3', true, 0, 0)")
        hub.sql("INSERT INTO sandbox_wattics_collectorfault (enabled, meter_id, status, "
                "delay_ms, hits) VALUES (true, '', 0, 0, 0)")
        pusher.start()
        time.sleep(6)
        storm_began = hub.sql("SELECT now()")[0][0]
        _switch_storm(hub, status=500, retry_after=None)
        time.sleep(errors_for / 2)
        _switch_storm(hub, status=503, retry_after=None)
        time.sleep(errors_for / 2)
        throttle_began = hub.sql("SELECT now()")[0][0]
        _switch_storm(hub, status=429, retry_after=retry_after)
        time.sleep(throttled_for)
        _switch_storm(hub, status=0, retry_after=None, enabled=False)
        storm_ended = time.monotonic()
        time.sleep(5)
        stop.set()
        pusher.join(timeout=60)

        summary = hub.wait_for(lambda: _caught_up(hub), scaled(600, 300),
                               "every platform caught up after the storm", interval=3)
        recovery = time.monotonic() - storm_ended

        # Nothing lost: everything pushed reached IS3 and Wattics, in order.
        dexma = dexma_compare(hub, DEXMA_KEY)
        pushed_keys = [k for k in dexma.missing
                       if dt.datetime.fromisoformat(k[2]) >= pushed_from]
        expected = wattics_expected(hub)
        packets = wattics_packets(hub)
        wattics_missing, wattics_disorder = {}, {}
        for meter_id, instants in expected.items():
            held = packets.get(meter_id, [])
            taken = [ts for ts, discarded in held if not discarded]
            missing = sorted(set(instants) - set(taken))
            if missing:
                wattics_missing[meter_id] = missing[:3]
            if taken != sorted(taken) or any(discarded for _, discarded in held):
                wattics_disorder[meter_id] = held[:5]
        dead = hub.sql("SELECT count(*) FROM core_outboundbatch WHERE state = 'dead'")[0][0]
        broken = hub.sql("SELECT platform, name, broken_reason FROM core_deliverylink "
                         "WHERE state <> 'active'")

        # The platform's record of the storm.
        is3 = _requests(hub, "sandbox_dexma_platformrequest", "credential",
                        "target = 'is3' AND credential = %s", (DEXMA_KEY,))
        collector = _requests(hub, "sandbox_wattics_collectorrequest", "meter_id")
        is3_waits, collector_waits = _waits(is3), _waits(collector)
        storm_hits = {
            "is3": hub.sql("SELECT status, count(*) FROM sandbox_dexma_platformrequest "
                           "WHERE target = 'is3' GROUP BY status ORDER BY status"),
            "wattics": hub.sql("SELECT status, count(*) FROM sandbox_wattics_collectorrequest "
                               "GROUP BY status ORDER BY status"),
        }
        errors_phase = {
            "is3": hub.sql("SELECT count(*) FROM sandbox_dexma_platformrequest "
                           "WHERE target = 'is3' AND arrived_at >= %s AND arrived_at < %s",
                           (storm_began, throttle_began))[0][0],
            "wattics": hub.sql("SELECT meter_id, count(*) FROM sandbox_wattics_collectorrequest "
                               "WHERE arrived_at >= %s AND arrived_at < %s GROUP BY meter_id",
                               (storm_began, throttle_began)),
        }
        print(f"\nFIGURES storm: 5xx for {errors_for}s then 429 (Retry-After {retry_after}s) "
              f"for {throttled_for}s; partner pushes {len(stats.latencies['push'])} "
              f"({stats.accepted} readings, {len(stats.errors['push'])} failed); answers "
              f"seen {storm_hits}; requests during the 5xx phase {errors_phase}; "
              f"IS3 {_describe(is3_waits)}; Wattics {_describe(collector_waits)}; caught up "
              f"{recovery:.0f}s after the storm; lag {summary}; DEXMA {dexma}")

        assert not stats.errors["push"], stats.errors["push"][:3]
        assert stats.accepted > 0
        assert not pushed_keys, f"IS3 lacks pushed readings: {pushed_keys[:5]}"
        assert not dexma.wrong_value, dexma.wrong_value[:3]
        assert not wattics_missing, wattics_missing
        assert not wattics_disorder, wattics_disorder
        assert dead == 0 and not broken, (dead, broken)
        # The storm really happened to both, in both forms.
        for name, answered in storm_hits.items():
            statuses = {status for status, _ in answered}
            # A worker busy retrying may let one short 5xx phase pass unseen: one 5xx suffices.
            assert 429 in statuses and statuses & {500, 503}, (
                f"{name} never saw the storm: {answered}")
        assert is3_waits and collector_waits
        for credential, asked, gap in is3_waits + collector_waits:
            assert gap >= asked - EARLY_TOLERANCE, (
                f"{credential} came back {gap:.2f}s after a 429 asking for {asked:.0f}s")
            assert gap <= asked + LONGEST_OWN_WAIT, (
                f"{credential} waited {gap:.1f}s after a 429 asking for {asked:.0f}s")
        # Without Retry-After the hub backs off: no more than one try a second per stream.
        assert errors_phase["is3"] <= errors_for
        assert all(count <= errors_for for _, count in errors_phase["wattics"])


_RECONCILE = """
import json, time
from apps.dexma.models import Installation
from apps.dexma.tasks import reconcile_installation
pk = Installation.objects.get(dep_id="demo-acme").pk
states = []
for _ in range(%d):
    result = reconcile_installation.apply_async((pk,), ignore_result=False)
    deadline = time.time() + 120
    while result.state not in ("SUCCESS", "FAILURE", "RETRY") and time.time() < deadline:
        time.sleep(0.2)
    states.append([result.state, str(result.result)[:300]])
print(json.dumps(states))
"""


def test_dexma_apiv3_throttling_and_low_hourly_budget_are_respected(hub_factory):
    retry_after = scaled(8, 4)
    hour_limit = 6
    reconciles = hour_limit + 4
    with hub_factory() as hub:
        hub.seed_demo(days=1)
        hub.start()
        digest = hub.shell(
            "import json\nfrom apps.dexma.models import Installation\n"
            "from apps.sandbox.dexma.faults import token_digest\n"
            "print(json.dumps(token_digest(Installation.objects.get(dep_id='demo-acme')"
            ".token)))")
        # APIv3 throttles every call for a while: the reconcile waits Retry-After in place.
        hub.sql("INSERT INTO sandbox_dexma_platformfault (target, enabled, status, "
                "retry_after, hits) VALUES ('api', true, 429, %s, 0)", (retry_after,))
        worker = threading.Thread(target=hub.shell, args=(_RECONCILE % 1,), daemon=True)
        worker.start()
        hub.wait_for(lambda: hub.sql("SELECT count(*) FROM sandbox_dexma_platformrequest "
                                     "WHERE target = 'api' AND status = 429")[0][0] >= 2,
                     120, "two throttled APIv3 calls")
        hub.sql("UPDATE sandbox_dexma_platformfault SET status = 0 WHERE target = 'api'")
        worker.join(timeout=180)
        throttled = _requests(hub, "sandbox_dexma_platformrequest", "credential",
                              "target = 'api'")
        throttle_waits = _waits(throttled)

        # Then a budget of six calls an hour, announced in X-Ratelimit-Hour-*.
        budget_from = hub.sql("SELECT now()")[0][0]
        hub.sql("UPDATE sandbox_dexma_apptoken SET hour_limit = %s, hour_used = 0, "
                "hour_started = NULL", (hour_limit,))
        states = hub.shell(_RECONCILE % reconciles, timeout=900)
        calls = hub.sql("SELECT status, count(*) FROM sandbox_dexma_platformrequest "
                        "WHERE target = 'api' AND arrived_at >= %s GROUP BY status",
                        (budget_from,))
        used = hub.sql("SELECT hour_used, hour_limit FROM sandbox_dexma_apptoken")
        deferred = [s for s in states if s[0] == "RETRY"]
        print(f"\nFIGURES dexma-budget: APIv3 429 storm: {_describe(throttle_waits)}; "
              f"budget {hour_limit}/h: {reconciles} reconciles -> {[s[0] for s in states]}; "
              f"APIv3 answers after the budget was lowered {dict(calls)}; token use {used}")

        assert throttle_waits, throttled
        assert all(credential == digest for credential in throttled)
        for _, asked, gap in throttle_waits:
            assert asked - EARLY_TOLERANCE <= gap <= asked + LONGEST_OWN_WAIT, (asked, gap)
        answered = dict(calls)
        assert answered.get(429, 0) == 0, f"the hub went past the announced budget: {answered}"
        assert 0 < sum(answered.values()) <= hour_limit
        assert all(hour_used <= limit for hour_used, limit in used)
        # It stopped because of the budget, and said it would come back after the reset.
        assert deferred, states
        assert states[0][0] == "SUCCESS", states
