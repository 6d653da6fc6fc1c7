"""Data stores: the database (PostgreSQL, or SQLite for the demo) and the cache (Redis, or
files for the demo).
"""

from config.settings.base import VAR_DIR, env

# --- Database ----------------------------------------------------------------------------

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
# The few statements the hub runs over and over with new values (a partner API usage page)
# are prepared once per connection and their plan reused (apps.core.statements); the ORM's
# statements never are. Off for a pooler that cannot keep prepared statements: PgBouncer in
# transaction mode before 1.21 (from 1.21, `max_prepared_statements` makes it work).
DB_PREPARED_STATEMENTS = env.bool("DB_PREPARED_STATEMENTS", default=True)
if DB_PREPARED_STATEMENTS and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # psycopg prepares a statement on its second run on a connection; Django's own cursors
    # bind client-side and are never prepared, whatever this says.
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 1
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Web, worker and beat share one file: take the write lock at BEGIN and wait for it.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0

# PostgreSQL keeps core_reading partitioned by month (migration core/0008). The migration
# copies existing readings in its own transaction up to this many; a larger table is moved
# with the online procedure in docs/operations.md instead.
READINGS_PARTITION_COPY_MAX_ROWS = env.int("READINGS_PARTITION_COPY_MAX_ROWS",
                                           default=10_000_000)
# `manage.py readings_partitions` (beat: hourly): months created ahead of now, and at most
# this many readings deleted per run by retention (whole partitions dropped do not count).
READINGS_PARTITIONS_AHEAD = env.int("READINGS_PARTITIONS_AHEAD", default=3)
READINGS_RETENTION_MAX_ROWS = env.int("READINGS_RETENTION_MAX_ROWS", default=1_000_000)

# --- Cache -------------------------------------------------------------------------------

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
