"""Settings, read from the environment (12-factor).

With nothing set, the hub refuses to start: production needs SECRET_KEY and
SECRETS_ENCRYPTION_KEY. With DEBUG=true it runs on embedded defaults (SQLite and a
file-system Celery broker under var/), which is what `make demo` uses.
"""

import datetime as dt
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("HUB_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
# `make demo` writes .env (DEBUG=true, embedded stores) when there is none, so that every
# `manage.py` command runs in the demo's environment. Variables already set win over the file:
# config.settings_test sets its own before importing this module, so `make test` is unaffected.
ENV_FILE = Path(environ.Env().str("HUB_ENV_FILE", default=str(BASE_DIR / ".env")))
if ENV_FILE.is_file():
    env.read_env(ENV_FILE)

DEBUG = env.bool("DEBUG", default=False)


def _required_secret(name: str, dev_default) -> str:
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return dev_default()
    raise ImproperlyConfigured(
        f"{name} is not set. The hub refuses to start without it when DEBUG is off: "
        f"export {name}=... (see README, 'Configuration'), or set DEBUG=true for local use."
    )


def _dev_file(filename: str, make) -> str:
    """A development-only secret generated once under var/ and reused across restarts."""
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    path = VAR_DIR / filename
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _required_secret(
    "SECRET_KEY", lambda: _dev_file("dev-secret-key", lambda: Fernet.generate_key().decode())
)
# Comma-separated Fernet keys; the first encrypts, all decrypt (key rotation).
SECRETS_ENCRYPTION_KEY = _required_secret(
    "SECRETS_ENCRYPTION_KEY",
    lambda: _dev_file("dev-encryption-key", lambda: Fernet.generate_key().decode()),
)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "apps.core.apps.HubAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "csp",
    "axes",
    "auditlog",
    "apps.core",
    "apps.pull",
    "apps.partner_api",
    "apps.dexma",
    "apps.wattics",
    "apps.volue",
    "apps.sandbox",
    "apps.sandbox.dexma",
    "apps.sandbox.wattics",
    "apps.sandbox.volue",
    "apps.sandbox.upstream",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Data stores -------------------------------------------------------------------------

# PostgreSQL in production and CI; SQLite under var/ is the embedded default for the demo.
DATABASE_URL = env.str("DATABASE_URL", default="") or f"sqlite:///{VAR_DIR / 'hub.sqlite3'}"
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The gevent web workers (config/gunicorn.conf.py) set this: a greenlet per request would
# otherwise open a connection per request in flight. Celery and commands keep one each.
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=0)
if DB_POOL_MAX_SIZE and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django's rule with a pool: it keeps them
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_MAX_SIZE,
        # A request waits this long for a connection, then fails as the database being
        # unavailable (the partner API's 503 with Retry-After).
        "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Web, worker and beat share one file: take the write lock at BEGIN and wait for it.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# PostgreSQL keeps core_reading partitioned by month (migration core/0008). The migration
# copies existing readings in its own transaction up to this many; a larger table is moved
# with the online procedure in docs/operations.md instead.
READINGS_PARTITION_COPY_MAX_ROWS = env.int("READINGS_PARTITION_COPY_MAX_ROWS",
                                           default=10_000_000)
# `manage.py readings_partitions` (beat: hourly): months created ahead of now, and at most
# this many readings deleted per run by retention (whole partitions dropped do not count).
READINGS_PARTITIONS_AHEAD = env.int("READINGS_PARTITIONS_AHEAD", default=3)
READINGS_RETENTION_MAX_ROWS = env.int("READINGS_RETENTION_MAX_ROWS", default=1_000_000)

