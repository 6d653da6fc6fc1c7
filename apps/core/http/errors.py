"""Errors of platform calls: `HubHTTPError` and its transient / permanent kinds, the
message built from a failed response, URL redaction, ``Retry-After`` parsing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
_SECRET_PARAM = re.compile(r"key|token|secret|pass|sig|auth|credential", re.IGNORECASE)
_BODY_KEPT = 10_000


class HubHTTPError(Exception):
    """A call to a platform failed; the message says what to do about it.

    `transient` says whether the same call may succeed later (after `retry_after` seconds,
    if the platform said): callers decide on a retry from these two, never from the class
    of an exception's `__cause__`.
    """

    transient = False
    # Set by `ApiClient`: how many times the request was sent, and whether the last try may
    # have done its work on the platform though it failed (see `RetryPolicy`).
    attempts = 1
    may_have_arrived = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body: str = "",
        retry_after: float | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.retry_after = retry_after
        self.url = url


class TransientError(HubHTTPError):
    """Try again later (429, 5xx, connection errors, timeouts)."""

    transient = True


class PermanentError(HubHTTPError):
    """Retrying will not help: stop and mark the link broken."""


def redact_url(url: str, also: Collection[str] = ()) -> str:
    """``url`` with the values of secret-looking query parameters (and of those named in
    ``also``) replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [
        (key, "***" if _SECRET_PARAM.search(key) or key in also else value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def _fail(
    cls: type[HubHTTPError],
    message: str,
    url: str,
    response: requests.Response | None = None,
    retry_after: float | None = None,
) -> HubHTTPError:
    if response is None:
        return cls(message, retry_after=retry_after, url=url)
    body = response.text[:_BODY_KEPT]
    return cls(
        message, status_code=response.status_code, body=body, retry_after=retry_after, url=url
    )


def _snippet(text: str) -> str:
    return " ".join(text[:300].split())


def _advice(status: int) -> str:
    if status in (401, 403):
        return "check the credentials of this link"
    if status == 404:
        return "check the resource ids and paths configured for this link"
    if status == 429:
        return "rate limited, retry later"
    if status in (408, 425):
        return "the platform asked for the request again later"
    if status >= 500:
        return "the platform is failing, retry later"
    return "the platform rejected the request; fix the request or this link's configuration"


def error_for_response(
    response: requests.Response,
    *,
    method: str,
    url: str,
    retry_after: float | None = None,
    transient: Collection[int] | None = None,
) -> HubHTTPError:
    """The :class:`TransientError` or :class:`PermanentError` an error response stands for:
    transient if its status is in ``transient`` (by default 429 and every 5xx)."""
    status = response.status_code
    passing = status in transient if transient is not None else status == 429 or status >= 500
    cls = TransientError if passing else PermanentError
    message = f"{method} {url} answered {status}: {_snippet(response.text)}; {_advice(status)}"
    return _fail(cls, message, url, response, retry_after)


# The longest wait a Retry-After is taken for: a date centuries ahead (or 1e300 seconds)
# would overflow the outbox's next attempt time; a week is retried after a week.
RETRY_AFTER_MAX = 7 * 24 * 3600.0


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), at most
    RETRY_AFTER_MAX."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return min(max(0.0, seconds), RETRY_AFTER_MAX) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - (now or datetime.now(UTC))).total_seconds()), RETRY_AFTER_MAX)
