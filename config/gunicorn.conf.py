"""gunicorn settings of the web process: `gunicorn -c config/gunicorn.conf.py`.

Command-line options still win (the tests bind their own ports). The hooks keep /metrics
right across worker restarts, and gunicorn's own error and access lines go through the
hub's LOGGING (JSON in production), like every other line.
"""

import copy
import logging
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

wsgi_app = "config.wsgi"
bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
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
