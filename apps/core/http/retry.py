"""When a failed platform call is sent again: `RetryPolicy`, one value per platform client.

A request can fail three ways, and only the policy says which are sent again:

- the connection never opened (refused, DNS, connect timeout): nothing reached the platform,
  so it is always safe to send again;
- an answer the platform marks as passing (429, 408, a 5xx): sent again after
  ``Retry-After`` or a backoff, unless the request may already have done its work;
- no answer after the request went out (read timeout, connection dropped): it may have
  arrived.

"May have arrived" covers the last case and a 5xx to a request that is not idempotent (a
POST): the platform may have acted before failing. Whether such a request is repeated
blindly is the policy's `repeat_unanswered` / `repeat_server_errors`; a platform that can be
asked what it holds (Wattics' last-packet GET) turns them off and asks instead.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from urllib3.exceptions import NewConnectionError

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
TRANSIENT_STATUSES = frozenset({429, *range(500, 600)})


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with full jitter: uniform in ``[0, min(cap, base * 2**attempt))``."""
    return rng() * min(cap, base * 2 ** min(max(attempt, 0), 64))


def never_sent(exc: BaseException) -> bool:
    """Whether a network error happened before the connection opened (nothing was sent)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError) or isinstance(exc, requests.ReadTimeout):
        return False
    # requests wraps urllib3's MaxRetryError, whose `reason` is the refused / unresolved
    # connection; a connection dropped after sending carries a ProtocolError instead.
    reason = exc.args[0] if exc.args else None
    return isinstance(getattr(reason, "reason", reason), NewConnectionError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often, after how long and which failed requests an `ApiClient` sends again.

    `max_retries` repeats at most; waits are ``Retry-After`` when the platform gave one,
    else a jittered backoff from `backoff_base` doubling up to `backoff_cap`; a wait longer
    than `max_wait` is not slept but raised (`HubHTTPError.retry_after`) for the caller's
    queue to honour.
    """

    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 60
    max_wait: float = 60
    transient_statuses: frozenset[int] = field(default=TRANSIENT_STATUSES)
    # Whether a request whose answer never came may be sent again blindly.
    repeat_unanswered: bool = True
    # Whether a non-idempotent request (POST, PATCH) answered with a 5xx may be.
    repeat_server_errors: bool = True

    def is_transient(self, status: int) -> bool:
        return status in self.transient_statuses

    def may_repeat(self, method: str, *, status: int | None) -> bool:
        """Whether a request that failed this way may be sent again without asking."""
        if status is None:
            return self.repeat_unanswered
        if status >= 500 and method.upper() not in IDEMPOTENT_METHODS:
            return self.repeat_server_errors
        return True

    def delay(
        self, attempt: int, retry_after: float | None, rng: Callable[[], float] = random.random
    ) -> float:
        """Seconds before repeat number ``attempt + 1``: ``Retry-After`` exactly, if given."""
        if retry_after is not None:
            return retry_after
        return backoff_delay(attempt, base=self.backoff_base, cap=self.backoff_cap, rng=rng)
