"""Thin Celery tasks: a periodic fan-out, one push per stream (streams never block each other)."""

import time

from celery import shared_task
from django.conf import settings

from apps.core.locks import AlreadyRunning, single_flight
from apps.core.models import DeliveryLink
from apps.wattics.models import WatticsStream
from apps.wattics.services.push import stream_push_logged


@shared_task(name="wattics.push_due")
def push_due() -> int:
    ids = list(WatticsStream.objects.filter(link__state=DeliveryLink.State.ACTIVE)
               .values_list("pk", flat=True))
    for stream_id in ids:
        stream_push.delay(stream_id)
    return len(ids)


@shared_task(name="wattics.stream_push")
def stream_push(stream_id: int) -> dict:
    stream = WatticsStream.objects.filter(pk=stream_id).first()
    if stream is None:
        return {"skipped": "stream deleted"}
    # One slice, well inside the soft time limit; a stream with more to send (its history)
    # goes on in a new task behind those waiting, so other streams and platforms get a turn.
    budget = max(1, min(settings.TASK_SLICE_SECONDS, settings.CELERY_TASK_SOFT_TIME_LIMIT - 60))
    try:
        with single_flight(f"wattics-stream:{stream_id}",
                           ttl=settings.CELERY_TASK_TIME_LIMIT + 60):
            result = stream_push_logged(stream=stream, deadline=time.monotonic() + budget)
    except AlreadyRunning:
        return {"skipped": "already running"}
    if result.more:
        stream_push.delay(stream_id)
    return {**result.as_counts(), "error": result.error, "more": result.more}