# One body-size rule for every endpoint (apps.core.middleware.RequestBodyMiddleware answers
# 413 with it before anything is read); Django's own form limit is the same number, so a
# body under it never fails deeper down. A 10,000-reading batch pretty-printed is ~2.7 MB.
MAX_REQUEST_BODY_BYTES = env.int("MAX_REQUEST_BODY_BYTES", default=8 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
# A body must be in within this many seconds of its headers (408 after it, under the gevent
# workers gunicorn runs): a client trickling it a byte at a time holds a connection no longer.
REQUEST_BODY_TIMEOUT = env.float("REQUEST_BODY_TIMEOUT", default=60.0)

REDIS_URL = env.str("REDIS_URL", default="")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "hub",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    # Shared between the demo's processes (tokens, rate budgets, locks) without a server.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Celery ------------------------------------------------------------------------------

if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    # Longer than the hard time limit, so an acked-late task is not redelivered while running.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    (VAR_DIR / "results").mkdir(parents=True, exist_ok=True)
    # The host is ignored by this transport; naming one keeps kombu from warning "No hostname
    # was supplied" on every connection.
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # The exchange tables: under var/ too, not in the working directory.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = f"file://{VAR_DIR / 'results'}"

CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
# A long job (a Wattics stream's history, a DEXMA backfill) works this many seconds (then
# finishes the batch or round in hand), and queues its continuation behind the tasks already
# waiting: a backlog on one platform never holds every worker process while another
# platform's deliveries wait.
TASK_SLICE_SECONDS = env.int("TASK_SLICE_SECONDS", default=15)
CELERY_RESULT_EXPIRES = 3600
# Outcomes live in the database (runs, batches); a task's return value is not kept. Only the
# ping (`core.ping`) asks for its result. Otherwise every task sent by beat or the web would
# subscribe to its result channel in Redis, and every finished task write one: during a Redis
# outage beat would stall on those subscriptions, and a worker fail tasks that had finished.
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A task running when the broker connection drops goes on: it works on the database and the
# platforms, not the broker, and its batch's claim stays valid. (Celery 6 will default to
# cancelling it; this keeps today's behaviour. config/celery.py silences Celery's reminder.)
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BEAT_SCHEDULER = "apps.core.beat:Scheduler"
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A queue per platform, every one consumed by each worker unless it is started with `-Q`. A
# worker takes from its queues in turn, so a backlog on one platform (thousands of Wattics
# pushes) never leaves another platform's deliveries waiting behind it. For hard isolation,
# run one worker per queue: `celery -A config worker -Q dexma`.
PLATFORM_QUEUES = ("dexma", "wattics", "volue", "pull")
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = [Queue(CELERY_TASK_DEFAULT_QUEUE), *(Queue(name) for name in PLATFORM_QUEUES)]
CELERY_TASK_ROUTES = {f"{name}.*": {"queue": name} for name in PLATFORM_QUEUES}

# --- Platforms ---------------------------------------------------------------------------

# The demo points every platform at the sandbox inside this server.
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=DEBUG)
# Where platforms reach this hub (webhooks, iframe URLs); set it to the public URL in production.
HUB_BASE_URL = env.str(
    "HUB_BASE_URL", default=f"http://127.0.0.1:{env.int('PORT', default=8000)}"
)
_sandbox = f"{HUB_BASE_URL.rstrip('/')}/sandbox"
DEXMA_API_URL = env.str(
    "DEXMA_API_URL", default=f"{_sandbox}/dexma/v3" if SANDBOX_ENABLED else "https://api.dexma.com/v3"
)
DEXMA_INSERT_URL = env.str(
    "DEXMA_INSERT_URL",
    default=(
        f"{_sandbox}/dexma/is3/readings"
        if SANDBOX_ENABLED
        else "https://insert.dexma.com/readings"
    ),
)
WATTICS_API_URL = env.str(
    "WATTICS_API_URL",
    default=(
        f"{_sandbox}/wattics/measurements/v2/unifiedjson/"
        if SANDBOX_ENABLED
        else "https://web-collector.wattics.com/measurements/v2/unifiedjson/"
    ),
)
VOLUE_API_URL = env.str(
    "VOLUE_API_URL", default=f"{_sandbox}/volue/api" if SANDBOX_ENABLED else ""
)
VOLUE_AUTH_URL = env.str(
    "VOLUE_AUTH_URL",
    default=(
        f"{_sandbox}/volue/connect/token"
        if SANDBOX_ENABLED
        else "https://auth.identity.volue.com/connect/token"
    ),
)

# --- DEXMA Market App (apps.dexma) ----------------------------------------------------

