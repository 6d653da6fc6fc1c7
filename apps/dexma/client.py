"""DEXMA APIv3: the hub's only way to talk to the platform (the wire format lives here).

Authenticated with the permanent `x-dexcell-token` of one installation. Rate limits apply
per token: every answer carries `X-Ratelimit-{Hour,Day}-{Limit,Remaining,Reset}`, which the
core client records per token and honours before the budget runs out; a 429 waits for the
reset. Validation errors come as `{"status", "code", "message", "errors": [...]}`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.conf import settings

from apps.core import metrics
from apps.core.http import (
    ApiClient,
    ApiKeyAuth,
    HubHTTPError,
    PermanentError,
    RetryPolicy,
    TransientError,
    response_json,
)

logger = logging.getLogger(__name__)

MAX_PAGE = 500  # APIv3 refuses `limit` above 500 with a 422
# Not public: the session-details path the platform documents for `session_id`.
SESSION_PATH = "sessions/{session_id}"


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class ApiErrorBody:
    """APIv3's error body, when the answer had one."""

    status: int | None
    code: str
    message: str
    errors: tuple[FieldError, ...] = ()

    def __str__(self) -> str:
        parts = [p for p in (self.code, self.message) if p]
        parts += [f"{e.field}: {e.message}" if e.field else e.message for e in self.errors]
        return "; ".join(parts)


def error_body(error: HubHTTPError) -> ApiErrorBody | None:
    """The platform's structured error inside a failed call, if it sent one."""
    try:
        data = json.loads(error.body or "")
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    raw = data.get("errors")
    errors = []
    if isinstance(raw, list):
        for item in raw:
            if isinstance(item, dict):
                errors.append(FieldError(str(item.get("field", "")), str(item.get("message", ""))))
    # The documented example lists the entries as top-level "0", "1", … keys.
    for key, item in data.items():
        if key.isdigit() and isinstance(item, dict):
            errors.append(FieldError(str(item.get("field", "")), str(item.get("message", ""))))
    return ApiErrorBody(
        status=data.get("status") if isinstance(data.get("status"), int) else None,
        code=str(data.get("code", "")),
        message=str(data.get("message", "")),
        errors=tuple(errors),
    )


def describe_error(error: HubHTTPError) -> str:
    """What the platform said, for the embedded pages, logs and the admin."""
    body = error_body(error)
    status = f"{error.status_code} " if error.status_code else ""
    if body is not None and str(body):
        return f"DEXMA answered {status}{body}"
    text = " ".join((error.body or "").split())[:200]
    if error.status_code:
        return f"DEXMA answered {status}{text}".strip()
    return str(error)


