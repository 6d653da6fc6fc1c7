"""The partner API (apps.partner_api): DRF, its OpenAPI schema and its limits.
"""

from config.settings.base import MAX_REQUEST_BODY_BYTES, env
from config.settings.platforms import HUB_BASE_URL

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Partners authenticate with API keys (header or Basic), never with a session.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.partner_api.auth.ApiKeyAuthentication",
        "apps.partner_api.auth.ApiKeyBasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.partner_api.auth.PartnerAccess"],
    "DEFAULT_THROTTLE_CLASSES": ["apps.partner_api.throttling.KeyRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["apps.partner_api.parsers.PartnerJSONParser"],
    # Errors: DRF's own shape; the partner API views answer in theirs (PartnerApiView).
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Energy hub partner API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "DESCRIPTION": "\n".join([
        "Assets, meters and usage for Scaler and other partners to pull; reading batches, "
        "assets and meters for partners to push.",
        "",
        "**Authentication.** An API key from the hub operator, in the `X-API-Key` header, "
        "or HTTP Basic with the key's prefix as user name and the key as password. A key "
        "reaches one or more deployments (add `?deployment=<slug>` when it reaches several) "
        "and is read-only or read-write.",
        "",
        "**Dates.** `YYYY-MM-DD` (midnight in the deployment's time zone) or ISO 8601 with "
        "an offset; times without an offset are refused. Instants are answered in ISO 8601 "
        "UTC; usage also carries Scaler's `start_date`/`end_date` days when its period is "
        "whole local days. `from` (or `start_date`) is inclusive, `to` (or `end_date`) "
        "exclusive, only with a start, and at most 366 days after it; `from` alone runs to "
        "now.",
        "",
        "**Paging.** `limit` (default 500, at most 1000) with `offset`, `page` with "
        "`page_size`, or the opaque `cursor` from `next_cursor`; `next` is in the body and in "
        "an RFC 8288 `Link` header, and null on the last page. Each list operation says what "
        "a pull sees when data changes meanwhile.",
        "",
        "**Changes.** Every record carries `updated_at`; `updated_since` returns every "
        "insert, correction, deactivation and (with `include_deleted`) deletion since then.",
        "",
        "**Rate limit.** Per key, 600 requests a minute unless agreed otherwise. Every "
        "answer carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` "
        "(seconds); over the limit: 429 with `Retry-After`.",
        "",
        "**Errors.** Every error is `{\"error\": {\"status\", \"code\", \"message\", "
        "\"fields\"?}}` with status 400, 401, 403, 404, 413, 422, 429 or 5xx. An unknown "
        "query parameter is a 400 that lists the accepted ones.",
    ]),
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Paths stay absolute (/api/v1/…): the server is the hub itself.
    "SERVERS": [{"url": HUB_BASE_URL, "description": "This hub"}],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.partner_api.schema.response_headers",
        "apps.partner_api.schema.schema_matches_behaviour",
    ],
    "COMPONENT_SPLIT_REQUEST": True,
    # Interactive docs from local static files (drf-spectacular-sidecar): no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
PARTNER_API_RATE_PER_MINUTE = env.int("PARTNER_API_RATE_PER_MINUTE", default=600)
PARTNER_API_PAGE_SIZE = 500
PARTNER_API_MAX_PAGE_SIZE = 1000
PARTNER_API_MAX_BATCH = 10_000
PARTNER_API_MAX_BODY_BYTES = MAX_REQUEST_BODY_BYTES
PARTNER_API_MAX_RANGE_DAYS = 366
# Deleted meters and assets stay listable (?include_deleted=true) this many days.
PARTNER_API_TOMBSTONE_DAYS = env.int("PARTNER_API_TOMBSTONE_DAYS", default=400)
