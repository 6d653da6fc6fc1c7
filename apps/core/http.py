"""HTTP client base for platform integrations.

Every integration's ``client.py`` builds on :class:`ApiClient`: timeouts, retries with backoff
and jitter, ``Retry-After``, a rate-limit budget shared by all workers through Django's cache,
and auth strategies (API key, basic, bearer, OAuth2 client credentials and password grant).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import random
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from django.core.cache import cache
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from apps.core import metrics
from apps.core.cache import CACHE_ERRORS

logger = logging.getLogger(__name__)

Sleep = Callable[[float], None]
Clock = Callable[[], float]

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
    if status >= 500:
        return "the platform is failing, retry later"
    return "the platform rejected the request; fix the request or this link's configuration"


def error_for_response(
    response: requests.Response, *, method: str, url: str, retry_after: float | None = None
) -> HubHTTPError:
    """The :class:`TransientError` or :class:`PermanentError` an error response stands for."""
    status = response.status_code
    cls = TransientError if status == 429 or status >= 500 else PermanentError
    message = f"{method} {url} answered {status}: {_snippet(response.text)}; {_advice(status)}"
    return _fail(cls, message, url, response, retry_after)


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


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with full jitter: uniform in ``[0, min(cap, base * 2**attempt))``."""
    return rng() * min(cap, base * 2 ** min(max(attempt, 0), 64))


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


def _headers(request_kwargs: dict[str, Any]) -> dict[str, str]:
    if request_kwargs.get("headers") is None:
        request_kwargs["headers"] = {}
    return request_kwargs["headers"]


class Auth:
    """Adds credentials to the keyword arguments of one ``requests`` call."""

    can_refresh: bool = False
    client_name = ""  # set by the ApiClient using it; labels the token metrics

    def apply(self, request_kwargs: dict[str, Any]) -> None:
        raise NotImplementedError

    def invalidate(self) -> None:
        """Forget cached credentials, so the next ``apply`` fetches fresh ones."""


class ApiKeyAuth(Auth):
    """A static API key sent as a header or a query parameter."""

    def __init__(
        self, name: str, value: str, location: Literal["header", "query"] = "header"
    ) -> None:
        if location not in ("header", "query"):
            raise ValueError(f"location must be 'header' or 'query', not {location!r}")
        self.name, self.value, self.location = name, value, location

    def apply(self, request_kwargs: dict[str, Any]) -> None:
        if self.location == "header":
            _headers(request_kwargs)[self.name] = self.value
            return
        params = request_kwargs.get("params")
        if params is None or isinstance(params, Mapping):
            request_kwargs["params"] = {**(params or {}), self.name: self.value}
        elif isinstance(params, list | tuple):
            request_kwargs["params"] = [*params, (self.name, self.value)]
        else:
            text = params.decode() if isinstance(params, bytes) else str(params)
            extra = urlencode({self.name: self.value})
            request_kwargs["params"] = f"{text}&{extra}" if text else extra


class BasicAuth(Auth):
    """HTTP basic authentication."""

    def __init__(self, username: str, password: str) -> None:
        raw = f"{username}:{password}".encode()
        self._header = "Basic " + base64.b64encode(raw).decode("ascii")

    def apply(self, request_kwargs: dict[str, Any]) -> None:
        _headers(request_kwargs)["Authorization"] = self._header


class BearerAuth(Auth):
    """A static token in a header, formatted by ``template``."""

    def __init__(
        self, token: str, header: str = "Authorization", template: str = "Bearer {token}"
    ) -> None:
        self.header = header
        self._value = template.format(token=token)

    def apply(self, request_kwargs: dict[str, Any]) -> None:
        _headers(request_kwargs)[self.header] = self._value


@dataclass
class OAuthToken:
    """An access token as cached between workers."""

    access_token: str
    expires_at: float
    lifetime: float
    refresh_token: str | None = None
    token_type: str = "Bearer"  # noqa: S105

    def needs_refresh(self, now: float) -> bool:
        # Capped at half the lifetime so very short-lived tokens are still reused.
        margin = min(max(30.0, 0.1 * self.lifetime), 0.5 * self.lifetime)
        return not self.access_token or self.expires_at - now < margin