@dataclass(frozen=True, slots=True)
class PlatformDatasource:
    id: int
    key: str
    name: str
    status: str
    timezone: str = ""
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: dict) -> PlatformDatasource:
        try:
            return cls(
                id=int(data["id"]),
                key=str(data.get("key") or ""),
                name=str(data.get("name") or ""),
                status=str(data.get("status") or ""),
                timezone=str(data.get("timezone") or ""),
                raw=data,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PermanentError(
                f"DEXMA datasource without a usable id: {str(data)[:200]}; "
                "the platform's API may have changed"
            ) from exc


@dataclass(frozen=True, slots=True)
class PlatformDevice:
    id: int
    local_id: str
    name: str
    status: str


@dataclass(frozen=True, slots=True)
class SessionUser:
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class ReadingValue:
    ts: str
    v: float


def access_token_create(*, app_id: str, secret: str, temp_token: str,
                        base_url: str | None = None) -> str:
    """Installation handshake: trade the temporary token for the permanent one (201)."""
    with ApiClient(base_url or settings.DEXMA_API_URL, name="dexma",
                   retry=RetryPolicy(max_retries=1), timeout=(5, 15)) as client:
        response = client.post(
            "oauth/access-token",
            params={"app_id": app_id, "secret": secret, "temp_token": temp_token},
        )
    token = response.text.strip()
    # The plain-text body is the token; some gateways wrap it in JSON quotes or an object.
    if token.startswith(("{", '"')):
        data = response_json(response)
        token = data.get("token", "") if isinstance(data, dict) else str(data)
    if response.status_code != 201 or not token:
        raise PermanentError(
            f"DEXMA handshake answered {response.status_code} without a token; "
            "ask the user to reinstall the app",
            status_code=response.status_code, body=response.text[:1000],
        )
    metrics.token_refreshed("dexma", "temp_token")
    return token


class DexmaClient:
    """APIv3 calls of one installation (one token, one rate budget)."""

    def __init__(self, token: str, *, base_url: str | None = None, max_wait: float = 60,
                 max_retries: int = 3, timeout: float | tuple[float, float] = (5, 30),
                 **kwargs: Any) -> None:
        self.api = ApiClient(
            base_url or settings.DEXMA_API_URL,
            name="dexma",
            auth=ApiKeyAuth("x-dexcell-token", token),
            budget_key=hashlib.sha256(token.encode()).hexdigest(),
            retry=RetryPolicy(max_retries=max_retries, max_wait=max_wait),
            timeout=timeout,
            headers={"Accept": "application/json"},
            **kwargs,
        )

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> DexmaClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return response_json(self.api.request(method, path, **kwargs))
        except HubHTTPError as exc:
            body = error_body(exc)
            if body is not None:
                logger.warning("DEXMA %s %s failed: %s", method, path, body)
            raise

    def _pages(self, path: str, params: dict[str, Any], page_size: int) -> Iterator[dict]:
        if not 0 < page_size <= MAX_PAGE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE} (APIv3 answers 422 above)")
        start = 0
        while True:
            page = self._json("GET", path, params={**params, "start": start, "limit": page_size})
            if not isinstance(page, list):
                raise PermanentError(f"DEXMA GET {path} did not answer a list: {str(page)[:200]}")
            yield from page
            if len(page) < page_size:
                return
            start += page_size

    # --- datasources ---------------------------------------------------------------------

    def datasource_create(self, *, key: str, name: str, timezone: str,
                          status: str = "ENABLED") -> PlatformDatasource:
        body = {"key": key, "name": name, "type": "VIRTUAL", "timezone": timezone,
                "status": status}
        return PlatformDatasource.from_json(self._json("POST", "datasources", json=body))

    def datasource_update(self, *, datasource_id: int, name: str | None = None,
                          status: str | None = None) -> PlatformDatasource:
        """A merge of the existing datasource: only name and status are modifiable."""
        body: dict[str, Any] = {"id": datasource_id}
        if name is not None:
            body["name"] = name
        if status is not None:
            body["status"] = status
        return PlatformDatasource.from_json(self._json("POST", "datasources", json=body))

    def datasource_get(self, *, datasource_id: int) -> PlatformDatasource:
        return PlatformDatasource.from_json(self._json("GET", f"datasources/{datasource_id}"))

    def datasources_list(self, *, page_size: int = MAX_PAGE) -> Iterator[PlatformDatasource]:
        for item in self._pages("datasources", {}, page_size):
            yield PlatformDatasource.from_json(item)

    def datasource_token(self, *, datasource_id: int) -> str:
        response = self.api.get(f"datasources/{datasource_id}/token")
        # The answer's shape is not public: a JSON object, a JSON string or plain text.
        text = response.text.strip()
        data = response_json(response) if text.startswith(("{", '"')) else text
        token = data.get("token") if isinstance(data, dict) else data
        if not isinstance(token, str) or not token:
            raise PermanentError(
                f"DEXMA gave no token for datasource {datasource_id}: {str(data)[:200]}"
            )
        return token

    def datasource_delete(self, *, datasource_id: int) -> None:
        try:
            self.api.delete(f"datasources/{datasource_id}")
        except PermanentError as exc:
            if exc.status_code != 404:  # already gone is what we wanted
                raise

    # --- devices, sessions, readings -------------------------------------------------------

    def devices_list(self, *, datasource_id: int | None = None,
                     page_size: int = MAX_PAGE) -> Iterator[PlatformDevice]:
        params = {"datasource_id": datasource_id} if datasource_id is not None else {}
        for item in self._pages("devices", params, page_size):
            yield PlatformDevice(
                id=int(item["id"]), local_id=str(item.get("local_id", "")),
                name=str(item.get("name", "")), status=str(item.get("status", "")),
            )

    def session_get(self, *, session_id: str) -> SessionUser:
        data = self._json("GET", SESSION_PATH.format(session_id=session_id),
                          headers={"x-dexcell-session": session_id})
        user = data.get("user", data) if isinstance(data, dict) else {}
        return SessionUser(name=str(user.get("name", "")), email=str(user.get("email", "")))

    def readings_get(self, *, device_id: int, parameter_key: str, resolution: str,
                     operation: str, date_from: str, date_to: str) -> list[ReadingValue]:
        """Read values back from the platform (to verify a delivery or a backfill)."""
        data = self._json("GET", "readings", params={
            "device_id": device_id, "parameter_key": parameter_key, "resolution": resolution,
            "operation": operation, "from": date_from, "to": date_to,
        })
        values = data.get("values", []) if isinstance(data, dict) else []
        return [ReadingValue(ts=str(v["ts"]), v=float(v["v"])) for v in values]


