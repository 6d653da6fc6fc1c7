"""Volue's published Partner API (`partner-v1.json`, v1, 2026) as a validator.

The sandbox answers only what this document defines and refuses what it does not; the test
suite checks every request the hub's client sends against it. openapi-core does the work;
this module only adapts the document where it cannot be read literally (see `document`).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema.exceptions import best_match
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.validation.request.exceptions import SecurityValidationError
from werkzeug.datastructures import Headers, ImmutableMultiDict

DOCUMENT = Path(__file__).with_name("partner-v1.json")
BASE_PATH = "/energy-coordination/v1"  # the document's `servers` entry
HOST = "https://volue.invalid"  # the document's server is relative; any host stands in
_PARAM = re.compile(r"\{[^/}]+\}")


@functools.cache
def document() -> dict[str, Any]:
    """The document as published, with two readings made explicit.

    - `Bearer` is the scheme's name; HTTP auth schemes are case-insensitive (RFC 7235), but
      openapi-core compares them lower-cased, so it is lower-cased here.
    - The report and event payloads are `allOf` a discriminator base (`SparkReportPayload`,
      `SparkEventPayload`) that says `additionalProperties: false` and holds only
      `payloadType`, while each payload also says `additionalProperties: false` without
      `payloadType`. Read literally no payload is valid, not even the document's own
      example; the generator meant "the base's properties plus these", so that is what the
      validator is given, with `payloadType` fixed to the value the base's discriminator
      maps to that payload (LocationLPC and LPCReservation have the same shape, so without
      it a `oneOf` of them matches twice and refuses both).
    """
    doc = json.loads(DOCUMENT.read_text())
    for scheme in doc["components"]["securitySchemes"].values():
        if scheme.get("type") == "http":
            scheme["scheme"] = scheme["scheme"].lower()
    schemas = doc["components"]["schemas"]
    for base_name in ("SparkReportPayload", "SparkEventPayload"):
        base = schemas[base_name]
        base.pop("additionalProperties", None)
        for schema in schemas.values():
            if any(part.get("$ref", "").endswith(f"/{base_name}")
                   for part in schema.get("allOf", [])):
                schema.setdefault("properties", {}).update(copy.deepcopy(base["properties"]))
        for value, ref in base.get("discriminator", {}).get("mapping", {}).items():
            schemas[ref.rsplit("/", 1)[-1]]["properties"]["payloadType"] = {
                "type": "string", "enum": [value]}
    return doc


@functools.cache
def spec() -> OpenAPI:
    # The document answers validation errors as application/problem+json, which is JSON.
    config = Config(extra_media_type_deserializers={"application/problem+json": json.loads})
    return OpenAPI.from_dict(document(), config=config)


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    template: str  # the document's path, e.g. /users/{userId}/locations
    path_params: dict[str, str]


@functools.cache
def _routes() -> list[tuple[re.Pattern[str], str, dict[str, Any]]]:
    routes = []
    for template, item in document()["paths"].items():
        names = [m.group(0)[1:-1] for m in _PARAM.finditer(template)]
        pattern = "^" + _PARAM.sub("([^/]+)", template) + "$"
        routes.append((re.compile(pattern), template, {"names": names, "item": item}))
    # A literal segment wins over a parameter (/users/batch is not the user "batch").
    routes.sort(key=lambda r: (-len(_PARAM.sub("", r[1])), r[1]))
    return routes


def path_find(path: str) -> tuple[str, dict[str, str], dict[str, Any]] | None:
    """The document's path template matching `path` (relative to BASE_PATH)."""
    for pattern, template, info in _routes():
        match = pattern.match(path)
        if match:
            return template, dict(zip(info["names"], match.groups(), strict=True)), info["item"]
    return None


def operation_find(method: str, path: str) -> Operation | int:
    """The operation `method path` names, or 404 (no such path) / 405 (no such method)."""
    found = path_find(path)
    if found is None:
        return 404
    template, params, item = found
    operation = item.get(method.lower())
    if operation is None:
        return 405
    return Operation(operation_id=operation["operationId"], method=method.upper(),
                     template=template, path_params=params)