DEXMA_APP_ID = env.str("DEXMA_APP_ID", default="hub-demo-app" if SANDBOX_ENABLED else "")
DEXMA_APP_SECRET = env.str(
    "DEXMA_APP_SECRET", default="sandbox-app-secret" if SANDBOX_ENABLED else ""
)
DEXMA_DATASOURCE_TYPE_KEY = env.str("DEXMA_DATASOURCE_TYPE_KEY", default="hub")
# Origins allowed to frame the /dexma/ pages and to call its authenticated endpoints.
# The demo's sandbox platform page is served from "localhost" while the hub is "127.0.0.1"
# (same server, two origins), so the frame is a real cross-origin frame.
DEXMA_PLATFORM_ORIGINS = env.list(
    "DEXMA_PLATFORM_ORIGINS",
    default=(
        [HUB_BASE_URL.rstrip("/").replace("://127.0.0.1", "://localhost")]
        if SANDBOX_ENABLED
        else ["https://www.dexcell.com"]
    ),
)
# The sandbox platform's per-token APIv3 budgets (editable per token in the admin).
SANDBOX_DEXMA_HOUR_LIMIT = env.int("SANDBOX_DEXMA_HOUR_LIMIT", default=1000)
SANDBOX_DEXMA_DAY_LIMIT = env.int("SANDBOX_DEXMA_DAY_LIMIT", default=10000)

# --- Wattics (apps.wattics) ---------------------------------------------------------------

# Each POST waits at most this long for an answer; an unanswered POST is resolved with the
# last-packet GET before anything else is sent.
WATTICS_CONNECT_TIMEOUT = env.float("WATTICS_CONNECT_TIMEOUT", default=5.0)
WATTICS_READ_TIMEOUT = env.float("WATTICS_READ_TIMEOUT", default=15.0)
# 500/503/no answer: tries in place (with backoff from this base) before the batch waits
# for the outbox's retry schedule.
WATTICS_SEND_RETRIES = env.int("WATTICS_SEND_RETRIES", default=3)
WATTICS_RETRY_BACKOFF = env.float("WATTICS_RETRY_BACKOFF", default=0.5)
# One outbox batch: a slice of a stream sends whole batches, so this bounds how long past
# TASK_SLICE_SECONDS a push holds its worker process (100 POSTs: seconds, even at 100 ms each
# a quarter of a minute).
WATTICS_BATCH_PACKETS = env.int("WATTICS_BATCH_PACKETS", default=100)
WATTICS_PLAN_MAX_READINGS = env.int("WATTICS_PLAN_MAX_READINGS", default=200_000)
WATTICS_PUSH_EVERY_SECONDS = env.int("WATTICS_PUSH_EVERY_SECONDS", default=60)
# Credentials the demo gives its Wattics account and the sandbox collector.
WATTICS_DEMO_USERNAME = env.str("WATTICS_DEMO_USERNAME", default="demo-partner")
WATTICS_DEMO_PASSWORD = env.str("WATTICS_DEMO_PASSWORD", default="sandbox-wattics-password")

# --- Volue (apps.volue) -------------------------------------------------------------------

VOLUE_CLIENT_ID = env.str("VOLUE_CLIENT_ID", default="hub-demo" if SANDBOX_ENABLED else "")
VOLUE_CLIENT_SECRET = env.str(
    "VOLUE_CLIENT_SECRET", default="sandbox-client-secret" if SANDBOX_ENABLED else ""
)
# Where the platform delivers notifications; must be reachable from the platform.
VOLUE_WEBHOOK_URL = env.str(
    "VOLUE_WEBHOOK_URL", default=f"{HUB_BASE_URL.rstrip('/')}/volue/webhook"
)
VOLUE_NOTIFICATION_TYPES = env.list(
    "VOLUE_NOTIFICATION_TYPES",
    default=["PriceCurveCreated", "UserEligibilityUpdated", "LocationLPCRequested",
             "ResourceLPCRequested", "LPCReservationCreated"],
)
# Pages of GET /events (newest first, at most 1000 per page) read per catch-up run.
VOLUE_CATCH_UP_PAGE_SIZE = env.int("VOLUE_CATCH_UP_PAGE_SIZE", default=100)
VOLUE_CATCH_UP_MAX_PAGES = env.int("VOLUE_CATCH_UP_MAX_PAGES", default=10)
# A report whose data is still incomplete this long after the event's hours is flagged.
VOLUE_REPORT_DEADLINE_HOURS = env.float("VOLUE_REPORT_DEADLINE_HOURS", default=48)
# Largest gap between two readings across which a register or power is interpolated.
VOLUE_MAX_GAP_MINUTES = env.int("VOLUE_MAX_GAP_MINUTES", default=60)
# Sandbox: lifetime of the simulated platform's tokens (the real one says 30 to 60 min).
SANDBOX_VOLUE_TOKEN_LIFETIME = env.int("SANDBOX_VOLUE_TOKEN_LIFETIME", default=300)
# Sandbox (demo): raise a power-limit event over past hours when the first meter registers.
SANDBOX_VOLUE_AUTO_EVENT = env.bool("SANDBOX_VOLUE_AUTO_EVENT", default=DEBUG)