class OAuth2Auth(Auth):
    """OAuth2 token fetched from ``token_url``, cached across workers and refreshed early."""

    can_refresh = True
    grant_type = ""
    # Refresh tokens outlive access tokens; one unused for a week is dropped from the cache.
    refresh_token_ttl = 7 * 86400

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        *,
        client_auth: Literal["body", "basic"] = "body",
        refresh_token: str | None = None,
        on_token: Callable[[OAuthToken], None] | None = None,
        default_expires_in: float = 300.0,
        timeout: float | tuple[float, float] = (5, 30),
        lock_timeout: float = 30.0,
        session: requests.Session | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.time,
    ) -> None:
        self.token_url, self.client_id, self.client_secret = token_url, client_id, client_secret
        self.scope, self.client_auth, self.on_token = scope, client_auth, on_token
        self.default_expires_in = default_expires_in
        self.timeout, self.lock_timeout = timeout, lock_timeout
        self.sleep, self.clock = sleep, clock
        self._seed_refresh_token = refresh_token
        self._session = session

    def _identity(self) -> tuple[str, ...]:
        return (self.token_url, self.client_id, self.scope or "")

    def _grant_data(self) -> dict[str, str]:
        raise NotImplementedError

    @property
    def cache_key(self) -> str:
        digest = hashlib.sha256("\0".join(self._identity()).encode()).hexdigest()[:40]
        return f"hub:oauth2:{digest}"

    def apply(self, request_kwargs: dict[str, Any]) -> None:
        _headers(request_kwargs)["Authorization"] = f"Bearer {self.access_token()}"

    def invalidate(self) -> None:
        token = self._load()
        if token is not None and token.refresh_token:
            # Keep the refresh token: it can still replace the full grant.
            self._store(replace(token, access_token="", expires_at=0.0))
        else:
            cache.delete(self.cache_key)

    def access_token(self) -> str:
        """A valid access token, fetching one only when no worker has a fresh one cached."""
        lock_key = self.cache_key + ":lock"
        deadline = self.clock() + self.lock_timeout
        while True:
            token = self._load()
            now = self.clock()
            if token is not None and not token.needs_refresh(now):
                return token.access_token
            if cache.add(lock_key, "1", timeout=math.ceil(self.lock_timeout)):
                try:
                    token = self._load()  # another worker may have refreshed meanwhile
                    if token is not None and not token.needs_refresh(self.clock()):
                        return token.access_token
                    return self._fetch(token).access_token
                finally:
                    cache.delete(lock_key)
            # Another worker is refreshing; a token merely due for refresh is still usable.
            if token is not None and token.access_token and token.expires_at > now:
                return token.access_token
            if now >= deadline:  # the refreshing worker seems stuck
                return self._fetch(token).access_token
            self.sleep(0.25)

    def _fetch(self, previous: OAuthToken | None) -> OAuthToken:
        refresh = (previous.refresh_token if previous else None) or self._seed_refresh_token
        self._seed_refresh_token = None
        token, grant = None, "refresh_token"
        if refresh:
            try:
                token = self._request_token(
                    {"grant_type": "refresh_token", "refresh_token": refresh}, refresh
                )
            except PermanentError as exc:
                logger.info("refresh token refused, using the %s grant: %s", self.grant_type, exc)
        if token is None:
            token, grant = self._request_token(self._grant_data(), None), self.grant_type
        self._store(token)
        metrics.token_refreshed(self.client_name, grant)
        if self.on_token is not None:
            self.on_token(token)
        return token

    def _request_token(self, data: dict[str, str], old_refresh: str | None) -> OAuthToken:
        if self.scope:
            data["scope"] = self.scope
        auth = None
        if self.client_auth == "basic":
            auth = (self.client_id, self.client_secret)
        else:
            data.update(client_id=self.client_id, client_secret=self.client_secret)
        url = redact_url(self.token_url)
        if self._session is None:
            self._session = requests.Session()
        try:
            response = self._session.post(
                self.token_url,
                data=data,
                auth=auth,
                headers={"Accept": "application/json"},
                timeout=self.timeout,
            )
        except NETWORK_ERRORS as exc:
            message = f"POST {url}: token endpoint unreachable ({type(exc).__name__}); retry later"
            raise _fail(TransientError, message, url) from exc
        status, said = response.status_code, _snippet(response.text)
        if status == 429 or status >= 500:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            message = f"POST {url}: token endpoint answered {status}: {said}; retry later"
            raise _fail(TransientError, message, url, response, wait)
        if status >= 300:
            message = (
                f"POST {url}: token endpoint refused the credentials ({status}: {said}); "
                "check the client id, secret and grant of this link"
            )
            raise _fail(PermanentError, message, url, response)
        try:
            payload = response.json()
            access = payload["access_token"]
        except (ValueError, KeyError, TypeError):
            access = None
        if not isinstance(access, str) or not access:
            message = (
                f"POST {url}: token endpoint answered {status} without an access_token: {said}; "
                "check the token URL of this link"
            )
            raise _fail(PermanentError, message, url, response)
        lifetime = _first_number(str(payload.get("expires_in", "")))
        if lifetime is None or lifetime <= 0:
            lifetime = self.default_expires_in
            logger.warning("token endpoint %s sent no expires_in; assuming %ss", url, lifetime)
        return OAuthToken(
            access_token=access,
            expires_at=self.clock() + lifetime,
            lifetime=lifetime,
            refresh_token=payload.get("refresh_token") or old_refresh,
            token_type=str(payload.get("token_type") or "Bearer"),
        )

    def _load(self) -> OAuthToken | None:
        raw = cache.get(self.cache_key)
        try:
            return OAuthToken(**raw) if isinstance(raw, dict) else None
        except TypeError:
            return None

    def _store(self, token: OAuthToken) -> None:
        ttl = max(token.lifetime, self.refresh_token_ttl if token.refresh_token else 0)
        cache.set(self.cache_key, asdict(token), timeout=max(1, math.ceil(ttl)))


