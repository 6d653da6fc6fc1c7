"""The Wattics collector API: POST one packet, GET the last processed packet of a meter."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from apps.core.http import (
    ApiClient,
    BasicAuth,
    HubHTTPError,
    PermanentError,
    RetryPolicy,
    response_json,
)
from apps.wattics.schemas import packet_line, parse_timestamp

_LOOPBACK = {"127.0.0.1", "localhost", "::1", "testserver"}


class InsecureURL(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class PostResult:
    """How Wattics answered one packet (`status` None: no answer).

    `failure` is the error of a POST that failed: with `may_have_arrived`, only the
    last-packet GET can tell whether Wattics holds the packet; `post_packet(after=failure)`
    then sends it again, once the GET said it does not.
    """

    status: int | None
    body: str = ""
    error: str = ""
    retry_after: float | None = None  # seconds, from the answer's Retry-After
    failure: HubHTTPError | None = None

    @property
    def may_have_arrived(self) -> bool:
        return self.failure is not None and self.failure.may_have_arrived


def retry_policy() -> RetryPolicy:
    """Wattics' retries: never repeat a POST that may have arrived.

    The collector discards packets older than its last one, so a repeat that overtook a
    packet already processed would be lost; a POST that went unanswered or got a 5xx is
    sent again only after the last-packet GET said Wattics does not hold it
    (`StreamSender.post`). 408, 425 and 429 mean the packet was not taken: sent again in
    place. `WATTICS_SEND_RETRIES` repeats at most per packet, whatever the cause; a
    Retry-After longer than the longest backoff goes back to the outbox.
    """
    base = settings.WATTICS_RETRY_BACKOFF
    return RetryPolicy(
        max_retries=settings.WATTICS_SEND_RETRIES, backoff_base=base, backoff_cap=base * 16,
        max_wait=base * 16, transient_statuses=frozenset({408, 425, 429, 500, 502, 503, 504}),
        repeat_unanswered=False, repeat_server_errors=False,
    )


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" and parts.hostname not in _LOOPBACK:
        raise InsecureURL(
            f"Wattics rejects non-HTTPS requests; use an https:// URL instead of {url}"
        )


class WatticsClient:
    """One keep-alive session per credential, retrying as `retry_policy` says."""

    def __init__(self, *, url: str, username: str, password: str) -> None:
        check_url(url)
        self.url = url
        self.api = ApiClient(
            url, name="wattics", auth=BasicAuth(username, password),
            timeout=(settings.WATTICS_CONNECT_TIMEOUT, settings.WATTICS_READ_TIMEOUT),
            retry=retry_policy(), headers={"Accept": "application/json"}, budget_key=username,
        )

    def close(self) -> None:
        self.api.close()

    def post_packet(self, packet: dict, *, after: HubHTTPError | None = None) -> PostResult:
        """POST one packet; `after`: the failure of the same POST that did not arrive."""
        try:
            response = self.api.post(
                self.url, data=packet_line(packet).encode(),
                headers={"Content-Type": "application/json"}, after=after,
            )
        except HubHTTPError as exc:
            return PostResult(status=exc.status_code, body=exc.body, error=str(exc),
                              retry_after=exc.retry_after, failure=exc)
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