# --- Upstream pull sync (apps.pull) -------------------------------------------------------

# --- Partner API (apps.partner_api) -------------------------------------------------------

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

# --- Outbox ------------------------------------------------------------------------------

# Seconds between attempts of a failed outbound batch; the last value repeats.
OUTBOX_RETRY_SCHEDULE = env.list(
    "OUTBOX_RETRY_SCHEDULE", cast=int, default=[10, 30, 60, 300, 900, 1800, 3600]
)
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=25)
# A batch claimed for sending longer ago than this is presumed lost with its worker.
OUTBOX_LEASE_SECONDS = env.int("OUTBOX_LEASE_SECONDS", default=CELERY_TASK_TIME_LIMIT + 60)

# --- Web, security -----------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
LANGUAGES = [("en", "English"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
if DEBUG:
    Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

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
    # Load balancers probe over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGIN_URL = "admin:login"

# --- Observability -----------------------------------------------------------------------

# GET /metrics (Prometheus). With METRICS_TOKEN set, scrapers send
# "Authorization: Bearer <METRICS_TOKEN>". Without it, only requests made directly (no
# X-Forwarded-For) from loopback or METRICS_ALLOWED_IPS (addresses or networks) are served.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])
# Where every process of this host (gunicorn workers, Celery worker and beat, commands)
# writes its event counters for /metrics to sum (prometheus_client multiprocess mode).
# A worker on another host counts into that host's directory, not into this web's /metrics
# (the metrics read from the database are the same everywhere).
METRICS_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default=str(VAR_DIR / "metrics"))
if not DEBUG:
    # Prometheus scrapes over the internal network, without TLS.
    SECURE_REDIRECT_EXEMPT = [*SECURE_REDIRECT_EXEMPT, r"^metrics$"]

# One JSON object per line in production (deployment, link, run and Celery task id on every
# line, null when unknown); plain lines with the same context for the demo.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'json' or 'plain', not {LOG_FORMAT!r}")
# Each request starts with an empty log context (see apps.core.logs).
MIDDLEWARE = ["apps.core.logs.LogContextMiddleware", "apps.core.middleware.RequestBodyMiddleware",
              *MIDDLEWARE, "auditlog.middleware.AuditlogMiddleware",
              # Last, as django-axes asks: it turns a locked-out login into its 429 page.
              "axes.middleware.AxesMiddleware"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "apps.core.logs.ContextFilter"}},
    "formatters": {
        "plain": {"()": "apps.core.logs.PlainFormatter"},
        "json": {"()": "apps.core.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

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

# Error reports mailed on a 500 mask tokens in query strings and keys in headers too.
DEFAULT_EXCEPTION_REPORTER_FILTER = "apps.core.reporting.ExceptionReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "apps.core.reporting.ExceptionReporter"

# Ops alerts (failed syncs, broken links) go to these addresses.
ADMINS = [("ops", addr) for addr in env.list("OPS_EMAILS", default=[])]
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default=(
        "django.core.mail.backends.console.EmailBackend"
        if DEBUG
        else "django.core.mail.backends.smtp.EmailBackend"
    ),
)
