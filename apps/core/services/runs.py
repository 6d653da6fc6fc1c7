"""The run log: open a row when work starts, close it with counts or the error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.utils import timezone

from apps.core import metrics
from apps.core.logs import log_context
from apps.core.models import Deployment, Run
from apps.core.redact import redact


def run_start(
    *, kind: str, target: str = "", deployment: Deployment | None = None, task_id: str = ""
) -> Run:
    return Run.objects.create(kind=kind, target=target[:255], deployment=deployment,
                              task_id=task_id or "")


def run_finish(
    *, run: Run, status: str, counts: dict | None = None, error: str = ""
) -> Run:
    run.status = status
    run.finished_at = timezone.now()
    if counts is not None:
        run.counts = counts
    # Errors quote URLs and answers, which may carry a platform's token.
    run.error = redact(error)
    run.save(update_fields=["status", "finished_at", "counts", "error"])
    duration = run.duration
    metrics.run_observe(kind=run.kind, status=run.status,
                        seconds=duration.total_seconds() if duration is not None else None)
    return run


@contextmanager
def run_logged(
    *, kind: str, target: str = "", deployment: Deployment | None = None, task_id: str = ""
) -> Iterator[Run]:
    """Log a run; an exception marks it failed with the error, and propagates.

    The body sets `run.counts` (and may set `run.status`, e.g. PARTIAL) as it goes.
    """
    run = run_start(kind=kind, target=target, deployment=deployment, task_id=task_id)
    with log_context(run=run.pk, deployment=deployment.slug if deployment else None):
        try:
            yield run
        except BaseException as exc:
            run_finish(run=run, status=Run.Status.FAILED, counts=run.counts,
                       error=f"{type(exc).__name__}: {exc}")
            raise
        status = run.status if run.status != Run.Status.RUNNING else Run.Status.SUCCEEDED
        run_finish(run=run, status=status, counts=run.counts, error=run.error)
