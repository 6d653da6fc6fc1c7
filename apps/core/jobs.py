"""The one shape of a background job: load by id, lock, log the run, call one service.

Every app's Celery task reads the same way:

    datasource = jobs.load(DexmaDatasource.objects.select_related(...), pk, what="datasource")
    if datasource is None:
        return jobs.skipped("datasource deleted")
    job = jobs.job_run(app="dexma", job="deliver", key=pk, kind="dexma.deliver",
                       target=datasource.name, deployment=datasource.deployment,
                       body=lambda run: ...)
    return job.counts

- the lock is named `<app>:<job>:<id>` (or `<app>:<job>` for a job that runs once at a time)
  and lives `lock_ttl()` seconds: above the task's hard time limit, so a crashed holder
  blocks others no longer than one task could have run;
- a second run while one holds the lock is skipped and logged, never an error;
- a row missing by the time its task runs (deleted meanwhile) is skipped and logged;
- the run log's status is `Run.Status.*`: the body sets `run.counts` and calls
  `run_partial` with what went wrong, or raises (the run is failed, the error propagates).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import Model, QuerySet

from apps.core.locks import AlreadyRunning, single_flight
from apps.core.models import Deployment, Run
from apps.core.services.runs import run_logged

logger = logging.getLogger("apps.core.jobs")
M = TypeVar("M", bound=Model)


def lock_name(app: str, job: str, key: object = None) -> str:
    return f"{app}:{job}" if key is None else f"{app}:{job}:{key}"


def lock_ttl() -> int:
    """How long a lock outlives a holder that died without releasing it."""
    return int(settings.CELERY_TASK_TIME_LIMIT) + 60


@contextmanager
def job_lock(app: str, job: str, key: object = None, *, ttl: int | None = None):
    """Hold `<app>:<job>:<key>` while the block runs; AlreadyRunning if another holds it."""
    with single_flight(lock_name(app, job, key), ttl=ttl or lock_ttl()):
        yield


def skipped(reason: str, *, what: str = "") -> dict:
    """The answer of a task that had nothing to do; logged, so a skip is never silent."""
    logger.info("job skipped%s: %s", f" ({what})" if what else "", reason)
    return {"skipped": reason}


def load(queryset: QuerySet[M], pk: object, *, what: str) -> M | None:
    """The row a task was queued for, or None (logged) if it was deleted meanwhile."""
    row = queryset.filter(pk=pk).first()
    if row is None:
        logger.info("job skipped: %s %s no longer exists", what, pk)
    return row


def run_partial(run: Run, errors: Iterable[str], *, sep: str = "; ") -> None:
    """Mark the run partial with what went wrong, if anything did."""
    errors = [e for e in errors if e]
    if errors:
        run.status, run.error = Run.Status.PARTIAL, sep.join(errors)[:2000]


@dataclass(slots=True)
class Job:
    run: Run | None = None
    value: Any = None
    skipped: str = ""

    @property
    def counts(self) -> dict:
        if self.skipped:
            return {"skipped": self.skipped}
        return dict(self.run.counts) if self.run is not None else {}


def job_run(
    *,
    app: str,
    job: str,
    body: Callable[[Run | None], Any],
    key: object = None,
    kind: str = "",
    target: str = "",
    deployment: Deployment | None = None,
    task_id: str = "",
    lock: bool = True,
    log: bool = True,
    ttl: int | None = None,
) -> Job:
    """Run `body(run)` under the job's lock and in its run-log row.

    Skipped (not raised) if the job is already running. `lock=False` for work that is safe
    to run twice at once (claims of its own); `log=False` for a job too frequent to log
    (`body` then gets None).
    """
    name = lock_name(app, job, key)
    try:
        with ExitStack() as stack:
            if lock:
                stack.enter_context(single_flight(name, ttl=ttl or lock_ttl()))
            run = None
            if log:
                run = stack.enter_context(run_logged(
                    kind=kind or f"{app}.{job}", target=target, deployment=deployment,
                    task_id=task_id))
            value = body(run)
    except AlreadyRunning:
        logger.info("job %s is already running; this one is skipped", name)
        return Job(skipped="already running")
    return Job(run=run, value=value)
