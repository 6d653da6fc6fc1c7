"""A platform URL answered by the sandbox simulator in this process, with scripted faults.

The delivery property tests run hundreds of generated histories; starting a live server and
committing each one would make that minutes per platform. Here `responses` hands each request
the hub's client sends to the simulator's own view through Django's test client (same
database transaction), unless the fault script says otherwise:

- `"500"`, `"503"`: answered with that status, nothing stored;
- `"429"`: answered 429 with `Retry-After`, nothing stored;
- `"drop_before"`: the connection fails before the platform saw the request;
- `"drop_after"`: the platform stored it, then the connection failed (the answer is lost);
- `"kill_after"`: the platform stored it, then the worker died (`WorkerKilled`): nothing the
  hub would have recorded after the call is recorded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

import hypothesis
import requests
import responses
from django.test import Client

FAULTS = ("500", "503", "429", "drop_before", "drop_after", "kill_after")
_FORWARDED_HEADERS = ("Authorization", "x-dexcell-source-token", "Content-Type")


class WorkerKilled(BaseException):
    """The process died mid-call: not an Exception, so no retry loop or handler sees it."""


class Forwarder:
    def __init__(self, rsps: responses.RequestsMock, *, url: str, sandbox_path: str,
                 methods: Iterable[str] = ("POST",)) -> None:
        self.sandbox_path = sandbox_path
        self.script: list[str] = []
        self.client = Client()
        self.calls = 0
        self.faults_hit: list[str] = []
        pattern = re.compile(re.escape(url) + r"(\?.*)?$")
        for method in methods:
            rsps.add_callback(method, pattern, callback=self._answer)

    def fail_next(self, faults: Iterable[str]) -> None:
        self.script.extend(faults)

    def _answer(self, request):
        self.calls += 1
        fault = self.script.pop(0) if self.script and request.method == "POST" else "ok"
        if fault != "ok":
            self.faults_hit.append(fault)
        if fault in ("500", "503"):
            return int(fault), {}, "Service Unavailable"
        if fault == "429":
            return 429, {"Retry-After": "30"}, "Too Many Requests"
        if fault == "drop_before":
            raise requests.ConnectionError("connection reset by peer (before the platform)")
        status, headers, body = self._forward(request)
        if fault == "drop_after":
            raise requests.ConnectionError("connection reset by peer (after the platform)")
        if fault == "kill_after":
            raise WorkerKilled
        return status, headers, body

    def _forward(self, request):
        query = urlsplit(request.url).query
        path = self.sandbox_path + (f"?{query}" if query else "")
        headers = {name: request.headers[name] for name in _FORWARDED_HEADERS
                   if name in request.headers}
        content_type = headers.pop("Content-Type", "application/json")
        if request.method == "GET":
            answer = self.client.get(path, headers=headers)
        else:
            answer = self.client.generic(request.method, path, data=request.body or b"",
                                         content_type=content_type, headers=headers)
        return (answer.status_code,
                {k: v for k, v in answer.items() if k in ("Content-Type", "Retry-After")},
                answer.content)


def property_settings(default_examples: int) -> hypothesis.settings:
    """The delivery property tests' hypothesis settings: PROPERTY_EXAMPLES examples (the
    default in `make test`, thousands in `make faults`), no shrinking with PROPERTY_SHRINK=0
    (a failure reported as found: shrinking these histories takes minutes)."""
    shrink = os.environ.get("PROPERTY_SHRINK") != "0"
    return hypothesis.settings(
        max_examples=int(os.environ.get("PROPERTY_EXAMPLES", default_examples)),
        deadline=None, database=None,
        phases=[p for p in hypothesis.Phase if p != hypothesis.Phase.shrink or shrink],
        suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture,
                               hypothesis.HealthCheck.too_slow,
                               hypothesis.HealthCheck.data_too_large])
