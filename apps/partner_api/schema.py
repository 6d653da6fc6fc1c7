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
