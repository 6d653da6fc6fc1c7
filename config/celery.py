import os
import warnings

from celery import Celery, signals
from celery.exceptions import CPendingDeprecationWarning

from apps.core import broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Before any broker connection: a worker must outlive Redis going away (apps/core/broker.py).
broker.install()

app = Celery("hub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect
def _logging_from_django(**kwargs) -> None:
    """Log through Django's LOGGING (JSON or plain, with the context), not Celery's handlers.

    A receiver on this signal stops Celery from configuring logging itself; `-l/--loglevel`
    is then ignored in favour of LOG_LEVEL. Python warnings become log lines too.
    """
    import logging
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
    logging.captureWarnings(True)


@signals.celeryd_after_setup.connect
def _quiet_reconnect_reminder(**kwargs) -> None:
    """Tasks keep running when the broker connection drops, by choice (config/settings/jobs.py
    CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS), yet Celery logs a paragraph
    saying so on every lost connection, in the middle of an outage's log lines. Its logging
    setup turns all its reminders on; this runs after it and turns that one off."""
    warnings.filterwarnings("ignore", r"\s*In Celery 5\.1 we introduced an optional breaking",
                            CPendingDeprecationWarning)


@signals.worker_init.connect
def _worker_metrics(**kwargs) -> None:
    from apps.core.metrics import metrics_dir_prepare

    metrics_dir_prepare("worker")


@signals.beat_init.connect
def _beat_metrics(**kwargs) -> None:
    from apps.core.metrics import metrics_dir_prepare

    metrics_dir_prepare("beat")


@signals.task_prerun.connect
def _task_log_context(task_id=None, task=None, **kwargs) -> None:
    from apps.core.logs import log_context_replace

    log_context_replace(task_id=task_id, task=getattr(task, "name", None))


@signals.task_postrun.connect
def _task_log_context_end(**kwargs) -> None:
    from apps.core.logs import log_context_replace

    log_context_replace()
