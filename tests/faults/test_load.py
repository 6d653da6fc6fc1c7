"""Load: partners pushing readings, Scaler-style pulls of the partner API and the scheduled
syncs and deliveries, all at once for LOAD_SECONDS (600 in the full set, 75 in the reduced
one). Reports readings accepted per second, latency per endpoint kind, delivery lag per
platform when the load stops, and the memory of every process after warm-up and at the end.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time

import pytest

from tests.faults.conftest import scaled
from tests.faults.load import (
    DEMO_METERS,
    Puller,
    Pusher,
    Stats,
    delivery_lag,
    first_free_instant,
    lag_by_platform,
    meters_add,
)

pytestmark = pytest.mark.faults

LOAD_SECONDS = int(os.environ.get("LOAD_SECONDS") or scaled(600, 75))
PUSHERS, PULLERS = 3, 2
# Memory after warm-up against memory at the end, per process group (web = gunicorn master
# and workers, worker = Celery with its pool): allocator noise and caches filling up stay
# under this; a leak over minutes of load does not.
RSS_TOLERANCE_MB, RSS_TOLERANCE_RATIO = 40.0, 0.20


PLATFORMS = ("dexma", "wattics")


def _pending(summary: dict) -> dict[str, bool]:
    return {p: summary[p]["undelivered"] > 0 or summary[p]["open_batches"] > 0
            for p in PLATFORMS}


def _caught_up(hub) -> dict | bool:
    summary = lag_by_platform(delivery_lag(hub))
    return summary if not any(_pending(summary).values()) else False


def _undelivered(summary: dict) -> dict[str, int]:
    return {p: summary[p]["undelivered"] for p in PLATFORMS}


def test_sustained_mixed_load_keeps_latency_lag_and_memory_in_bounds(hub_factory):
    warm_up = min(60.0, LOAD_SECONDS * 0.25)
    with hub_factory() as hub:
        seed = hub.seed_demo(days=scaled(7, 2))
        load_meters = meters_add(hub, count=scaled(1500, 600), dexma=scaled(150, 60),
                                 streams=scaled(10, 5))
        hub.start()
        hub.wait_for(lambda: _caught_up(hub), scaled(600, 300),
                     "the seeded readings delivered before the load", interval=3)

        stats, stop = Stats(), threading.Event()
        start = first_free_instant(hub)
        meters = [*DEMO_METERS, *load_meters]
        pushers = [Pusher(base_url=hub.base_url, api_key=seed["api_key"],
                          meters=meters[i::PUSHERS], start=start, stats=stats, stop=stop)
                   for i in range(PUSHERS)]
        usage_window = (start - dt.timedelta(days=2), start)
        pullers = [Puller(base_url=hub.base_url, api_key=seed["api_key"], window=usage_window,
                          stats=stats, stop=stop, offset=i * 2) for i in range(PULLERS)]
        for thread in (*pushers, *pullers):
            thread.start()
        began = time.monotonic()
        samples: list[tuple[float, dict[str, float]]] = []
        rss_warm: dict[str, float] | None = None
        accepted_warm, warm_at = 0, 0.0
        backlog: list[tuple[int, dict[str, int]]] = []  # undelivered readings over time
        while (elapsed := time.monotonic() - began) < LOAD_SECONDS:
            samples.append((round(elapsed), hub.rss_mb()))
            if len(samples) % 3 == 1:
                backlog.append((round(elapsed), _undelivered(
                    lag_by_platform(delivery_lag(hub)))))
            if rss_warm is None and elapsed >= warm_up:
                rss_warm, accepted_warm = samples[-1][1], stats.accepted
                warm_at = elapsed
            time.sleep(min(10.0, max(0.5, LOAD_SECONDS - elapsed), max(0.5, warm_up - elapsed)
                           if rss_warm is None else 10.0))
        rss_end = hub.rss_mb()
        accepted, duration = stats.accepted, time.monotonic() - began
        stop.set()
        for thread in (*pushers, *pullers):
            thread.join(timeout=120)
        stopped = time.monotonic()
        lag_at_stop = lag_by_platform(delivery_lag(hub))
        # The newest readings accepted when the load stopped reach each platform this long
        # after: the delivery lag in wall-clock time.
        catch_up: dict[str, float] = {}

        def caught_up() -> dict | bool:
            summary = lag_by_platform(delivery_lag(hub))
            for platform, pending in _pending(summary).items():
                if not pending:
                    catch_up.setdefault(platform, round(time.monotonic() - stopped, 1))
            return summary if len(catch_up) == len(PLATFORMS) else False

        final = hub.wait_for(caught_up, scaled(900, 400), "deliveries caught up after the load",
                             interval=2)
        latency = stats.summary()
        errors = {kind: problems[:3] for kind, problems in stats.errors.items() if problems}
        steady_rate = (accepted - accepted_warm) / max(1.0, duration - warm_at)
        figures = {
            "seconds": round(duration), "meters": len(meters),
            "readings_accepted": accepted, "rejected": stats.rejected,
            "accepted_per_s": round(accepted / duration, 1),
            "accepted_per_s_after_warm_up": round(steady_rate, 1),
            "pages_pulled": stats.pages, "latency": latency,
            "backlog_during_load": backlog, "lag_at_stop": lag_at_stop,
            "delivered_all_s_after_stop": catch_up,
            "rss_after_warm_up_mb": rss_warm, "rss_end_mb": rss_end,
            "rss_samples": samples, "errors": errors,
        }
        print("\nFIGURES load: " + json.dumps(figures))
        dead = hub.sql("SELECT count(*) FROM core_outboundbatch WHERE state = 'dead'")[0][0]

        assert not errors, errors
        assert stats.rejected == 0
        assert accepted > 0 and stats.pages > 0
        assert {"push", "assets", "meters", "usage", "readings", "readings-cursor"} <= set(
            latency)
        assert latency["push"]["p99_ms"] < 5000, latency["push"]
        assert dead == 0
        assert all(entry["not_active"] == 0 for entry in final.values()), final
        for name, warm in (rss_warm or {}).items():
            end = rss_end.get(name, 0.0)
            allowed = warm + max(RSS_TOLERANCE_MB, warm * RSS_TOLERANCE_RATIO)
            assert end <= allowed, (
                f"{name} grew from {warm:.0f} MiB after warm-up to {end:.0f} MiB "
                f"(allowed {allowed:.0f}); samples {samples}")
