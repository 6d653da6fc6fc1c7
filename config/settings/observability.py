"""Observability: /metrics, logging, error reports and ops alerts by mail.
"""

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import DEBUG, VAR_DIR, env

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

# One JSON object per line in production (deployment, link, run and Celery task id on every
# line, null when unknown); plain lines with the same context for the demo.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'json' or 'plain', not {LOG_FORMAT!r}")
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
