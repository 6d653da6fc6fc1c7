"""Auth strategies: API key, basic, bearer, OAuth2 client credentials and password grant
(tokens cached across workers).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal
from urllib.parse import urlencode

import requests
from django.core.cache import cache

from apps.core import metrics
from apps.core.http.budgets import Clock, _first_number
from apps.core.http.errors import (
    NETWORK_ERRORS,
    PermanentError,
    TransientError,
    _fail,
    _snippet,
    parse_retry_after,
    redact_url,
)

logger = logging.getLogger(__name__)

Sleep = Callable[[float], None]


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
