"""A sustained mixed load on a running hub over loopback: partners pushing readings through the
partner API, Scaler-style pulls of assets, meters, usage and readings (paged), while the
scheduled syncs and deliveries run in the worker. Also the figures read afterwards: delivery
lag per platform from the database, latency percentiles per endpoint kind.

Used by `test_load.py` (the load itself) and `test_storms.py` (partners pushing during a storm).
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import requests

from tests.faults.harness import Hub

DEMO_METERS = ("MAD-MAIN-01", "MAD-HVAC-02", "MAD-PV-03", "VLC-MAIN-01")
# Instantaneous parameters: any instant is valid for DEXMA and Wattics alike.
PUSHED_PARAMETERS = ("active_power", "temperature")
STEP = dt.timedelta(minutes=1)

# More meters in the demo deployment: the first `dexma` bound to the demo's DEXMA datasource,
# the first `streams` also to a Wattics stream each, so deliveries carry real volume while
# most meters are merely stored and pulled. Idempotent.
_METERS_ADD = """
import json
from apps.core.models import Datasource, Deployment, Device, Parameter, Site
from apps.dexma.models import DexmaDatasource, SelectedDevice
from apps.wattics.models import WatticsStream
from apps.wattics.services import stream_create
deployment = Deployment.objects.get(slug="demo-acme")
gateway = Datasource.objects.get(deployment=deployment, key="acme-gateway")
site = Site.objects.filter(deployment=deployment).order_by("pk").first()
dexma = DexmaDatasource.objects.get(key="hub-demo-acme")
parameters = list(Parameter.objects.filter(key__in=%(parameters)r))
names = [f"LOAD-{n:04d}" for n in range(%(count)d)]
Device.objects.bulk_create(
    [Device(deployment=deployment, external_id=name, datasource=gateway, site=site,
            local_id=name, name=f"Load meter {name}", commodity="energy", unit="kWh")
     for name in names], ignore_conflicts=True)
devices = {d.external_id: d for d in Device.objects.filter(deployment=deployment,
                                                           external_id__in=names)}
for n, name in enumerate(names[:%(dexma)d]):
    chosen, _ = SelectedDevice.objects.get_or_create(datasource=dexma, device=devices[name],
                                                     defaults={"resolutions": {}})
    chosen.parameters.set(parameters)
    meter_id = f"load-{n:04d}-temp"
    if n < %(streams)d and not WatticsStream.objects.filter(meter_id=meter_id).exists():
        stream_create(device=devices[name], meter_id=meter_id, kind="single",
                      channels={"value": "temperature"})
print(json.dumps(names))
"""

# Per delivery link: readings the hub accepted that the platform has not acknowledged yet
# (seq above the link's cursor, among the link's channels), and how far behind in data time.
_LAG = """
import json
from django.db.models import Max, Q
from apps.core.models import DeliveryLink, OutboundBatch, Reading
from apps.core.selectors import pairs_q
from apps.dexma.services.batches import channels_of
from apps.dexma.models import DexmaDatasource
from apps.wattics.models import WatticsStream
from apps.wattics.services.streams import stream_channels
OPEN = ("pending", "sending", "retry")
out = []
def measure(platform, link, cond):
    link.refresh_from_db()
    rows = Reading.objects.filter(cond)
    behind = rows.filter(seq__gt=link.cursor)
    newest = rows.aggregate(top=Max("ts"))["top"]
    delivered = rows.filter(seq__lte=link.cursor).aggregate(top=Max("ts"))["top"]
    out.append({"platform": platform, "link": link.name, "undelivered": behind.count(),
                "newest_ts": newest.isoformat() if newest else None,
                "delivered_ts": delivered.isoformat() if delivered else None,
                "lag_s": (newest - delivered).total_seconds() if newest and delivered else None,
                "open_batches": link.batches.filter(state__in=OPEN).count(),
                "dead_batches": link.batches.filter(state="dead").count(),
                "state": link.state})
