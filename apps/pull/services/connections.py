"""Connection set-up (datasource, schedule) and the "test connection" preview."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from apps.core.http import HubHTTPError
from apps.core.models import Datasource
from apps.pull.models import Connection, Endpoint

SYNC_TASK = "pull.connection_sync"
PREVIEW_ROWS = 10


@transaction.atomic
def connection_setup(*, connection: Connection) -> Connection:
    """Give the connection its 'pull' datasource and its schedule (idempotent)."""
    datasource = connection.datasource
    if datasource is None:
        datasource, _ = Datasource.objects.get_or_create(
            deployment=connection.deployment, key=connection.key,
            defaults={"name": connection.name, "kind": Datasource.Kind.PULL,
                      "timezone": connection.source_timezone},
        )
        connection.datasource = datasource
        Connection.objects.filter(pk=connection.pk).update(datasource=datasource)
    elif datasource.name != connection.name or datasource.timezone != connection.source_timezone:
        datasource.name, datasource.timezone = connection.name, connection.source_timezone
        datasource.save(update_fields=["name", "timezone"])
    connection_schedule_sync(connection=connection)
    return connection


def connection_schedule_sync(*, connection: Connection) -> None:
    """Keep the connection's django-celery-beat entry in line with its frequency."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    timing = {"minute": str(connection.pk % 60), "hour": str(connection.run_hour),
              "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"}
    if connection.frequency == Connection.Frequency.WEEKLY:
        timing["day_of_week"] = "1"
    elif connection.frequency == Connection.Frequency.MONTHLY:
        timing["day_of_month"] = "1"  # Scaler: monthly runs on the 1st, early morning UTC
    crontab, _ = CrontabSchedule.objects.get_or_create(timezone="UTC", **timing)
    name = f"pull: {connection.deployment.slug}/{connection.key}"
    values = {"name": name, "task": SYNC_TASK, "crontab": crontab, "interval": None,
              "kwargs": json.dumps({"connection_id": connection.pk}),
              "enabled": connection.is_enabled,
              "description": f"Pull sync of '{connection.name}' ({connection.frequency})."}
    task = connection.periodic_task
    if task is None:
        task = PeriodicTask.objects.filter(name=name).first() or PeriodicTask(**values)
    for key, value in values.items():
        setattr(task, key, value)
    task.save()
    if connection.periodic_task_id != task.pk:
        connection.periodic_task = task
        Connection.objects.filter(pk=connection.pk).update(periodic_task=task)


@dataclass(slots=True)
class EndpointPreview:
    role: str
    path: str
    error: str = ""
    fetched: int = 0
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def connection_preview(*, connection: Connection) -> list[EndpointPreview]:
    """One page of each endpoint, mapped, nothing stored: what a sync would see."""
    from apps.pull.client import UpstreamClient
    from apps.pull.schemas import MappingError, RecordMapper, parse_instant
    from apps.pull.services.usage import format_instant

    client = UpstreamClient(connection, sleep=lambda seconds: None)
    zone = zoneinfo.ZoneInfo(connection.source_timezone)
    now = dt.datetime.now(dt.UTC)
    previews = []
    try:
        order = list(Endpoint.Role.values)
        for endpoint in sorted(connection.endpoints.all(), key=lambda e: order.index(e.role)):
            preview = EndpointPreview(role=endpoint.role, path=endpoint.path,
                                      columns=[*endpoint.fields, "problem"])
            params = {}
            if endpoint.role in (Endpoint.Role.CONSUMPTION, Endpoint.Role.READINGS):
                fmt = connection.date_format
                params = {
                    connection.date_from_param: format_instant(now - dt.timedelta(days=1), fmt,
                                                               zone),
                    connection.date_to_param: format_instant(now + dt.timedelta(days=1), fmt,
                                                             zone),
                }
            mapper = RecordMapper(endpoint.fields)
            try:
                for page in client.pages(endpoint, params, max_pages=1):
                    preview.fetched = len(page.records)
                    for raw in page.records[:PREVIEW_ROWS]:
                        try:
                            row = {k: _shown(v) for k, v in mapper(raw).items()}
                            for name in ("start", "end", "timestamp"):
                                if name in row:
                                    row[name] = parse_instant(row[name], name, zone).isoformat()
                            row["problem"] = ""
                        except MappingError as exc:
                            row = {"problem": str(exc)}
                        preview.rows.append(row)
            except HubHTTPError as exc:
                preview.error = str(exc)
            previews.append(preview)
    finally:
        client.close()
    return previews


def _shown(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value)[:120]
    return value
