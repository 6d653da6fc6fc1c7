"""A scripted Wattics behind `responses`: what it received, what it answers next."""

import base64
import json
import time

import requests
import responses
from urllib3.exceptions import MaxRetryError, NewConnectionError

from tests.wattics.conftest import URL


class FakeWattics:
    def __init__(self, rsps: responses.RequestsMock, url: str = URL) -> None:
        self.posts: list[dict] = []  # every POST body, in order
        self.headers: list[dict] = []
        self.accepted: dict[str, list[dict]] = {}
        # answers for the next POSTs: a status, "arrived" / "lost" (no answer, the packet
        # taken or not), "taken 500" (taken, then a 500), "refused" (nothing listening)
        self.script: list = []
        self.get_status = 200
        self.gets = 0
        self.delay = 0.0  # seconds each POST takes to answer
        rsps.add_callback(responses.POST, url, callback=self._post)
        rsps.add_callback(responses.GET, url, callback=self._get)

    def answer(self, *items) -> None:
        self.script.extend(items)

    def last(self, meter: str) -> dict | None:
        packets = self.accepted.get(meter)
        return packets[-1] if packets else None

    def _post(self, request):
        if self.delay:
            time.sleep(self.delay)
        packet = json.loads(request.body)
        self.posts.append(packet)
        self.headers.append(dict(request.headers))
        step = self.script.pop(0) if self.script else 200
        if step == "refused":
            reason = NewConnectionError(None, "Failed to establish a new connection: refused")
            raise requests.ConnectionError(MaxRetryError(None, request.url, reason))
        if step == "taken 500":
            self.accepted.setdefault(packet["id"], []).append(packet)
            return 500, {}, "answer 500"
        if step == "lost":
            raise requests.ReadTimeout("read timed out")
        if step == "arrived":
            self.accepted.setdefault(packet["id"], []).append(packet)
            raise requests.ReadTimeout("read timed out")
        if step == 200:
            self.accepted.setdefault(packet["id"], []).append(packet)
            return 200, {}, "{}"
        return step, {}, f"answer {step}"

    def _get(self, request):
        self.gets += 1
        if self.get_status != 200:
            return self.get_status, {}, f"answer {self.get_status}"
        meter = request.params.get("stream") if hasattr(request, "params") else None
        return 200, {"Content-Type": "application/json"}, json.dumps(self.last(meter) or {})


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
