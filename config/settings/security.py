"""Web security: frames, CSP, CORS, TLS and cookies; admin login throttling (django-axes)
and the audit history of configuration (django-auditlog).
"""

import datetime as dt

from config.settings.base import DEBUG, env

X_FRAME_OPTIONS = "DENY"
# The strict default for every page; the DEXMA pages widen frame-ancestors for the platform.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
# CORS is closed unless an integration opens it for its own paths and origins.
CORS_ALLOWED_ORIGINS: list[str] = []
CORS_URLS_REGEX = r"^/(dexma|api)/.*$"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True

if not DEBUG:
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Load balancers probe over plain HTTP; Prometheus scrapes over the internal network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- Admin: login throttling and the audit history of configuration --------------------

# django-axes: after AXES_FAILURE_LIMIT failed logins an account, and separately an address,
# is locked out for AXES_COOLOFF_MINUTES (answered 429). Behind TRUSTED_PROXY_COUNT proxies
# the client's address is read from X-Forwarded-For; without it, from the socket.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend",
                           "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "apps.core.admin_auth.client_address"
# Attempts are in the database, never a password: only the user name and the address.
AXES_SENSITIVE_PARAMETERS = ["password", "api_key", "dep_token", "temp_token", "token"]

# django-auditlog: who changed what in ops' configuration, readable under Audit log in the
# admin. Secrets (encrypted at rest) are never copied into the history, and neither are the
# fields the hub itself updates as it runs (cursors, last-run markers, counters), so the
# history holds configuration changes only.
AUDITLOG_INCLUDE_TRACKING_MODELS = (
    {"model": "core.Deployment", "exclude_fields": ["created_at", "updated_at"]},
    {"model": "core.Datasource", "exclude_fields": ["consent_status", "consent_expires_at",
                                                    "created_at", "updated_at"]},
    {"model": "core.DeliveryLink", "include_fields": ["platform", "name", "deployment",
                                                      "state", "broken_reason", "ordered"]},
    {"model": "pull.Connection", "exclude_fields": [
        "api_key", "password", "client_secret", "refresh_token", "usage_watermark",
        "last_status", "last_run", "last_success_at", "last_error", "created_at",
        "updated_at"]},
    {"model": "pull.Endpoint"},
    {"model": "wattics.WatticsStream", "include_fields": [
        "deployment", "device", "meter_id", "kind", "interval_seconds", "timezone",
        "start_at", "link"]},
    {"model": "wattics.WatticsAccount", "exclude_fields": [
        "password", "created_at", "updated_at"]},
    {"model": "wattics.WatticsChannel"},
    {"model": "partner_api.ApiKey", "exclude_fields": ["key_hash", "created_at",
                                                       "last_used_at"]},
    {"model": "dexma.Installation", "include_fields": ["dep_id", "deployment", "installed_at",
                                                       "reinstalled_at"]},
    {"model": "dexma.DexmaDatasource", "include_fields": [
        "installation", "deployment", "name", "platform_id", "key", "timezone", "enabled",
        "consent_suspended", "link"]},
    {"model": "dexma.SelectedDevice"},
    {"model": "volue.WebhookSubscription", "exclude_fields": ["secret", "created_at",
                                                              "updated_at"]},
)
