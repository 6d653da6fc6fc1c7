"""Core Celery tasks: thin, idempotent, load by id and call a service."""

from celery import shared_task

from apps.core.services.datasources import datasources_expire_consents


@shared_task(name="core.ping", ignore_result=False)
def ping() -> str:
    """A round trip through the broker and a worker (used by the smoke test and /readyz)."""
    return "pong"


@shared_task(name="core.consents_expire")
def consents_expire() -> int:
    return datasources_expire_consents()
