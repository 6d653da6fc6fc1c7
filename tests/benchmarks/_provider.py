"""A standalone usage provider for the pull benchmark: no Django, no database, one process.

    python -m tests.benchmarks._provider PORT METERS SLOTS START_EPOCH

Serves `/meters` and `/consumption` in the upstream sandbox's consumption format (offset
paging, `{"data": [...], "total": N}`, an `X-Api-Key` header, rate-limit headers) for
METERS electricity meters in kWh and SLOTS quarter hours from START_EPOCH. Each page's body
is rendered once and then served from memory, so after a warm-up pass the provider costs
next to nothing and the benchmark measures the clients. Record values are a pure function
of (slot, meter): `expected()` gives the count, sum and first/last instants a client must
land.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

API_KEY = "bench-key"
STEP = 15 * 60
MAX_PAGE = 1000


def meter_id(j: int) -> str:
    return f"M-{j:04d}"


def quantity(slot: int, j: int) -> float:
    return round(2.5 * (0.5 + ((slot * 7 + j * 13) % 10) / 10), 4)


def _stamp(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def expected(meters: int, slots: int, start: int) -> dict:
    """What a client must land: count, value sum, first and last interval start."""
    first = -(-start // STEP)
    total = sum(quantity(first + s, j) for s in range(slots) for j in range(1, meters + 1))
    return {"count": meters * slots, "sum": total,
            "first": dt.datetime.fromtimestamp(first * STEP, dt.UTC),
            "last": dt.datetime.fromtimestamp((first + slots - 1) * STEP, dt.UTC)}


class Provider:
    def __init__(self, meters: int, slots: int, start: int) -> None:
        self.meters, self.slots, self.start = meters, slots, start
        self.pages: dict[str, bytes] = {}
        self.requests = 0

    def meter_list(self, offset: int, limit: int) -> dict:
        numbers = range(offset + 1, min(self.meters, offset + limit) + 1)
        return {"data": [{"id": meter_id(j), "asset": {"id": "A-01", "name": "Building 1"},
                          "label": f"Electricity meter {j}", "kind": "electricity",
                          "unit": "kWh"} for j in numbers], "total": self.meters}

    def consumption(self, since: str, until: str, offset: int, limit: int) -> dict:
        lo = max(dt.datetime.fromisoformat(since).timestamp(), self.start)
        hi = min(dt.datetime.fromisoformat(until).timestamp(), self.start + self.slots * STEP)
        first, last = -(-int(lo) // STEP), -(-int(hi) // STEP)
        count, total = self.meters, max(0, last - first) * self.meters
        items = []
        for k in range(offset, min(total, offset + limit)):
            slot, j = first + k // count, k % count + 1
            value = quantity(slot, j)
            items.append({
                "meter": meter_id(j),
                "period": {"from": _stamp(slot * STEP), "to": _stamp((slot + 1) * STEP)},
                "quantity": value,
                "cost": {"amount": round(value * 0.21, 4), "currency": "EUR"},
                "flags": {"estimated": (slot + j) % 17 == 0},
            })
        return {"data": items, "total": total}

    def body(self, path: str, query: str) -> bytes | None:
        key = f"{path}?{query}"
        cached = self.pages.get(key)
        if cached is not None:
            return cached
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        offset = int(params.get("offset", 0))
        limit = min(MAX_PAGE, int(params.get("limit", 500)))
        if path.endswith("/meters"):
            doc = self.meter_list(offset, limit)
        elif path.endswith("/consumption"):
            doc = self.consumption(params["from"], params["to"], offset, limit)
        else:
            return None
        body = self.pages[key] = json.dumps(doc, separators=(",", ":")).encode()
        return body


def serve(port: int, provider: Provider) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real providers
        # Headers and body go out in two writes: with Nagle on, the body waits for the
        # client's delayed ACK (~40 ms a page).
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if self.headers.get("X-Api-Key") != API_KEY:
                return self._send(401, b'{"error":"missing or invalid credentials"}')
            if url.path == "/healthz":
                return self._send(200, b"{}")
            try:
                body = provider.body(url.path, url.query)
            except (KeyError, ValueError) as exc:
                return self._send(400, json.dumps({"error": str(exc)}).encode())
            if body is None:
                return self._send(404, b'{"error":"not found"}')
            provider.requests += 1
            return self._send(200, body)

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            # A generous hourly budget: clients read and honour the headers on every page.
            self.send_header("X-RateLimit-Remaining", str(max(0, 1_000_000 - provider.requests)))
            self.send_header("X-RateLimit-Reset", "3600")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    port, meters, slots, start = (int(arg) for arg in sys.argv[1:5])
    serve(port, Provider(meters, slots, start))
