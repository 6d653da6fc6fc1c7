"""Scenario: hundreds of clients that send their headers or their body a byte at a time,
held open for a minute, while ordinary requests keep arriving. gunicorn runs as the
Procfile runs it (config/gunicorn.conf.py). The web tier must keep answering: /healthz
p99 under a second, every ordinary request answered, and no secret any of them sent in a
log line.

Before the gevent workers, four such connections made /healthz time out for about 30 s:
a sync or gthread worker gives each accepted connection a thread until its request is in.
Now a connection costs a greenlet; one whose headers are not in after gunicorn's
`keepalive` (5 s) is closed, and the slow-header clients here open another at once, as an
attacker would, so the number held stays the same all along.
"""

from __future__ import annotations

import asyncio
import json
import queue
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import requests

from tests.faults.conftest import scaled

pytestmark = pytest.mark.faults

DEP_TOKEN = "dep-token-planted-in-a-query-7f3a9c"
TEMP_TOKEN = "temp-token-planted-in-a-query-51be02"
BASIC_PASSWORD = "basic-password-planted-0c44d1"
BODY_DEADLINE = 8  # seconds, REQUEST_BODY_TIMEOUT of these runs (60 by default)


@dataclass
class SlowStats:
    opened: int = 0
    refused: int = 0
    closed_by_server: Counter = field(default_factory=Counter)  # kind -> connections
    reopened: int = 0
    bytes_sent: int = 0


