"""gunicorn settings of the web process: `gunicorn -c config/gunicorn.conf.py`.

Command-line options still win (the tests bind their own ports). The hooks keep /metrics
right across worker restarts, and gunicorn's own error and access lines go through the
hub's LOGGING (JSON in production), like every other line.

Workers are gevent's: a sync or gthread worker gives each connection a thread from the
moment it is accepted, so a few clients that send their headers or body slowly (a bad
network, or on purpose) hold every thread and /healthz stops answering. A greenlet per
connection costs a few kilobytes, so hundreds of slow clients wait beside the others.
psycopg 3 cooperates with gevent once the standard library is patched; the database
connections are pooled per worker (DB_POOL_MAX_SIZE) so a burst of greenlets cannot open
more connections than PostgreSQL allows.
"""

import os

WORKER_CLASS = os.environ.get("WEB_WORKER_CLASS", "gevent")
if WORKER_CLASS == "gevent":
    # First, before anything imports ssl, socket or threading: patching later leaves
    # modules holding the blocking originals (gevent's own warning about ssl).
    from gevent import monkey

    monkey.patch_all()
    # One pool per web worker instead of a connection per greenlet (read by the settings).
    os.environ.setdefault("DB_POOL_MAX_SIZE", "20")

import copy  # noqa: E402
import logging  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

wsgi_app = "config.wsgi"
bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
worker_class = WORKER_CLASS
# Open connections per worker, slow ones included; past it the kernel's backlog holds them.
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", "1000"))
# A worker whose loop stops turning (a CPU-bound request, a C call that never yields) is
# restarted after this long; gevent workers notify the master from their own greenlet.
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
graceful_timeout = 20
keepalive = 5
# Headers bounded where gunicorn reads them: more or longer ones are a 400 before Django.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = "-"


def _logconfig() -> dict:
    from django.conf import settings

    config = copy.deepcopy(settings.LOGGING)
    quiet = {"handlers": ["console"], "propagate": False}
    config["loggers"] = {
        **config.get("loggers", {}),
        "gunicorn.error": {"level": "INFO", **quiet},
        "gunicorn.access": {"level": "INFO", **quiet},
    }
    return config


logconfig_dict = _logconfig()
logging.captureWarnings(True)  # warnings become log lines too, in the workers as well


def on_starting(server) -> None:
    """In the master, before any worker: this host's web counters start afresh."""
    from apps.core.metrics import metrics_dir_prepare

    metrics_dir_prepare("web")


def child_exit(server, worker) -> None:
    from apps.core.metrics import process_exited

    process_exited(worker.pid)


def post_worker_init(worker) -> None:
    """Load the URLconf, and with it every view, before the worker takes requests: Django
    does it lazily, in the first request, which then waited 0.4 s or more for the imports."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (loading is the point)
