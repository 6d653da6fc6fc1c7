"""OpenAPI descriptions of the partner API's authentication schemes."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "apps.partner_api.auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey", "in": "header", "name": "X-API-Key",
            "description": "A partner API key (hub_…), issued by the hub operator. Keys are "
            "scoped to deployments and are read-only or read-write.",
        }


class BasicScheme(OpenApiAuthenticationExtension):
    target_class = "apps.partner_api.auth.ApiKeyBasicAuthentication"
    name = "basic"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http", "scheme": "basic",
            "description": "User name: the key's prefix (the 8 characters after 'hub_'); "
            "password: the whole API key.",
        }


# Response headers, which drf-spectacular has no per-response argument for: added to the
# generated document (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]).
HEADERS = {
    "X-RateLimit-Limit": ("integer", "Requests this key may make per minute."),
    "X-RateLimit-Remaining": ("integer", "Requests left in the current minute."),
    "X-RateLimit-Reset": ("integer", "Seconds until the current minute's window ends."),
    "Retry-After": ("integer", "Seconds to wait before retrying."),
    "Link": ("string", 'RFC 8288 links to other pages of the list: rel="next" (absent on '
             'the last page), and rel="first" and rel="prev" for offset and page-number '
             "paging."),
    "Idempotent-Replayed": ("string", "`true` when this is the stored first answer to an "
                            "earlier request with the same Idempotency-Key, `false` when the "
                            "request was processed now; only with an Idempotency-Key."),
}
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
LIST_OPERATIONS = ("assets_list", "meters_list", "usage_list", "readings_list")


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/headers/{name}"}


def response_headers(result: dict, generator, request, public) -> dict:
    result.setdefault("components", {})["headers"] = {
        name: {"description": text, "schema": {"type": kind}}
        for name, (kind, text) in HEADERS.items()}
    for methods in result.get("paths", {}).values():
        for operation in methods.values():
            for status, response in operation.get("responses", {}).items():
                headers = response.setdefault("headers", {})
                if status != "401":  # no key, no rate budget to report
                    headers.update({name: _ref(name) for name in RATE_HEADERS})
                if status in ("429", "503"):
                    headers["Retry-After"] = _ref("Retry-After")
                if status == "200" and operation["operationId"] in LIST_OPERATIONS:
                    headers["Link"] = _ref("Link")
                if operation["operationId"] == "readings_push" and status in ("200", "201"):
                    headers["Idempotent-Replayed"] = _ref("Idempotent-Replayed")
    return result


# What the views refuse that drf-spectacular does not write down by itself: added to the
# generated document (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]) so that the document and
# the behaviour agree, as schemathesis checks (tests/faults/test_schemathesis.py).
# PostgreSQL text cannot hold NUL: a URL holding one is refused (a NUL in a JSON body is kept
# as the visible text \u0000, see parsers.py).
NUL_FREE = "^[^\\x00]*$"
SERIES_OPERATIONS = {"usage_list": "usage_ids", "readings_list": "reading_ids"}


def _nul_free(schema: dict | None) -> None:
    """NUL_FREE on a free string parameter, or on the items of a repeated one."""
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "string" and not {"enum", "format", "pattern"} & set(schema):
        schema["pattern"] = NUL_FREE
    _nul_free(schema.get("items"))


def _subtype_by_type() -> list[dict]:
    """One alternative per meter type: its own sub-categories (or none, or blank)."""
    from apps.core.models import COMMODITY_SUBTYPES, Commodity

    return [{"properties": {
        "type": {"type": "string", "enum": [commodity.label, commodity.value]},
        "subtype": {"type": "string", "enum": ["", *COMMODITY_SUBTYPES[commodity]]}}}
        for commodity in Commodity]


def _served_parameters() -> dict[str, list[str]]:
    """Parameter keys each series endpoint serves (a fixed catalogue); {} without a database."""
    from apps.partner_api.selectors import catalogue

    try:
        cat = catalogue()
    except Exception:  # no database where the document is generated offline
        return {}
    return {operation: sorted(cat.keys[pk] for pk in getattr(cat, ids))
            for operation, ids in SERIES_OPERATIONS.items()}


def schema_matches_behaviour(result: dict, generator, request, public) -> dict:
    from django.conf import settings

    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    if "MeterInputRequest" in schemas:
        # A subtype must belong to the type: refused with a 400 otherwise.
        schemas["MeterInputRequest"]["oneOf"] = _subtype_by_type()
    batch = schemas.get("ReadingBatchDocRequest", {}).get("properties", {}).get("readings")
    if batch is not None:
        # Each reading is checked on its own (a reading that is not one is a rejection in
        # the answer, not a 400), so an item may be any JSON; the batch is bounded.
        batch.update({
            "minItems": 1, "maxItems": settings.PARTNER_API_MAX_BATCH,
            "items": {"anyOf": [{"$ref": "#/components/schemas/ReadingItemRequest"}, {}],
                      "description": "A reading (ReadingItemRequest); anything else comes "
                      "back as a rejection with its index."}})
    served = _served_parameters()
    for methods in result.get("paths", {}).values():
        for operation in methods.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] != "header":
                    _nul_free(parameter.get("schema"))
                if parameter["name"] == "Idempotency-Key":
                    parameter["schema"]["maxLength"] = 255
                if parameter["name"] == "parameter" and operation["operationId"] in served:
                    parameter["schema"] = {"type": "string",
                                           "enum": served[operation["operationId"]]}
    return result
