from celery import shared_task

from apps.partner_api import services


@shared_task(name="partner_api.record_change_marks")
def record_change_marks() -> int:
    return services.changemarks_record()


@shared_task(name="partner_api.purge_idempotency")
def purge_idempotency() -> int:
    return services.idempotency_purge()
