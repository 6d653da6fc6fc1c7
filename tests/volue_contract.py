"""Every request the hub sends to Volue, checked against the Partner API document.

Installed for the whole suite (tests/conftest.py) at the HTTP boundary — `requests`'
`Session.send` — so it sees requests to the mocked platform (`responses`) and to the sandbox
over a socket alike. A request the document does not define is not sent: the call fails, and
the test fails at teardown even if the code under test swallowed the error.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import requests

from apps.volue import openapi


def violation_of(request: requests.PreparedRequest, api_url: str) -> openapi.Violation | None:
    """Why the document refuses `request` (None if it is not a Volue API call or is valid)."""
    base = api_url.rstrip("/")
    url = request.url or ""
    if not base or not url.startswith(base + "/"):
        return None
    parts = urlsplit(url)
    path = parts.path[len(urlsplit(base).path):]
    body = request.body.encode() if isinstance(request.body, str) else request.body
    wire = openapi.WireRequest(
        method=request.method or "GET", path=path,
        query=parse_qsl(parts.query, keep_blank_values=True), body=body or None,
        content_type=request.headers.get("Content-Type", ""),
        headers={"Authorization": request.headers.get("Authorization", "")},
    )
    return openapi.request_check(wire)


class ContractBroken(AssertionError):
    pass