for ds in DexmaDatasource.objects.exclude(link=None).select_related("link"):
    measure("dexma", ds.link, pairs_q(sorted(channels_of(ds))))
for stream in WatticsStream.objects.select_related("link"):
    cond = Q(pk__in=[])
    for c in stream_channels(stream=stream):
        cond |= Q(device_id=c.device_id, parameter_id=c.parameter_id)
    if stream.start_at:
        cond &= Q(ts__gte=stream.start_at)
    measure("wattics", stream.link, cond)
for link in DeliveryLink.objects.filter(platform="volue"):
    out.append({"platform": "volue", "link": link.name, "undelivered": None,
                "open_batches": link.batches.filter(state__in=OPEN).count(),
                "dead_batches": link.batches.filter(state="dead").count(),
                "state": link.state, "lag_s": None})
print(json.dumps(out))
"""


def meters_add(hub: Hub, count: int, *, dexma: int, streams: int) -> list[str]:
    """Add `count` load meters; the first `dexma` go to DEXMA, the first `streams` of those
    also to Wattics."""
    return hub.shell(_METERS_ADD % {"count": count, "dexma": dexma, "streams": streams,
                                    "parameters": list(PUSHED_PARAMETERS)})


def delivery_lag(hub: Hub) -> list[dict]:
    return hub.shell(_LAG, timeout=300)


def lag_by_platform(rows: list[dict]) -> dict[str, dict]:
    """Sum per platform: undelivered readings, open and dead batches, and the worst gap in
    data time between the newest reading accepted and the newest delivered (pushed load
    readings advance a minute per request, so this is not wall-clock time)."""
    summary: dict[str, dict] = {}
    for row in rows:
        entry = summary.setdefault(row["platform"], {"links": 0, "undelivered": 0,
                                                     "open_batches": 0, "dead_batches": 0,
                                                     "max_lag_s": 0.0, "not_active": 0})
        entry["links"] += 1
        entry["undelivered"] += row["undelivered"] or 0
        entry["open_batches"] += row["open_batches"]
        entry["dead_batches"] += row["dead_batches"]
        entry["max_lag_s"] = max(entry["max_lag_s"], row["lag_s"] or 0.0)
        entry["not_active"] += row["state"] != "active"
    return summary


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Stats:
    """What the load threads measured; shared by them under a lock."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    accepted: int = 0
    rejected: int = 0
    pages: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, seconds: float, problem: str = "") -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            if problem:
                self.errors[kind].append(problem)

    def summary(self) -> dict[str, dict[str, float]]:
        with self.lock:
            return {kind: {"requests": len(values), "errors": len(self.errors[kind]),
                           "p50_ms": round(percentile(values, 50) * 1000, 1),
                           "p99_ms": round(percentile(values, 99) * 1000, 1),
                           "max_ms": round(max(values) * 1000, 1)}
                    for kind, values in sorted(self.latencies.items())}


def first_free_instant(hub: Hub) -> dt.datetime:
    """The next whole hour after every reading the hub holds: pushed readings are all new,
    and in time order for Wattics."""
    newest = hub.sql("SELECT max(ts) FROM core_reading")[0][0] or dt.datetime.now(dt.UTC)
    return newest.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=2)


