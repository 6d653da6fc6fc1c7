"""Core Celery tasks: thin, idempotent, load by id and call a service."""

from celery import shared_task
from django.conf import settings

from apps.core.services.datasources import datasources_expire_consents
from apps.core.services.partitions import partitions_maintain
from apps.core.services.retention import readings_retention_apply


@shared_task(name="core.ping", ignore_result=False)
def ping() -> str:
    """A round trip through the broker and a worker (used by the smoke test and /readyz)."""
    return "pong"


@shared_task(name="core.consents_expire")
def consents_expire() -> int:
    return datasources_expire_consents()


@shared_task(name="core.readings_maintain")
def readings_maintain() -> dict:
    """Readings partitions ahead, then retention (PostgreSQL; a no-op on SQLite)."""

    made = partitions_maintain(ahead=settings.READINGS_PARTITIONS_AHEAD)
    kept = readings_retention_apply(max_rows=settings.READINGS_RETENTION_MAX_ROWS)
    return {"created": made.created, "moved": made.moved, "dropped": kept.dropped,
            "deleted": kept.deleted_total, "limited": kept.limited}
