"""One sync run of one connection: entities, then usage, logged, single-flight."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from apps.core import jobs
from apps.core.locks import AlreadyRunning
from apps.core.models import Run
from apps.core.services import run_logged
from apps.pull.client import UpstreamClient
from apps.pull.models import Connection
from apps.pull.services.connections import connection_setup
from apps.pull.services.entities import entities_sync
from apps.pull.services.usage import usage_sync

logger = logging.getLogger(__name__)
RUN_KIND = "pull.sync"


@dataclass(slots=True)
class SyncOutcome:
    run: Run | None
    skipped: str = ""


def connection_sync(
    *,
    connection: Connection,
    sleep: Callable[[float], None] = time.sleep,
    now: dt.datetime | None = None,
    on_page: Callable[[], None] | None = None,
    lock_ttl: int | None = None,
    task_id: str = "",
) -> SyncOutcome:
    """Sync one connection now. A second call while one runs returns at once, skipped."""
    try:
        with jobs.job_lock("pull", "sync", connection.pk, ttl=lock_ttl):
            return SyncOutcome(run=_sync(connection, sleep=sleep, now=now, on_page=on_page,
                                         task_id=task_id))
    except AlreadyRunning:
        logger.info("pull: %s is already syncing; this run is skipped", connection)
        return SyncOutcome(run=None, skipped="already running")


def _sync(connection, *, sleep, now, on_page, task_id) -> Run:
    if connection.datasource_id is None:
        connection_setup(connection=connection)
    started = time.monotonic()
    client = UpstreamClient(connection, sleep=sleep)
    run_holder: list[Run] = []
    try:
        with run_logged(kind=RUN_KIND, target=connection.name,
                        deployment=connection.deployment, task_id=task_id) as run:
            run_holder.append(run)
            entities = entities_sync(connection=connection, client=client, run=run)
            usage = usage_sync(connection=connection, client=client, run=run, now=now,
                               on_page=on_page)
            errors = [e for e in (entities.error, usage.error) if e]
            stored = entities.assets.stored + entities.meters.stored + usage.counts.stored
            run.counts = {
                "assets": entities.assets.as_dict(),
                "meters": entities.meters.as_dict(),
                "usage": {**usage.counts.as_dict(), "duplicates": usage.duplicates,
                          "production_ignored": usage.production_ignored},
                "entities_complete": entities.complete,
                "units_registered": entities.units_registered,
                "windows": usage.windows,
                "window_shrinks": usage.window_shrinks,
                "pages": client.pages_fetched,
                "retries": client.retries,
                "rate_limited": client.api.counters["rate_limited"],
                "duration_s": round(time.monotonic() - started, 3),
                "watermark": usage.watermark.isoformat() if usage.watermark else None,
            }
            if errors:
                run.error = "; ".join(errors)
                progressed = stored or usage.counts.unchanged or usage.windows
                # A looping cursor fails every run the same way until the provider fixes
                # it: failed, so that the first one alerts, whatever else was stored.
                broken = entities.broken or usage.broken
                run.status = (Run.Status.PARTIAL if progressed and not broken
                              else Run.Status.FAILED)
    except Exception as exc:
        logger.warning("pull: sync of %s failed: %s", connection, exc)
    finally:
        client.close()
    run = run_holder[0]
    run.refresh_from_db()
    _record_outcome(connection, run)
    return run


def _record_outcome(connection: Connection, run: Run) -> None:
    previous = connection.last_status
    update = {"last_status": run.status, "last_run": run, "last_error": run.error[:2000]}
    if run.status == Run.Status.SUCCEEDED:
        update["last_success_at"] = timezone.now()
    Connection.objects.filter(pk=connection.pk).update(**update)
    for name, value in update.items():
        setattr(connection, name, value)
    if run.status == Run.Status.FAILED and previous != Run.Status.FAILED:
        _notify_failure(connection, run)


def _notify_failure(connection: Connection, run: Run) -> None:
    recipients = [address for _, address in settings.ADMINS]
    if connection.notify_email:
        recipients.append(connection.notify_email)
    if not recipients:
        return
    send_mail(
        subject=f"[energy hub] pull sync of '{connection.name}' failed",
        message=(
            f"The sync of connection '{connection.name}' (deployment "
            f"{connection.deployment.slug}) failed at {run.finished_at:%Y-%m-%d %H:%M} UTC.\n\n"
            f"{run.error}\n\nCounts: {run.counts}\n\nThe next scheduled run retries from the "
            "last committed watermark; 'Sync now' in the admin retries at once."
        ),
        from_email=None,
        recipient_list=sorted(set(recipients)),
        fail_silently=True,
    )