def operation_get(operation_id: str) -> dict[str, Any]:
    for item in document()["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                return operation
    raise KeyError(operation_id)


@dataclass
class WireRequest:
    """One HTTP request as openapi-core reads it (`openapi_core.protocols.Request`)."""

    method: str
    path: str  # relative to BASE_PATH
    query: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    host_url = HOST

    @property
    def full_path(self) -> str:
        return BASE_PATH + self.path

    def openapi(self) -> _OpenAPIRequest:
        return _OpenAPIRequest(self)


class _OpenAPIRequest:
    def __init__(self, wire: WireRequest) -> None:
        self.host_url = HOST
        self.path = wire.full_path
        self.full_url_pattern = HOST + wire.full_path
        self.method = wire.method.lower()
        self.body = wire.body or None
        self.content_type = (wire.content_type or "").split(";")[0].strip()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(wire.query), header=Headers(wire.headers),
            cookie=ImmutableMultiDict(),
        )


class _OpenAPIResponse:
    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        self.status_code = status
        self.data = body
        self.content_type = (content_type or "").split(";")[0].strip()
        self.headers = Headers({"Content-Type": content_type} if content_type else {})


def _where(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _closest(errors: list[Any]) -> Any:
    """Of a oneOf's branch errors, the deepest one in a branch its payloadType selects."""
    wrong_branch = {e.relative_schema_path[0] for e in errors
                    if list(e.path)[-1:] == ["payloadType"] or "was unexpected" in e.message}
    kept = [e for e in errors if e.relative_schema_path[0] not in wrong_branch] or errors
    return max(kept, key=lambda e: len(e.absolute_path)) if kept else best_match(errors)


def _explain(exc: Exception) -> list[str]:
    """Field-by-field reasons from an openapi-core error ("coordinates.latitude: …")."""
    reasons: list[str] = []
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        for schema_error in getattr(error, "schema_errors", None) or []:
            if schema_error.context:  # oneOf: the branch the payloadType chose says why
                schema_error = _closest(schema_error.context)
            where = _where(schema_error.absolute_path)
            reasons.append(f"{where}: {schema_error.message}" if where else schema_error.message)
        error = error.__cause__ or error.__context__
    if not reasons:
        cause = exc.__cause__
        reasons.append(f"{exc}" + (f" ({cause})" if cause and str(cause) not in str(exc) else ""))
    return reasons


@dataclass(frozen=True)
class Violation:
    status: int  # what the platform would answer: 400, 401, 404 or 405
    reasons: list[str]

    def __str__(self) -> str:
        return "; ".join(self.reasons)


def request_check(wire: WireRequest) -> Violation | None:
    """Why the document refuses `wire` (None when it is a request the document defines)."""
    found = operation_find(wire.method, wire.path)
    if isinstance(found, int):
        what = "no such path" if found == 404 else f"{wire.path} has no {wire.method}"
        return Violation(found, [f"{wire.method} {wire.full_path}: {what} in the Partner API"])
    try:
        spec().validate_request(wire.openapi())
    except SecurityValidationError as exc:
        return Violation(401, _explain(exc))
    except (PathNotFound, OperationNotFound) as exc:  # pragma: no cover - found above
        return Violation(404, _explain(exc))
    except Exception as exc:  # openapi-core's validation errors have no common base
        return Violation(400, _explain(exc))
    return None


def response_check(wire: WireRequest, *, status: int, body: bytes, content_type: str) -> str:
    """Why the document does not allow this answer to `wire` ("" when it does)."""
    try:
        spec().validate_response(wire.openapi(), _OpenAPIResponse(status, body, content_type))
    except Exception as exc:  # openapi-core's validation errors have no common base
        return "; ".join(_explain(exc))
    return ""
