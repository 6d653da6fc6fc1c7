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


def _wire(request: requests.PreparedRequest, api_url: str) -> openapi.WireRequest | None:
    base = api_url.rstrip("/")
    url = request.url or ""
    if not base or not url.startswith(base + "/"):
        return None
    parts = urlsplit(url)
    path = parts.path[len(urlsplit(base).path):]
    body = request.body.encode() if isinstance(request.body, str) else request.body
    return openapi.WireRequest(
        method=request.method or "GET", path=path,
        query=parse_qsl(parts.query, keep_blank_values=True), body=body or None,
        content_type=request.headers.get("Content-Type", ""),
        headers={"Authorization": request.headers.get("Authorization", "")},
    )


def violation_of(request: requests.PreparedRequest, api_url: str) -> openapi.Violation | None:
    """Why the document refuses `request` (None if it is not a Volue API call or is valid)."""
    wire = _wire(request, api_url)
    return openapi.request_check(wire) if wire is not None else None


def answer_violation(request: requests.PreparedRequest, response: requests.Response,
                     api_url: str) -> str:
    """Why the document does not allow `response` to `request` ("" when it does).

    Only answers with a status the operation documents are checked: 401, 429 and 5xx are
    the faults the tests provoke on purpose, and the document describes none of them."""
    wire = _wire(request, api_url)
    if wire is None:
        return ""
    found = openapi.operation_find(wire.method, wire.path)
    if isinstance(found, int):
        return ""
    if response.status_code == 500 and response.text.startswith(SANDBOX_BROKE):
        return response.text
    documented = openapi.operation_get(found.operation_id).get("responses", {})
    if str(response.status_code) not in documented:
        return ""
    return openapi.response_check(wire, status=response.status_code, body=response.content,
                                  content_type=response.headers.get("Content-Type", ""))


SANDBOX_BROKE = "sandbox answer breaks the Partner API"  # apps/sandbox/volue/views.py


class ContractBroken(AssertionError):
    pass
