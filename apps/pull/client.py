"""The provider's HTTP API as one connection describes it: auth, paging, the loop guard.

Built on the core ApiClient (retries with backoff and jitter, Retry-After in both forms,
rate-limit headers, one retry after a 401 with fresh OAuth2 credentials).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django import db

from apps.core.http import (
    ApiClient,
    ApiKeyAuth,
    Auth,
    BasicAuth,
    BearerAuth,
    ClientCredentialsAuth,
    OAuth2Auth,
    OAuthToken,
    PasswordGrantAuth,
    PermanentError,
    RetryPolicy,
    redact_url,
    response_json,
)
from apps.pull.models import Connection, Endpoint
from apps.pull.schemas import compile_path


class LoopDetected(PermanentError):
    """The provider handed out a page token it had already given: following it never ends."""


@dataclass(slots=True)
class Page:
    number: int
    records: list
    body: Any


def build_auth(
    connection: Connection, *, on_token: Callable[[OAuthToken], None] | None = None
) -> Auth | None:
    kind = connection.auth_kind
    kinds = Connection.AuthKind
    if kind == kinds.API_KEY_HEADER:
        return ApiKeyAuth(connection.auth_name, connection.api_key, "header")
    if kind == kinds.API_KEY_QUERY:
        return ApiKeyAuth(connection.auth_name, connection.api_key, "query")
    if kind == kinds.BASIC:
        return BasicAuth(connection.username, connection.password)
    if kind == kinds.BEARER:
        return BearerAuth(connection.api_key, template=connection.bearer_format)
    oauth = {"scope": connection.scope or None, "refresh_token": connection.refresh_token or None,
             "on_token": on_token}
    if kind == kinds.CLIENT_CREDENTIALS:
        return ClientCredentialsAuth(connection.token_url, connection.client_id,
                                     connection.client_secret, **oauth)
    if kind == kinds.PASSWORD:
        return PasswordGrantAuth(connection.token_url, connection.client_id,
                                 connection.client_secret, connection.username,
                                 connection.password, **oauth)
    return None


def _persist_refresh_token(connection_id: int) -> Callable[[OAuthToken], None]:
    def persist(token: OAuthToken) -> None:
        # Providers that rotate refresh tokens invalidate the old one: keep the newest.
        if not token.refresh_token:
            return
        try:
            connection = Connection.objects.get(pk=connection_id)
            if connection.refresh_token != token.refresh_token:
                connection.refresh_token = token.refresh_token
                connection.save(update_fields=["refresh_token"])
        finally:
            # A page-fetching helper thread has no other use for a database connection.
            if threading.current_thread().name.startswith("pull-") and not (
                db.connection.in_atomic_block
            ):
                db.connection.close()

    return persist


class UpstreamClient:
    """One provider API, walked page by page."""

    def __init__(
        self, connection: Connection, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.connection = connection
        auth = build_auth(connection, on_token=_persist_refresh_token(connection.pk))
        self.api = ApiClient(
            connection.base_url,
            name=f"pull:{connection.key}",
            auth=auth,
            timeout=(5, connection.timeout_seconds),
            retry=RetryPolicy(
                max_retries=connection.max_retries,
                backoff_cap=connection.retry_after_cap_seconds,
                max_wait=connection.retry_after_cap_seconds,
            ),
            budget_key=f"{connection.pk}",
            sleep=sleep,
        )
        self.pages_fetched = 0

    @property
    def retries(self) -> int:
        return self.api.counters["retries"]

    def close(self) -> None:
        self.api.close()

    def fetches_ahead(self, endpoint: Endpoint) -> bool:
        """Whether `pages` requests several pages at once (offset and page-number paging on
        a connection with a concurrency above 1): its pages then arrive already overlapped
        with the caller's work, and another thread reading ahead only adds switching."""
        return self.connection.concurrency > 1 and endpoint.pagination in (
            Endpoint.Paging.OFFSET, Endpoint.Paging.PAGE)

    def pages(
        self, endpoint: Endpoint, params: dict[str, str] | None = None, *, max_pages: int = 0
    ) -> Iterator[Page]:
        """Every page of ``endpoint``, stopping on a short or empty page or on no next token.

        Every token (offset, page number, cursor, next link) is remembered: a provider that
        hands one out twice raises LoopDetected instead of walking in circles.
        """
        records_at = compile_path(endpoint.records_path) if endpoint.records_path else None
        if self.fetches_ahead(endpoint):
            yield from self._numbered_pages(endpoint, params, records_at, max_pages)
            return
        cursor_at = compile_path(endpoint.cursor_path) if endpoint.cursor_path else None
        style, size = endpoint.pagination, endpoint.page_size
        base = {**endpoint.params, **(params or {})}
        if style in (Endpoint.Paging.OFFSET, Endpoint.Paging.PAGE, Endpoint.Paging.LINK,
                     Endpoint.Paging.CURSOR) and endpoint.size_param:
            base[endpoint.size_param] = str(size)
        seen: set[str] = set()
        url: str = endpoint.path
        query: dict[str, str] | None = dict(base)
        mark = ""
        if style == Endpoint.Paging.OFFSET:
            query[endpoint.offset_param] = mark = "0"
        elif style == Endpoint.Paging.PAGE:
            query[endpoint.page_param] = mark = str(endpoint.first_page)
        number = 0
        while True:
            if mark in seen:
                raise LoopDetected(
                    f"{endpoint.role}: the provider returned page token "
                    f"'{redact_url(mark)[:120]}' twice "
                    f"(after {number} pages); its pagination loops — report it to the provider",
                    url=url,
                )
            seen.add(mark)
            response, records, body = self._fetch(endpoint, url, query, records_at)
            number += 1
            self.pages_fetched += 1
            yield Page(number, records, body)
            if not records or (max_pages and number >= max_pages):
                return
            if style == Endpoint.Paging.NONE:
                return
            if style == Endpoint.Paging.OFFSET:
                if len(records) < size:
                    return
                mark = str(int(query[endpoint.offset_param]) + len(records))
                query[endpoint.offset_param] = mark
            elif style == Endpoint.Paging.PAGE:
                if len(records) < size:
                    return
                mark = str(int(query[endpoint.page_param]) + 1)
                query[endpoint.page_param] = mark
            elif style == Endpoint.Paging.CURSOR:
                following = cursor_at(body) if cursor_at else None
                if following in (None, ""):
                    return
                mark = str(following)
                query = {**base, endpoint.cursor_param: mark}
            else:
                following = response.links.get("next", {}).get("url")
                if not following:
                    return
                # The next link carries every query parameter already.
                mark = url = following
                query = None

    def _fetch(self, endpoint: Endpoint, url: str, query: dict[str, str] | None,
               records_at: Callable[[Any], Any] | None) -> tuple[Any, list, Any]:
        response = self.api.get(url, params=query)
        body = response_json(response)
        records = records_at(body) if records_at else body
        if records is None:
            records = []
        if not isinstance(records, list):
            raise PermanentError(
                f"{endpoint.role}: '{endpoint.records_path}' in the response is a "
                f"{type(records).__name__}, not a list of records; fix the records path",
                url=url,
            )
        return response, records, body

    def _numbered_pages(
        self, endpoint: Endpoint, params: dict[str, str] | None,
        records_at: Callable[[Any], Any] | None, max_pages: int,
    ) -> Iterator[Page]:
        """Offset and page-number pages, several requests in flight, yielded in order.

        The next page's address does not depend on this page's body, so the provider's
        latency need not be paid page after page. The walk stops at the first short or
        empty page, exactly as one request at a time would; pages requested beyond it are
        dropped.
        """
        size = endpoint.page_size
        base = {**endpoint.params, **(params or {})}
        if endpoint.size_param:
            base[endpoint.size_param] = str(size)

        def query(index: int) -> dict[str, str]:
            if endpoint.pagination == Endpoint.Paging.OFFSET:
                return {**base, endpoint.offset_param: str(index * size)}
            return {**base, endpoint.page_param: str(endpoint.first_page + index)}

        width = min(self.connection.concurrency, max_pages or self.connection.concurrency)
        if isinstance(self.api.auth, OAuth2Auth):
            self.api.auth.access_token()  # fetched here, not raced for by the helpers
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="pull-page") as pool:
            pending = deque(pool.submit(self._fetch, endpoint, endpoint.path, query(i),
                                        records_at) for i in range(width))
            following, number = width, 0
            try:
                while pending:
                    _, records, body = pending.popleft().result()
                    number += 1
                    self.pages_fetched += 1
                    yield Page(number, records, body)
                    if len(records) < size or (max_pages and number >= max_pages):
                        return
                    pending.append(pool.submit(self._fetch, endpoint, endpoint.path,
                                               query(following), records_at))
                    following += 1
            finally:
                for future in pending:
                    future.cancel()
