from celery import shared_task

from apps.partner_api import services


@shared_task(name="partner_api.purge_tombstones")
def purge_tombstones() -> int:
    return services.tombstones_purge()


@shared_task(name="partner_api.purge_idempotency")
def purge_idempotency() -> int:
    return services.idempotency_purge()
