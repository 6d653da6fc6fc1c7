"""Celery beat's scheduler: django-celery-beat's, with runs that expire when the next is due.

Every periodic task here does "whatever is due now", so a run still queued when the next one
is sent has nothing left to do. Left in the queue, such runs pile up whenever the workers
are busy (a platform's long backlog) and stand in front of the work they fan out (one
datasource's delivery behind a row of stale `deliver_all` ticks). A run that expired is
dropped by the worker when it comes to it, without taking a pool process.
"""

from __future__ import annotations

from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

# Crontab runs (daily clean-ups and the like) are kept this long.
CRONTAB_EXPIRES_SECONDS = 3600


class TickEntry(ModelEntry):
    """A periodic task whose run expires after one interval, unless ops set an expiry."""

    def __init__(self, model, app=None):
        super().__init__(model, app=app)
        if "expires" not in self.options:
            every = getattr(self.schedule, "run_every", None)
            self.options["expires"] = (
                max(1.0, every.total_seconds()) if every is not None else CRONTAB_EXPIRES_SECONDS
            )


class Scheduler(DatabaseScheduler):
    Entry = TickEntry