class Pusher(threading.Thread):
    """One partner gateway: owns its meters and reads them all once per (simulated) minute,
    sending them `block` meters per request, each request after the previous one's answer.
    Every meter's readings arrive in time order (as Wattics needs), one instant per round."""

    def __init__(self, *, base_url: str, api_key: str, meters: list[str], start: dt.datetime,
                 stats: Stats, stop: threading.Event, block: int = 100,
                 pause: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.url = f"{base_url}/api/v1/readings/"
        self.meters, self.start_at, self.block = meters, start, block
        self.stats, self.stop, self.pause = stats, stop, pause
        self.session = requests.Session()
        self.session.headers["X-API-Key"] = api_key
        self.position = 0  # requests done; the round is position // blocks per round

    def batch(self) -> list[dict]:
        per_round = math.ceil(len(self.meters) / self.block)
        tick, part = divmod(self.position, per_round)
        ts = (self.start_at + tick * STEP).isoformat()
        readings = []
        for index, meter in enumerate(self.meters[part * self.block:(part + 1) * self.block]):
            readings.append({"meter": meter, "parameter": "active_power", "ts": ts,
                             "value": round(5 + ((tick * 7 + index) % 100) / 10, 2)})
            readings.append({"meter": meter, "parameter": "temperature", "ts": ts,
                             "value": round(18 + ((tick + index) % 50) / 10, 2)})
        return readings

    def run(self) -> None:
        while not self.stop.is_set():
            readings = self.batch()
            began = time.perf_counter()
            try:
                response = self.session.post(self.url, json={"readings": readings}, timeout=60)
            except requests.RequestException as exc:
                self.stats.record("push", time.perf_counter() - began, repr(exc))
                time.sleep(0.5)
                continue  # the same readings again: a retry overwrites, never duplicates
            elapsed = time.perf_counter() - began
            if response.status_code not in (200, 201):
                self.stats.record("push", elapsed, f"{response.status_code} "
                                                   f"{response.text[:200]}")
                time.sleep(0.5)
                continue
            body = response.json()
            self.stats.record("push", elapsed, "rejections" if body["rejected"] else "")
            with self.stats.lock:
                self.stats.accepted += body["accepted"]
                self.stats.rejected += body["rejected"]
            self.position += 1
            if self.pause:
                self.stop.wait(self.pause)


class Puller(threading.Thread):
    """Scaler pulling the partner API: assets and meters paged through, usage and readings
    over a window, readings also incrementally with a cursor kept between pulls."""

    KINDS = ("assets", "meters", "usage", "readings", "readings-cursor")

    def __init__(self, *, base_url: str, api_key: str, window: tuple[dt.datetime, dt.datetime],
                 stats: Stats, stop: threading.Event, max_pages: int = 4,
                 offset: int = 0) -> None:
        super().__init__(daemon=True)
        self.base = f"{base_url}/api/v1"
        self.window, self.stats, self.stop = window, stats, stop
        self.max_pages, self.turn = max_pages, offset
        self.session = requests.Session()
        self.session.headers["X-API-Key"] = api_key
        self.cursor: str | None = None

    def _get(self, kind: str, url: str, params: dict | None) -> dict | None:
        began = time.perf_counter()
        try:
            response = self.session.get(url, params=params, timeout=60)
        except requests.RequestException as exc:
            self.stats.record(kind, time.perf_counter() - began, repr(exc))
            return None
        elapsed = time.perf_counter() - began
        if response.status_code != 200:
            self.stats.record(kind, elapsed, f"{response.status_code} {response.text[:200]}")
            return None
        body = response.json()
        self.stats.record(kind, elapsed)
        with self.stats.lock:
            self.stats.pages += 1
        return body

    def _pages(self, kind: str, path: str, params: dict) -> None:
        url, query = f"{self.base}/{path}/", params
        for _ in range(self.max_pages):
            body = self._get(kind, url, query)
            if body is None or not body.get("next"):
                return
            url, query = body["next"], None

    def run(self) -> None:
        start, end = (t.isoformat() for t in self.window)
        while not self.stop.is_set():
            kind = self.KINDS[self.turn % len(self.KINDS)]
            self.turn += 1
            if kind in ("assets", "meters"):
                self._pages(kind, kind, {"limit": 50})
            elif kind == "usage":
                self._pages(kind, "usage", {"from": start, "to": end, "limit": 500})
            elif kind == "readings":
                self._pages(kind, "readings", {"from": start, "to": end, "limit": 1000})
            else:
                params = {"limit": 1000, **({"cursor": self.cursor} if self.cursor else {})}
                body = self._get(kind, f"{self.base}/readings/", params)
                if body is not None and body.get("next_cursor"):
                    self.cursor = body["next_cursor"]
