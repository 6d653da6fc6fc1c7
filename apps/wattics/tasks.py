"""Thin Celery tasks: a periodic fan-out, one push per stream (streams never block each other)."""

import time

from celery import shared_task
from django.conf import settings

from apps.core import jobs
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
    stream = jobs.load(WatticsStream.objects.all(), stream_id, what="Wattics stream")
    if stream is None:
        return jobs.skipped("stream deleted")
    # One slice, well inside the soft time limit; a stream with more to send (its history)
    # goes on in a new task behind those waiting, so other streams and platforms get a turn.
    budget = max(1, min(settings.TASK_SLICE_SECONDS, settings.CELERY_TASK_SOFT_TIME_LIMIT - 60))
    # The run log is written by `stream_push_logged`, only when something happened.
    job = jobs.job_run(app="wattics", job="push", key=stream_id, log=False,
                       body=lambda run: stream_push_logged(
                           stream=stream, deadline=time.monotonic() + budget))
    if job.skipped:
        return job.counts
    result = job.value
    if result.more:
        stream_push.delay(stream_id)
    return {**result.as_counts(), "error": result.error, "more": result.more}
