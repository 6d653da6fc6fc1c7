"""A partner pushing readings to the hub's API from a thread, the way a well-behaved gateway
does: batches at a steady pace, each with an Idempotency-Key, retried until answered 2xx."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import requests

# The demo gateway's meters and parameters every DEXMA and Wattics demo link carries.
METERS = ("MAD-MAIN-01", "MAD-HVAC-02", "MAD-PV-03", "VLC-MAIN-01")
PARAMETERS = ("active_power", "temperature")
QUARTER = dt.timedelta(minutes=15)


@dataclass
class Attempt:
    at: float
    status: int | None  # None: no answer (connection refused, reset, timeout)
    seconds: float
    batch: int


@dataclass
class PushLog:
    attempts: list[Attempt] = field(default_factory=list)
    batches_sent: int = 0
    batches_acknowledged: int = 0
    readings_pushed: int = 0
    readings_accepted: int = 0
    first_instant: dt.datetime | None = None
    last_instant: dt.datetime | None = None

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> Counter:
        return Counter(a.status for a in self.attempts if since <= a.at < until)

    def max_seconds(self, since: float = 0.0, until: float = float("inf")) -> float:
        return max((a.seconds for a in self.attempts if since <= a.at < until), default=0.0)


class Pusher(threading.Thread):
    """POST a batch of readings every `every` seconds until stopped; every batch is retried
    (same Idempotency-Key) until the hub answers 2xx, so the hub's answers are the record of
    what it accepted."""

    def __init__(self, base_url: str | tuple[str, ...], api_key: str, *, start: dt.datetime,
                 every: float = 0.5, instants_per_batch: int = 2, timeout: float = 30.0,
                 retry_pause: float = 1.0):
        super().__init__(daemon=True)
        # Several base URLs: batches go to each in turn, as behind a load balancer.
        bases = (base_url,) if isinstance(base_url, str) else base_url
        self.urls = [f"{base}/api/v1/readings/" for base in bases]
        self.session = requests.Session()
        self.session.headers["X-API-Key"] = api_key
        self.next_instant = start
        self.every = every
        self.instants_per_batch = instants_per_batch
        self.timeout = timeout
        self.retry_pause = retry_pause
        self.log = PushLog(first_instant=start)
        self._stop_event = threading.Event()
        self.error: BaseException | None = None

    def stop(self, timeout: float = 120.0) -> PushLog:
        self._stop_event.set()
        self.join(timeout)
        if self.is_alive():
            raise AssertionError(f"the partner's last batch got no 2xx within {timeout:.0f}s")
        if self.error is not None:
            raise self.error
        return self.log

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                began = time.monotonic()
                self._push_one()
                self._stop_event.wait(max(0.0, self.every - (time.monotonic() - began)))
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def _batch(self) -> list[dict]:
        records = []
        for _ in range(self.instants_per_batch):
            ts = self.next_instant
            for n, meter in enumerate(METERS):
                for parameter in PARAMETERS:
                    value = round(20 + n + ts.timestamp() % 86400 / 3600, 3)
                    records.append({"meter": meter, "parameter": parameter,
                                    "ts": ts.isoformat(), "value": value})
            self.log.last_instant = ts
            self.next_instant = ts + QUARTER
        return records

    def _push_one(self) -> None:
        records = self._batch()
        number = self.log.batches_sent
        self.log.batches_sent += 1
        self.log.readings_pushed += len(records)
        headers = {"Idempotency-Key": f"faults-{uuid.uuid4().hex}"}
        url = self.urls[number % len(self.urls)]
        while True:
            began = time.monotonic()
            try:
                answer = self.session.post(url, json={"readings": records},
                                           headers=headers, timeout=self.timeout)
                status = answer.status_code
            except requests.RequestException:
                answer, status = None, None
            self.log.attempts.append(Attempt(at=began, status=status,
                                             seconds=time.monotonic() - began, batch=number))
            if answer is not None and 200 <= status < 300:
                body = answer.json()
                self.log.readings_accepted += body["accepted"]
                self.log.batches_acknowledged += 1
                return
            if answer is not None and 400 <= status < 500 and status != 429:
                raise AssertionError(f"the hub refused a valid batch: {status} {answer.text}")
            time.sleep(self.retry_pause)
