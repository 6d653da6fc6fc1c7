"""Beat's delivery fan-out: only links with work, in chunks of DELIVERY_CHUNK links per task.

A tick used to queue one task per link (10,000 tasks a minute at 10,000 links, each taking a
lock, writing a run row and planning, mostly to find nothing). Now a tick asks one query
which links have work:

- a reading commit of the link's deployment above what the link's planner last examined
  (`DeliveryLink.examined_commit_seq`, moved by the planner once it looked at everything up to
  that commit), or
- an open batch that is due (new, due for a retry, or claimed by a worker presumed dead),
  on an active link;

and queues them `DELIVERY_CHUNK` at a time. A chunk task delivers its links one after the
other, each under its own lock and in its own try/except (one failing link never stops the
others), and leaves one run row if anything happened. A chunk past its time budget queues
the rest of its links as a new chunk, so a link with work waits at most one tick.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from apps.core.models import DeliveryLink, Deployment, OutboundBatch, ReadingCommit, Run
from apps.core.services.runs import run_finish, run_start

logger = logging.getLogger("apps.core.fanout")


def commit_seq_top(*, deployment_id: int) -> int:
    """The seq of the deployment's newest reading commit (0 if none): every reading of the
    deployment up to it is committed and visible (see ReadingCommit)."""
    top = (ReadingCommit.objects.filter(deployment_id=deployment_id).order_by("-seq")
           .values_list("seq", flat=True).first())
    return top or 0


def link_examined(*, link_id: int, seq: int) -> None:
    """The link's planner looked at every reading up to commit `seq`: skip it until a newer one."""
    if seq:
        DeliveryLink.objects.filter(pk=link_id).update(
            examined_commit_seq=Greatest("examined_commit_seq", Value(seq)))


def work_q(*, now: dt.datetime | None = None) -> Q:
    """Rows (a DEXMA datasource, a Wattics stream: anything with a `link`) whose delivery
    link has work; see the module doc."""
    now = now or timezone.now()
    newer = ReadingCommit.objects.filter(deployment_id=OuterRef("link__deployment_id"),
                                         seq__gt=OuterRef("link__examined_commit_seq"))
    due = OutboundBatch.objects.filter(link=OuterRef("link"), next_attempt_at__lte=now,
                                       state__in=OutboundBatch.OPEN_STATES)
    return Exists(newer) | (Q(link__state=DeliveryLink.State.ACTIVE) & Exists(due))


def chunks(ids: Iterable[int], size: int | None = None) -> list[list[int]]:
    ids = list(ids)
    size = max(1, size or settings.DELIVERY_CHUNK)
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def fan_out(queryset: QuerySet, queue: Callable[[list[int]], object]) -> int:
    """Queue the queryset's primary keys, DELIVERY_CHUNK per task; returns how many links."""
    ids = list(queryset.order_by("pk").values_list("pk", flat=True))
    for chunk in chunks(ids):
        queue(chunk)
    return len(ids)


@dataclass(slots=True)
class ChunkReport:
    """What one chunk task did: summed counts, and the links that failed, with why."""

    links: int = 0
    active: int = 0  # links where something happened
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    deployments: set[int] = field(default_factory=set)
    rest: list[int] = field(default_factory=list)  # not reached: queued again

    def add(self, counts: dict) -> None:
        for key, value in counts.items():
            if isinstance(value, int) and not isinstance(value, bool):
                self.counts[key] = self.counts.get(key, 0) + value


def chunk_run(
    ids: list[int],
    *,
    one: Callable[[int, float], tuple[str, dict, str, int | None] | None],
    kind: str,
    what: str,
    requeue: Callable[[list[int]], object],
    budget: float | None = None,
) -> ChunkReport:
    """Deliver each link of the chunk with `one(pk, deadline)`; one run row if anything happened.

    `one` returns None (skipped: deleted, locked, nothing to do) or (target, counts, error,
    deployment id); an exception is that link's failure alone. Links not reached within
    `budget` seconds (`deadline`, on the monotonic clock, for a link that can stop between
    batches) are queued again as a new chunk.
    """
    report = ChunkReport()
    started = timezone.now()
    budget = settings.TASK_SLICE_SECONDS if budget is None else budget
    deadline = time.monotonic() + budget
    for index, pk in enumerate(ids):
        if index and time.monotonic() >= deadline:
            report.rest = ids[index:]
            requeue(report.rest)
            break
        report.links += 1
        try:
            done = one(pk, deadline)
        except Exception as exc:
            logger.exception("%s %s: delivery failed", what, pk)
            report.active += 1
            report.errors.append(f"{what} {pk}: {type(exc).__name__}: {exc}"[:500])
            continue
        if done is None:
            continue
        target, counts, error, deployment_id = done
        report.active += 1
        report.add(counts)
        if deployment_id is not None:
            report.deployments.add(deployment_id)
        if error:
            report.errors.append(f"{target}: {error}"[:500])
    if report.active:
        _log(report, kind=kind, what=what, started=started)
    return report


def _log(report: ChunkReport, *, kind: str, what: str, started: dt.datetime) -> None:
    """The chunk's one run row, written once it is done (a row per link per tick is what
    10,000 links cannot afford); its start is the chunk's."""
    deployment = None
    if len(report.deployments) == 1:
        deployment = Deployment.objects.filter(pk=next(iter(report.deployments))).first()
    run = run_start(kind=kind, target=f"{report.active} of {report.links} {what}s",
                    deployment=deployment)
    Run.objects.filter(pk=run.pk).update(started_at=started)
    run.started_at = started
    status = Run.Status.SUCCEEDED
    if report.errors:
        status = Run.Status.FAILED if len(report.errors) == report.active else Run.Status.PARTIAL
    run_finish(run=run, status=status, error="; ".join(report.errors)[:2000],
               counts={**report.counts, "links": report.links, "active": report.active,
                       "failed_links": len(report.errors), "requeued": len(report.rest)})
