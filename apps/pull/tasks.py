"""Thin Celery tasks: load by id, call a service."""

from __future__ import annotations

from celery import shared_task

from apps.core import jobs
from apps.core.models import Run
from apps.pull.models import Connection
from apps.pull.services import connection_sync


@shared_task(name="pull.connection_sync", bind=True)
def connection_sync_task(self, connection_id: int) -> dict:
    connection = jobs.load(Connection.objects.select_related("deployment"), connection_id,
                           what="pull connection")
    if connection is None or not connection.is_enabled:
        return jobs.skipped("connection missing or disabled")
    outcome = connection_sync(connection=connection, task_id=self.request.id or "")
    if outcome.run is None:
        return {"skipped": outcome.skipped}
    return {"run": outcome.run.pk, "status": outcome.run.status}


@shared_task(name="pull.connections_kickoff")
def connections_kickoff() -> int:
    """Start the first sync of new connections instead of waiting for their schedule slot.

    One task per connection, so one provider's failure never blocks another's.
    """
    ids = list(Connection.objects.filter(is_enabled=True, last_run__isnull=True)
               .exclude(last_status=Run.Status.RUNNING).values_list("pk", flat=True))
    for pk in ids:
        connection_sync_task.delay(pk)
    return len(ids)
