"""Thin Celery tasks: a periodic fan-out of the streams with work, in chunks (streams never
block each other), and one push of one stream."""

import time

from celery import shared_task
from django.conf import settings
from django.db.models import Q

from apps.core import fanout, jobs
from apps.core.models import DeliveryLink
from apps.wattics.models import WatticsStream
from apps.wattics.selectors import PUSH_RUN_KIND
from apps.wattics.services.push import stream_push as stream_push_service
from apps.wattics.services.push import stream_push_logged


@shared_task(name="wattics.push_due")
def push_due() -> int:
    """Fan out the active streams with work (new readings of their deployment, a due batch,
    a first start still to sync), DELIVERY_CHUNK per task (apps/core/fanout.py). Returns
    how many streams were queued."""
    with_work = WatticsStream.objects.filter(link__state=DeliveryLink.State.ACTIVE).filter(
        fanout.work_q() | Q(synced_at=None))
    return fanout.fan_out(with_work, push_chunk.delay)


@shared_task(name="wattics.push_chunk")
def push_chunk(stream_ids: list[int]) -> dict:
    """Push these streams one after the other within one slice; one failing never stops the
    others. One run row for the chunk when anything happened."""
    report = fanout.chunk_run(stream_ids, one=_push_one, kind=PUSH_RUN_KIND,
                              what="Wattics stream", requeue=push_chunk.delay,
                              budget=_budget())
    return {**report.counts, "links": report.links, "active": report.active,
            "failed_links": len(report.errors), "requeued": len(report.rest)}


def _budget() -> int:
    return max(1, min(settings.TASK_SLICE_SECONDS, settings.CELERY_TASK_SOFT_TIME_LIMIT - 60))


def _push_one(stream_id: int, deadline: float) -> tuple | None:
    stream = jobs.load(WatticsStream.objects.all(), stream_id, what="Wattics stream")
    if stream is None:
        return None
    # The stream sends until the chunk's slice is up (at least one batch); history left
    # goes on in a task of its own, as `stream_push` does.
    job = jobs.job_run(app="wattics", job="push", key=stream_id, log=False,
                       body=lambda run: stream_push_service(
                           stream=stream, deadline=max(deadline, time.monotonic() + 1)))
    if job.skipped:
        return None
    result = job.value
    if result.more:
        stream_push.delay(stream_id)
    if not (result.sent or result.refused or result.error or result.planned.readings):
        return None
    return f"wattics {stream.meter_id}", result.as_counts(), result.error, stream.deployment_id


@shared_task(name="wattics.stream_push")
def stream_push(stream_id: int) -> dict:
    stream = jobs.load(WatticsStream.objects.all(), stream_id, what="Wattics stream")
    if stream is None:
        return jobs.skipped("stream deleted")
    # One slice, well inside the soft time limit; a stream with more to send (its history)
    # goes on in a new task behind those waiting, so other streams and platforms get a turn.
    budget = _budget()
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