def api_reachable(*, timeout: float = 2.0) -> tuple[bool, str]:
    """Whether the APIv3 host answers at all (any HTTP status counts), for /app-status."""
    with ApiClient(settings.DEXMA_API_URL, name="dexma-probe", retry=RetryPolicy(max_retries=0),
                   timeout=(timeout, timeout)) as client:
        try:
            response = client.get("ping")
        except TransientError as exc:
            if exc.status_code is None:
                return False, str(exc)[:200]
            return exc.status_code < 500, f"HTTP {exc.status_code}"
        except PermanentError as exc:
            return True, f"HTTP {exc.status_code}"
    return True, f"HTTP {response.status_code}"


# --- IS3 -------------------------------------------------------------------------------------


class Is3Value(NamedTuple):
    """One value as IS3 takes it: device (did), local timestamp with offset, parameter id."""

    did: str
    ts: str
    p: int
    v: float


def is3_body(values: list[Is3Value]) -> bytes:
    """The IS3 body: one message per device and timestamp, `sqn` always 1, in the order given
    (the caller sorts chronologically).

    Written as text directly: a backfill serialises millions of values, and the generic
    encoder over nested dicts was a good part of the hub's time per batch.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for did, ts, p, v in values:
        if v != v or v in (math.inf, -math.inf):
            raise ValueError(f"IS3 takes finite numbers only: {did} {ts} p={p} v={v}")
        part = f'{{"p":{p},"v":{v!r}}}'
        group = groups.get((did, ts))
        if group is None:
            groups[(did, ts)] = [part]
        else:
            group.append(part)
    messages = [
        f'{{"did":{json.dumps(did)},"sqn":1,"ts":{json.dumps(ts)},"values":[{",".join(parts)}]}}'
        for (did, ts), parts in groups.items()
    ]
    return ("[" + ",".join(messages) + "]").encode()


class Is3Client:
    """POST /readings?source_key=… with `x-dexcell-source-token` (no rate limit on IS3).

    Success is 200 with the plain-text body `OK`; anything else is a failure, a 200 too.
    """

    def __init__(self, *, base_url: str | None = None, max_retries: int = 2,
                 timeout: float | tuple[float, float] = (5, 60), **kwargs: Any) -> None:
        # The insert URL is the endpoint itself (no trailing slash), not a base for paths.
        self.url = (base_url or settings.DEXMA_INSERT_URL).rstrip("/")
        self.api = ApiClient(self.url, name="dexma-is3",
                             retry=RetryPolicy(max_retries=max_retries), timeout=timeout,
                             headers={"Content-Type": "application/json"}, **kwargs)

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> Is3Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def insert(self, *, source_key: str, source_token: str, body: bytes) -> None:
        """Send one pre-built body; raises TransientError/PermanentError unless IS3 said OK."""
        response = self.api.post(self.url, params={"source_key": source_key}, data=body,
                                 headers={"x-dexcell-source-token": source_token})
        text = response.text.strip()
        if response.status_code != 200 or text != "OK":
            # Seen in the wild: a 200 whose body is an error message. Not accepted, so retried.
            raise TransientError(
                f"IS3 answered {response.status_code} '{text[:200]}' instead of 200 OK; "
                "the batch was not accepted and will be retried",
                status_code=response.status_code, body=text[:1000],
            )

    def check(self, *, source_key: str, source_token: str) -> None:
        """An empty array is IS3's cheap credential check."""
        self.insert(source_key=source_key, source_token=source_token, body=b"[]")
