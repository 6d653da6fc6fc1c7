"""The rate-limit budget of one credential, shared by all workers through Django's cache."""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Callable, Mapping

from django.core.cache import cache
from requests.structures import CaseInsensitiveDict

from apps.core.cache import CACHE_ERRORS

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

# (window, remaining header, reset header); every reset is "seconds until reset".
_RATE_HEADERS = (
    ("hour", "X-Ratelimit-Hour-Remaining", "X-Ratelimit-Hour-Reset"),
    ("day", "X-Ratelimit-Day-Remaining", "X-Ratelimit-Day-Reset"),
    ("window", "X-RateLimit-Remaining", "X-RateLimit-Reset"),
    ("ietf", "RateLimit-Remaining", "RateLimit-Reset"),
)

# Some APIs (GitHub style) send X-RateLimit-Reset as a Unix timestamp instead of a delta.
_EPOCH_THRESHOLD = 1e9
_NUMBER = re.compile(r"\s*(-?\d+(?:\.\d+)?)")


def _first_number(value: str | None) -> float | None:
    match = _NUMBER.match(value or "")
    return float(match.group(1)) if match else None


class RateLimitBudget:
    """What is left of one credential's request budget, shared by all workers via the cache.

    Kept in process between requests too: each response's headers update this process's
    copy, and the cache is read or written at most every `RECHECK_SECONDS` while the budget
    is far from the reserve — not on every page. Within `HEADROOM` requests of the reserve
    every request reads and writes the shared copy again, so workers sharing a credential
    still stop before the limit.
    """

    RECHECK_SECONDS = 1.0
    HEADROOM = 10

    def __init__(
        self, name: str, budget_key: str = "", *, reserve: int = 1, clock: Clock = time.time
    ) -> None:
        digest = hashlib.sha256(f"{name}\0{budget_key}".encode()).hexdigest()[:40]
        self.cache_key = f"hub:http:ratelimit:{digest}"
        self.reserve = reserve
        self.clock = clock
        self._known: dict[str, tuple[float, float]] = {}  # window: (remaining, reset_at)
        self._read_at = -math.inf
        self._shared_at = -math.inf

    def _near_limit(self, state: Mapping[str, tuple[float, float]]) -> bool:
        return any(remaining <= self.reserve + self.HEADROOM for remaining, _ in state.values())

    def record(self, headers: Mapping[str, str]) -> None:
        """Remember the rate-limit headers of a response."""
        if not isinstance(headers, CaseInsensitiveDict):
            headers = CaseInsensitiveDict(headers)
        now = self.clock()
        seen: dict[str, tuple[float, float]] = {}
        for window, remaining_header, reset_header in _RATE_HEADERS:
            remaining = _first_number(headers.get(remaining_header))
            reset = _first_number(headers.get(reset_header))
            if remaining is None or reset is None:
                continue
            if reset > _EPOCH_THRESHOLD:
                reset -= now
            seen[window] = (remaining, now + max(0.0, reset))
        if not seen:
            return
        state = {w: v for w, v in self._known.items() if v[1] > now}
        new_window = not seen.keys() <= state.keys()
        state.update(seen)
        self._known = state
        if not (new_window or self._near_limit(seen)
                or now - self._shared_at >= self.RECHECK_SECONDS):
            return
        try:
            ttl = max(reset_at for _, reset_at in state.values()) - now
            cache.set(self.cache_key, state, timeout=max(1, math.ceil(ttl) + 1))
            self._shared_at = now
        except CACHE_ERRORS as exc:
            # The platform still answers 429 (with Retry-After) if we overrun its budget.
            logger.warning("rate-limit budget not recorded, the cache is unavailable: %s", exc)

    def wait_needed(self) -> float:
        """Seconds to wait before the next request (0 when the budget allows it)."""
        now = self.clock()
        known = {w: v for w, v in self._known.items() if v[1] > now}
        if now - self._read_at >= self.RECHECK_SECONDS or self._near_limit(known):
            try:
                shared: dict[str, tuple[float, float]] = cache.get(self.cache_key) or {}
            except CACHE_ERRORS as exc:
                # Redis returns empty anyway: what it held about the budget is gone either way.
                logger.warning("rate-limit budget unknown, the cache is unavailable: %s", exc)
                return 0.0
            self._read_at = now
            for window, (remaining, reset_at) in shared.items():
                mine = known.get(window)
                # Within a window what is left only shrinks: the lower count is the newer one.
                newer = mine is None or (remaining, -reset_at) < (mine[0], -mine[1])
                if reset_at > now and newer:
                    known[window] = (remaining, reset_at)
            self._known = known
        return max(
            (
                reset_at - now
                for remaining, reset_at in known.values()
                if remaining <= self.reserve and reset_at > now
            ),
            default=0.0,
        )
