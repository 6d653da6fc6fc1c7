"""The Wattics collector API: POST one packet, GET the last processed packet of a meter."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from apps.core.http import ApiClient, BasicAuth, HubHTTPError, PermanentError, response_json
from apps.wattics.schemas import packet_line, parse_timestamp

_LOOPBACK = {"127.0.0.1", "localhost", "::1", "testserver"}


class InsecureURL(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class PostResult:
    """How Wattics answered one packet. `status` None: no answer (outcome unknown)."""

    status: int | None
    body: str = ""
    error: str = ""
    retry_after: float | None = None  # seconds, from the answer's Retry-After


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" and parts.hostname not in _LOOPBACK:
        raise InsecureURL(
            f"Wattics rejects non-HTTPS requests; use an https:// URL instead of {url}"
        )


class WatticsClient:
    """One keep-alive session per credential; nothing retries a POST blindly.

    A POST whose answer never came may have been processed: only the last-packet GET can
    tell, so the caller decides what to do (see services.stream_push).
    """

    def __init__(self, *, url: str, username: str, password: str) -> None:
        check_url(url)
        self.url = url
        self.api = ApiClient(
            url, name="wattics", auth=BasicAuth(username, password),
            timeout=(settings.WATTICS_CONNECT_TIMEOUT, settings.WATTICS_READ_TIMEOUT),
            max_retries=0, headers={"Accept": "application/json"}, budget_key=username,
        )

    def close(self) -> None:
        self.api.close()

    def post_packet(self, packet: dict) -> PostResult:
        try:
            response = self.api.post(
                self.url, data=packet_line(packet).encode(),
                headers={"Content-Type": "application/json"},
            )
        except HubHTTPError as exc:
            return PostResult(status=exc.status_code, body=exc.body, error=str(exc),
                              retry_after=exc.retry_after)
        return PostResult(status=response.status_code, body=response.text[:1000])

    def last_packet(self, meter_id: str) -> tuple[dict | None, dt.datetime | None]:
        """Wattics' last processed packet of `meter_id` and its instant (None, None if none).

        Raises TransientError / PermanentError like any ApiClient call.
        """
        response = self.api.get(self.url, params={"stream": meter_id})
        if not response.content.strip():
            return None, None
        data = response_json(response)
        if isinstance(data, list):  # tolerate a list of packets, newest last
            data = data[-1] if data else None
        if not isinstance(data, dict) or not data.get("tsISO8601"):
            return None, None
        try:
            return data, parse_timestamp(str(data["tsISO8601"]))
        except ValueError as exc:
            raise PermanentError(
                f"GET last packet of {meter_id}: unreadable tsISO8601 {data['tsISO8601']!r}; "
                "the collector's answer changed shape", status_code=response.status_code,
                body=response.text[:1000],
            ) from exc