class SlowClients:
    """`count` connections (half slow headers, half slow bodies) on one asyncio loop in a
    thread, each sending one more byte every `every` seconds until `stop`."""

    def __init__(self, port: int, count: int, *, api_key: str, every: float = 2.0) -> None:
        self.port, self.count, self.api_key, self.every = port, count, api_key, every
        self.stats = SlowStats()
        self._loop = asyncio.new_event_loop()
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(60):
            raise AssertionError("the slow connections did not open within 60 s")

    def stop(self) -> SlowStats:
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(60)
        return self.stats

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        opened = await asyncio.gather(*(self._open("header" if i % 2 == 0 else "body")
                                        for i in range(self.count)))
        self._ready.set()
        await asyncio.gather(*(self._hold(*conn) for conn in opened if conn))

    async def _hold(self, kind: str, reader, writer) -> None:
        """Trickle on this connection; when the server drops it, open another, as an
        attacker would, so `count` stay open all along."""
        while True:
            dropped = await self._trickle(kind, reader, writer)
            if not dropped or self._stopping.is_set():
                return
            conn = await self._open(kind)
            if conn is None:
                return
            self.stats.reopened += 1
            _, reader, writer = conn

    async def _open(self, kind: str):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            self.stats.refused += 1
            return None
        if kind == "header":
            # The request line and one header; the blank line that ends them never comes.
            start = (f"GET /healthz?dep_token={DEP_TOKEN} HTTP/1.1\r\n"
                     "Host: 127.0.0.1\r\n").encode()
        else:
            start = ("POST /api/v1/readings/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"X-API-Key: {self.api_key}\r\nContent-Type: application/json\r\n"
                     "Content-Length: 1000000\r\n\r\n{").encode()
        writer.write(start)
        await writer.drain()
        self.stats.opened += 1
        return kind, reader, writer

    async def _trickle(self, kind: str, reader, writer) -> bool:
        """True when the server closed the connection (or answered) first."""
        byte = b"X" if kind == "header" else b" "
        closed = asyncio.ensure_future(reader.read(1))  # an answer or EOF: the server gave up
        try:
            while not self._stopping.is_set():
                stop = asyncio.ensure_future(self._stopping.wait())
                done, _ = await asyncio.wait({closed, stop}, timeout=self.every,
                                             return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                if closed in done:
                    self.stats.closed_by_server[kind] += 1
                    return True
                if self._stopping.is_set():
                    return False
                writer.write(byte)
                await writer.drain()
                self.stats.bytes_sent += 1
        except (ConnectionError, OSError):
            self.stats.closed_by_server[kind] += 1
            return True
        finally:
            closed.cancel()
            writer.close()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _ordinary_load(base_url: str, total: int, window: float, api_key: str, *,
                   threads: int = 16) -> dict:
    """`total` requests spread evenly over `window` seconds, each on a new connection: /healthz
    mostly, every tenth /readyz (database and broker) and every tenth a partner API read
    with the key in HTTP Basic, every twentieth a DEXMA-style URL with tokens in the query."""
    jobs: queue.Queue = queue.Queue()
    began = time.monotonic()
    for i in range(total):
        jobs.put((i, began + window * i / total))
    results: list[tuple[str, int | str, float]] = []
    lock = threading.Lock()

    def work() -> None:
        while True:
            try:
                i, when = jobs.get_nowait()
            except queue.Empty:
                return
            time.sleep(max(0.0, when - time.monotonic()))
            kind, kwargs = "healthz", {"url": f"{base_url}/healthz"}
            if i % 10 == 3:
                kind, kwargs = "readyz", {"url": f"{base_url}/readyz"}
            elif i % 10 == 7:
                kind = "partner"
                prefix = api_key.split("_")[1] if api_key.count("_") >= 2 else api_key[:8]
                kwargs = {"url": f"{base_url}/api/v1/assets/", "auth": (prefix, api_key)}
            elif i % 20 == 9:
                kind = "dexma"
                kwargs = {"url": f"{base_url}/dexma/datasources?dep_token={DEP_TOKEN}"
                                 f"&temp_token={TEMP_TOKEN}&lang=en"}
            started = time.monotonic()
            try:
                status: int | str = requests.get(timeout=30, **kwargs).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            with lock:
                results.append((kind, status, time.monotonic() - started))

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {"results": results, "seconds": time.monotonic() - began}


def test_the_web_tier_answers_while_hundreds_of_slow_clients_hold_connections(hub_factory):
    slow_count, hold, total = scaled(500, 200), scaled(60, 20), scaled(2000, 500)
    # Slow bodies are cut at the deadline (a 408) and come back at once, as an attacker's would.
    with hub_factory(beat=False, env={"REQUEST_BODY_TIMEOUT": str(BODY_DEADLINE)}) as hub:
        seed = hub.seed_demo(days=1)
        hub.plant(DEP_TOKEN)
        hub.plant(TEMP_TOKEN)
        hub.start_web()
        slow = SlowClients(hub.web_port, slow_count, api_key=seed["api_key"])
        began = time.monotonic()
        slow.start()
        opened_in = time.monotonic() - began
        load = _ordinary_load(hub.base_url, total, hold - 5, seed["api_key"])
        time.sleep(max(0.0, hold - (time.monotonic() - began)))
        held_for = time.monotonic() - began
        stats = slow.stop()
        # After the slow clients are gone the service answers as before.
        after = requests.get(f"{hub.base_url}/healthz", timeout=5).status_code
        alive = hub.alive("web")

    results = load["results"]
    by_kind: dict[str, Counter] = {}
    for kind, status, _ in results:
        by_kind.setdefault(kind, Counter())[status] += 1
    health = [seconds for kind, _, seconds in results if kind == "healthz"]
    every = [seconds for *_, seconds in results]
    p50, p99, worst = (_percentile(health, 0.5), _percentile(health, 0.99), max(health))
    print(f"FIGURES slow-clients: {stats.opened} slow connections opened in {opened_in:.1f}s "
          f"({stats.refused} refused), held {held_for:.0f}s, closed by the server "
          f"{dict(stats.closed_by_server) or 0} (and reopened {stats.reopened}), "
          f"{stats.bytes_sent} trickled bytes; "
          f"{len(results)} ordinary requests in {load['seconds']:.1f}s: {by_kind}; "
          f"/healthz p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {worst * 1000:.0f} "
          f"ms; all requests p99 {_percentile(every, 0.99) * 1000:.0f} ms")

    assert stats.opened == slow_count + stats.reopened and not stats.refused
    # gunicorn's gevent worker gives a request's headers `keepalive` seconds; a body gets
    # REQUEST_BODY_TIMEOUT (RequestBodyMiddleware): every slow body was cut at least once.
    assert stats.closed_by_server["body"] >= slow_count // 2
    assert len(results) == total
    assert by_kind["healthz"] == Counter({200: len(health)}), by_kind["healthz"]
    assert by_kind["readyz"] == Counter({200: sum(by_kind["readyz"].values())})
    assert by_kind["partner"] == Counter({200: sum(by_kind["partner"].values())})
    assert all(isinstance(status, int) and status < 500 for status in by_kind["dexma"])
    assert p99 < 1.0, f"/healthz p99 {p99:.3f}s"
    assert after == 200 and alive


def _read_answer(sock: socket.socket, within: float) -> tuple[bytes, float, bool]:
    """What the server sends until it closes the connection (or `within` seconds pass):
    (bytes, seconds until the first byte, closed)."""
    began, first, data = time.monotonic(), None, b""
    sock.settimeout(0.2)
    while time.monotonic() - began < within:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            return data, first if first is not None else -1.0, True
        if first is None:
            first = time.monotonic() - began
        data += chunk
    return data, first if first is not None else -1.0, False


def test_a_body_trickled_past_the_deadline_is_cut_with_a_408(hub_factory):
    """One client announces a 100,000-byte body and sends a byte every half second: after
    REQUEST_BODY_TIMEOUT it gets a 408 naming the deadline, and the connection is closed
    (gunicorn would otherwise read on, with no deadline, to drain the body). Meanwhile and
    afterwards the service answers."""
    with hub_factory(beat=False, env={"REQUEST_BODY_TIMEOUT": str(BODY_DEADLINE)}) as hub:
        seed = hub.seed_demo(days=1)
        hub.start_web()
        sock = socket.create_connection(("127.0.0.1", hub.web_port), timeout=5)
        sock.sendall(("POST /api/v1/readings/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"X-API-Key: {seed['api_key']}\r\nContent-Type: application/json\r\n"
                      "Content-Length: 100000\r\n\r\n{").encode())
        began, sent, answer = time.monotonic(), 1, b""
        health = []
        sock.settimeout(0.5)
        while time.monotonic() - began < BODY_DEADLINE * 3:
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                sock.sendall(b" ")
                sent += 1
                if sent % 4 == 0:
                    health.append(requests.get(f"{hub.base_url}/healthz", timeout=5).status_code)
                continue
            break
        answered_after = time.monotonic() - began
        rest, _, closed = _read_answer(sock, 5)
        sock.close()
        after = requests.get(f"{hub.base_url}/healthz", timeout=5).status_code
    answer += rest
    head, _, body = answer.partition(b"\r\n\r\n")
    print(f"FIGURES slow body: {sent} bytes trickled, answered after {answered_after:.1f}s "
          f"(deadline {BODY_DEADLINE}s): {head.splitlines()[:1]}, closed {closed}; "
          f"/healthz meanwhile {health}")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    error = json.loads(body[body.index(b"{"):body.rindex(b"}") + 1])["error"]  # chunked
    assert error["code"] == "body_timeout" and f"{BODY_DEADLINE} seconds" in error["message"]
    assert BODY_DEADLINE - 0.5 <= answered_after <= BODY_DEADLINE + 3
    assert closed, "the connection stayed open after the 408"
    assert health and set(health) == {200} and after == 200
