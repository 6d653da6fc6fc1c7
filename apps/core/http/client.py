"""The client every integration's ``client.py`` builds on: `ApiClient` (timeouts, retries
as its `RetryPolicy` says, ``Retry-After``, the rate-limit budget, auth) and `response_json`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from apps.core import metrics
from apps.core.http.auth import ApiKeyAuth, Auth, Sleep
from apps.core.http.budgets import Clock, RateLimitBudget
from apps.core.http.errors import (
    NETWORK_ERRORS,
    HubHTTPError,
    PermanentError,
    TransientError,
    _fail,
    _snippet,
    error_for_response,
    parse_retry_after,
    redact_url,
)
from apps.core.http.retry import RetryPolicy, backoff_delay, never_sent

__all__ = ["ApiClient", "backoff_delay", "response_json"]

logger = logging.getLogger(__name__)


def response_json(response: requests.Response) -> Any:
    """Decode a JSON body; a malformed one is a :class:`PermanentError`."""
    try:
        return response.json()
    except (ValueError, RecursionError) as exc:  # nested past the parser's depth too
        request = response.request
        method = request.method if request is not None else "?"
        url = redact_url(request.url or "") if request is not None else "?"
        message = (
            f"{method} {url} answered {response.status_code} with malformed JSON ({exc}): "
            f"{_snippet(response.text)}; the platform's API may have changed"
        )
        raise _fail(PermanentError, message, url, response) from exc


def _unconfirmed(error: HubHTTPError, attempt: int) -> HubHTTPError:
    error.attempts, error.may_have_arrived = attempt + 1, True
    return error


class ApiClient:
    """HTTP client of one platform: retries (its `RetryPolicy`), ``Retry-After``, rate-limit
    budget and auth."""

    def __init__(
        self,
        base_url: str,
        *,
        name: str,
        auth: Auth | None = None,
        timeout: float | tuple[float, float] = (5, 30),
        retry: RetryPolicy | None = None,
        reserve: int = 1,
        budget_key: str = "",
        sleep: Sleep = time.sleep,
        clock: Clock = time.time,
        rng: Callable[[], float] = random.random,
        headers: Mapping[str, str] | None = None,
        pool_maxsize: int = 10,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.name, self.auth, self.timeout = name, auth, timeout
        if auth is not None and not auth.client_name:
            auth.client_name = name
        self.retry = retry or RetryPolicy()
        self.sleep, self.clock, self.rng = sleep, clock, rng
        self.budget = RateLimitBudget(name, budget_key, reserve=reserve, clock=clock)
        self.counters: dict[str, int] = {"retries": 0, "rate_limited": 0}
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers["User-Agent"] = f"energy-hub/{name}"
        self.session.headers.update(headers or {})

    def url_for(self, path: str) -> str:
        """Absolute URL of ``path`` (relative to ``base_url`` unless already absolute)."""
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url + path.lstrip("/")

    def request(
        self,
        method: str,
        path: str,
        *,
        retry: RetryPolicy | None = None,
        after: HubHTTPError | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request; return a < 400 response or raise a :class:`HubHTTPError`.

        `retry` replaces the client's policy for this one request. A failure the policy does
        not let be repeated blindly is raised with `may_have_arrived`; `after` sends that
        request again once the caller has made sure it did not arrive: the policy's wait
        comes first and the attempts count on from the failed ones.
        """
        policy = retry or self.retry
        method, url = method.upper(), self.url_for(path)
        shown = redact_url(url)
        where = f"{self.name}: {method} {shown}"
        kwargs.setdefault("timeout", self.timeout)
        attempt, reauthenticated = 0, False
        auth = self.auth
        if after is not None:
            after.may_have_arrived = False
            attempt = after.attempts - 1
            outcome = str(after.status_code or "unanswered")
            self._wait_to_repeat(after, after.retry_after, attempt, policy, where, outcome)
            attempt += 1
        while True:
            self._respect_budget(method, shown, policy)
            try:
                response = self.session.request(method, url, **self._prepare(kwargs))
            except NETWORK_ERRORS as exc:
                outcome, retry_after = type(exc).__name__, None
                message = f"{method} {shown} failed ({outcome}: {exc}); unreachable, retry later"
                error = _fail(TransientError, message, shown)
                if not never_sent(exc) and not policy.may_repeat(method, status=None):
                    raise _unconfirmed(error, attempt) from exc
            else:
                self.budget.record(response.headers)
                status = response.status_code
                if status < 400:
                    if isinstance(auth, ApiKeyAuth) and auth.location == "query":
                        # Errors about this answer quote its request's URL (`response_json`),
                        # and the key's name need not look secret (OpenWeather's `appid`).
                        shown_request = response.request.copy()
                        shown_request.url = redact_url(shown_request.url or "",
                                                       also=(auth.name,))
                        response.request = shown_request
                    return response
                if status == 401 and auth is not None and auth.can_refresh and not reauthenticated:
                    reauthenticated = True
                    logger.info("%s answered 401; refreshing credentials", where)
                    auth.invalidate()
                    continue
                # A 401 straight after fresh credentials means they are refused; one that
                # follows another answer means the token expired (or was revoked) while the
                # request was being retried, so it may be refreshed again.
                reauthenticated = reauthenticated and status == 401
                now = datetime.fromtimestamp(self.clock(), UTC)
                retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
                error = error_for_response(
                    response, method=method, url=shown, retry_after=retry_after,
                    transient=policy.transient_statuses,
                )
                if isinstance(error, PermanentError):
                    error.attempts = attempt + 1
                    raise error
                if status == 429:
                    self.counters["rate_limited"] += 1
                    metrics.http_rate_limited(self.name)
                    if retry_after is None:
                        retry_after = self.budget.wait_needed() or None
                if not policy.may_repeat(method, status=status):
                    raise _unconfirmed(error, attempt)
                outcome = str(status)
            self._wait_to_repeat(error, retry_after, attempt, policy, where, outcome)
            attempt += 1

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _prepare(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        prepared = {**kwargs, "headers": dict(kwargs.get("headers") or {})}
        if self.auth is not None:
            self.auth.apply(prepared)
        return prepared

    def _wait_to_repeat(
        self,
        error: HubHTTPError,
        retry_after: float | None,
        attempt: int,
        policy: RetryPolicy,
        where: str,
        outcome: str,
    ) -> None:
        """Sleep before repeat ``attempt + 1``, or raise ``error`` if the policy says stop."""
        error.attempts = attempt + 1
        if attempt >= policy.max_retries:
            error.args = (f"{error.args[0]} (gave up after {attempt + 1} attempts)",)
            raise error
        delay = policy.delay(attempt, retry_after, self.rng)
        if delay > policy.max_wait:
            error.retry_after = delay
            raise error
        self.counters["retries"] += 1
        metrics.http_retry(self.name, outcome)
        logger.warning(
            "%s -> %s; retry %d/%d in %.2fs", where, outcome, attempt + 1, policy.max_retries,
            delay,
        )
        self.sleep(delay)

    def _respect_budget(self, method: str, shown: str, policy: RetryPolicy) -> None:
        wait = self.budget.wait_needed()
        if wait <= 0:
            return
        self.counters["rate_limited"] += 1
        metrics.http_budget_wait(self.name)
        if wait > policy.max_wait:
            raise TransientError(
                f"{method} {shown} not sent: the rate-limit budget of {self.name} is used up "
                f"for {wait:.0f}s; retry after the reset",
                retry_after=wait,
                url=shown,
            )
        logger.info(
            "%s: budget used up; waiting %.1fs before %s %s", self.name, wait, method, shown
        )
        self.sleep(wait)