class ClientCredentialsAuth(OAuth2Auth):
    """OAuth2 ``client_credentials`` grant."""

    grant_type = "client_credentials"

    def _grant_data(self) -> dict[str, str]:
        return {"grant_type": "client_credentials"}


class PasswordGrantAuth(OAuth2Auth):
    """OAuth2 resource-owner ``password`` grant."""

    grant_type = "password"

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        username: str,
        password: str,
        scope: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(token_url, client_id, client_secret, scope, **kwargs)
        self.username, self.password = username, password

    def _identity(self) -> tuple[str, ...]:
        return (*super()._identity(), self.username)

    def _grant_data(self) -> dict[str, str]:
        return {"grant_type": "password", "username": self.username, "password": self.password}


class ApiClient:
    """HTTP client of one platform: retries, ``Retry-After``, rate-limit budget and auth."""

    def __init__(
        self,
        base_url: str,
        *,
        name: str,
        auth: Auth | None = None,
        timeout: float | tuple[float, float] = (5, 30),
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_cap: float = 60,
        max_wait: float = 60,
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
        self.max_retries, self.max_wait = max_retries, max_wait
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
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
        self, method: str, path: str, *, retry_unanswered: bool = True, **kwargs: Any
    ) -> requests.Response:
        """Send a request; return a < 400 response or raise a :class:`HubHTTPError`.

        `retry_unanswered=False` for a request that must not be repeated blindly: a
        connection lost without an answer may have reached the platform, so it is raised.
        """
        method, url = method.upper(), self.url_for(path)
        shown = redact_url(url)
        where = f"{self.name}: {method} {shown}"
        kwargs.setdefault("timeout", self.timeout)
        attempt, reauthenticated = 0, False
        auth = self.auth
        while True:
            self._respect_budget(method, shown)
            try:
                response = self.session.request(method, url, **self._prepare(kwargs))
            except NETWORK_ERRORS as exc:
                outcome, retry_after = type(exc).__name__, None
                message = f"{method} {shown} failed ({outcome}: {exc}); unreachable, retry later"
                error = _fail(TransientError, message, shown)
                if not retry_unanswered:
                    raise error from exc
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
                    response, method=method, url=shown, retry_after=retry_after
                )
                if isinstance(error, PermanentError):
                    raise error
                if status == 429:
                    self.counters["rate_limited"] += 1
                    metrics.http_rate_limited(self.name)
                    if retry_after is None:
                        retry_after = self.budget.wait_needed() or None
                outcome = str(status)
            if attempt >= self.max_retries:
                error.args = (f"{error.args[0]} (gave up after {attempt + 1} attempts)",)
                raise error
            delay = retry_after
            if delay is None:
                delay = backoff_delay(
                    attempt, base=self.backoff_base, cap=self.backoff_cap, rng=self.rng
                )
            if delay > self.max_wait:
                error.retry_after = delay
                raise error
            attempt += 1
            self.counters["retries"] += 1
            metrics.http_retry(self.name, outcome)
            logger.warning(
                "%s -> %s; retry %d/%d in %.2fs", where, outcome, attempt, self.max_retries, delay
            )
            self.sleep(delay)

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

    def _respect_budget(self, method: str, shown: str) -> None:
        wait = self.budget.wait_needed()
        if wait <= 0:
            return
        self.counters["rate_limited"] += 1
        metrics.http_budget_wait(self.name)
        if wait > self.max_wait:
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
