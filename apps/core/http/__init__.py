"""HTTP client base for platform integrations.

Every integration's ``client.py`` builds on :class:`ApiClient`: timeouts, retries with backoff
and jitter, ``Retry-After``, a rate-limit budget shared by all workers through Django's cache,
and auth strategies (API key, basic, bearer, OAuth2 client credentials and password grant).
A `RetryPolicy` (`retry`) says which failed requests are sent again, how often and when.
Callers import from here: `errors` (HubHTTPError and its kinds, ``Retry-After``), `budgets`
(RateLimitBudget), `auth` (the strategies), `client` (ApiClient, response_json).
"""

from apps.core.http.auth import (
    ApiKeyAuth,
    Auth,
    BasicAuth,
    BearerAuth,
    ClientCredentialsAuth,
    OAuth2Auth,
    OAuthToken,
    PasswordGrantAuth,
    Sleep,
)
from apps.core.http.budgets import Clock, RateLimitBudget
from apps.core.http.client import ApiClient, response_json
from apps.core.http.errors import (
    NETWORK_ERRORS,
    RETRY_AFTER_MAX,
    HubHTTPError,
    PermanentError,
    TransientError,
    error_for_response,
    parse_retry_after,
    redact_url,
)
from apps.core.http.retry import RetryPolicy, backoff_delay

__all__ = [
    "NETWORK_ERRORS",
    "RETRY_AFTER_MAX",
    "ApiClient",
    "ApiKeyAuth",
    "Auth",
    "BasicAuth",
    "BearerAuth",
    "ClientCredentialsAuth",
    "Clock",
    "HubHTTPError",
    "OAuth2Auth",
    "OAuthToken",
    "PasswordGrantAuth",
    "PermanentError",
    "RateLimitBudget",
    "RetryPolicy",
    "Sleep",
    "TransientError",
    "backoff_delay",
    "error_for_response",
    "parse_retry_after",
    "redact_url",
    "response_json",
]
