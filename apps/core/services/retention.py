"""Retention: readings past their deployment's window leave, once every link delivered them.

`Deployment.retention_days` (None: keep everything) sets the window. A reading past it stays
while anything bound to its deployment may still read it:

- every delivery link of the deployment reads readings by seq range: readings above what it
  has planned, or above the start of a batch not yet acknowledged (pending, retrying, or dead
  and waiting for ops to requeue it), stay;
- an integration adds holds of its own through its AppConfig's `retention_holds` (a dotted
  path to `holds(deployment) -> list[RetentionHold]`, e.g. a DEXMA backfill still sending
  history), and names the platforms whose batches carry their whole payload
  (`retention_payload_platforms`): those links do not hold by seq.

A month partition goes whole (DROP) when every deployment with readings in it lets go of
all of them; otherwise readings leave by chunked DELETEs, at most `max_rows` per run.
PostgreSQL only: on SQLite (the demo) nothing is removed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.apps import apps
from django.db import DatabaseError, connection, transaction
from django.db.models import Min
from django.utils import timezone
from django.utils.module_loading import import_string

from apps.core.models import DeliveryLink, Deployment, Device, OutboundBatch
from apps.core.services.outbox import link_planned_seq
from apps.core.services.partitions import TABLE, partitions_list, readings_partitioned

DELETE_CHUNK = 10_000
# Outstanding work a link may still rebuild from the readings (DEAD: ops may requeue it).
HOLDING_STATES = (*OutboundBatch.OPEN_STATES, OutboundBatch.State.DEAD)


@dataclass(frozen=True, slots=True)
class RetentionHold:
    """Something that still needs readings of a deployment: seq above, or instants from."""

    what: str
    through_seq: int | None = None  # readings with a higher seq stay
    from_ts: dt.datetime | None = None  # readings at or after this instant stay


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    deployment_id: int
    window_end: dt.datetime  # readings before this instant are past the window
    holds: tuple[RetentionHold, ...]

    @property
    def cutoff(self) -> dt.datetime:
        """Readings before this instant may leave (as far as time goes)."""
        return min([self.window_end, *(h.from_ts for h in self.holds if h.from_ts)])

    @property
    def through_seq(self) -> int | None:
        """Readings with seq at or below this may leave; None: no link reads by seq."""
        seqs = [h.through_seq for h in self.holds if h.through_seq is not None]
        return min(seqs) if seqs else None


def link_delivered_seq(*, link: DeliveryLink) -> int:
    """The seq up to which the link needs no reading any more: planned, and not in a batch
    still to be (re)sent."""
    planned = link_planned_seq(link=link)
    waiting = (link.batches.filter(state__in=HOLDING_STATES, seq_from__isnull=False)
               .aggregate(low=Min("seq_from"))["low"])
    return planned if waiting is None else min(planned, waiting)


def _payload_platforms() -> set[str]:
    return {p for config in apps.get_app_configs()
            for p in getattr(config, "retention_payload_platforms", ())}


def retention_holds(*, deployment: Deployment) -> list[RetentionHold]:
    holds = []
    payload_only = _payload_platforms()
    for link in DeliveryLink.objects.filter(deployment=deployment).exclude(
            platform__in=payload_only).order_by("platform", "name"):
        holds.append(RetentionHold(what=f"delivery link {link} ({link.get_state_display()})",
                                   through_seq=link_delivered_seq(link=link)))
    for config in apps.get_app_configs():
        path = getattr(config, "retention_holds", None)
        if path:
            holds.extend(import_string(path)(deployment))
    return holds


def retention_policy(*, deployment: Deployment,
                     now: dt.datetime | None = None) -> RetentionPolicy | None:
    if deployment.retention_days is None:
        return None
    now = now or timezone.now()
    return RetentionPolicy(
        deployment_id=deployment.pk,
        window_end=now - dt.timedelta(days=deployment.retention_days),
        holds=tuple(retention_holds(deployment=deployment)),
    )


@dataclass(slots=True)
class RetentionReport:
    applied: bool = False  # False on a database without partitions (nothing is removed)
    dropped: list[str] = field(default_factory=list)
    deleted: dict[int, int] = field(default_factory=dict)  # deployment id -> readings
    limited: bool = False  # stopped at max_rows; the next run continues

    @property
    def deleted_total(self) -> int:
        return sum(self.deleted.values())


def _device_ids(deployment_ids: Iterable[int]) -> list[int]:
    return list(Device.objects.filter(deployment_id__in=list(deployment_ids))
                .values_list("pk", flat=True))


def _partition_top_seq(cursor, name: str) -> int | None:
    cursor.execute(f"SELECT max(seq) FROM {name}")  # noqa: S608
    return cursor.fetchone()[0]


def _partition_droppable(cursor, name: str, upper: dt.datetime,
                         policies: dict[int, RetentionPolicy]) -> bool:
    """Whether no deployment that keeps any reading of the partition has one in it."""
    top = _partition_top_seq(cursor, name)
    if top is None:
        return False  # empty: a month ahead or an emptied one; nothing to gain
    keepers = [pk for pk in Deployment.objects.values_list("pk", flat=True)
               if (policy := policies.get(pk)) is None or upper > policy.cutoff
               or (policy.through_seq is not None and top > policy.through_seq)]
    devices = _device_ids(keepers)
    if not devices:
        return True
    cursor.execute(f"SELECT 1 FROM {name} WHERE device_id = ANY(%s) LIMIT 1", [devices])  # noqa: S608
    return cursor.fetchone() is None


def _drop_partitions(policies: dict[int, RetentionPolicy], report: RetentionReport) -> None:
    latest = max(p.cutoff for p in policies.values())
    for part in partitions_list():
        if part.is_default or part.upper > latest:
            continue
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                # Readers and writers wait at most this long behind the drop; a busy table
                # is left for the next run.
                cursor.execute("SET LOCAL lock_timeout = '5s'")
                # No writer adds readings to it between the check and the drop.
                cursor.execute(f"LOCK TABLE {part.name} IN SHARE MODE")
                if not _partition_droppable(cursor, part.name, part.upper, policies):
                    continue
                cursor.execute(f"DROP TABLE {part.name}")
        except DatabaseError:
            continue
        report.dropped.append(part.name)


_DELETE_SQL = f"""
DELETE FROM {TABLE} WHERE (id, ts) IN (
    SELECT id, ts FROM {TABLE}
    WHERE device_id = ANY(%s) AND ts < %s {{seq}}
    LIMIT %s
)
"""  # noqa: S608


def _delete_chunks(policy: RetentionPolicy, budget: int) -> int:
    devices = _device_ids([policy.deployment_id])
    if not devices or budget <= 0:
        return 0
    through = policy.through_seq
    sql = _DELETE_SQL.format(seq="" if through is None else "AND seq <= %s")
    deleted = 0
    while deleted < budget:
        size = min(DELETE_CHUNK, budget - deleted)
        params = [devices, policy.cutoff, *([] if through is None else [through]), size]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
            count = cursor.rowcount
        deleted += count
        if count < size:
            break
    return deleted


def readings_retention_apply(*, max_rows: int,
                             now: dt.datetime | None = None) -> RetentionReport:
    """Remove what every deployment's retention lets go: whole months first, then chunks."""
    report = RetentionReport()
    if not readings_partitioned():
        return report
    report.applied = True
    policies = {}
    for deployment in Deployment.objects.filter(retention_days__isnull=False):
        policies[deployment.pk] = retention_policy(deployment=deployment, now=now)
    if not policies:
        return report
    _drop_partitions(policies, report)
    budget = max_rows
    for pk, policy in policies.items():
        deleted = _delete_chunks(policy, budget)
        budget -= deleted
        if deleted:
            report.deleted[pk] = deleted
        if budget <= 0:
            report.limited = True
            break
    return report


# The admin counts at most this many readings past the window: bounded work on a page view.
PREVIEW_COUNT_UP_TO = 1_000_000
MAINTAIN_TASK = "core.readings_maintain"


@dataclass(frozen=True, slots=True)
class RetentionPreview:
    """What retention removes from a deployment, for the admin."""

    window_days: int | None
    window_end: dt.datetime | None = None
    past_window: int = 0  # readings before window_end (at most PREVIEW_COUNT_UP_TO)
    past_window_capped: bool = False
    oldest: dt.datetime | None = None
    removable: int = 0  # of those, what the next run may remove
    holding: tuple[str, ...] = ()  # what keeps the rest, and why
    next_run: str = ""
    applies: bool = True  # False where retention never runs (SQLite)


def _next_run(now: dt.datetime) -> str:
    from django_celery_beat.models import PeriodicTask

    task = (PeriodicTask.objects.filter(task=MAINTAIN_TASK)
            .select_related("interval", "crontab").first())
    if task is None:
        return "not scheduled: run manage.py setup_schedules"
    if not task.enabled:
        return "its periodic task is disabled"
    if task.interval is None or task.last_run_at is None:
        return "at the next beat run"
    due = task.last_run_at + task.interval.schedule.run_every
    return timezone.localtime(max(due, now)).strftime("%Y-%m-%d %H:%M %Z")


def retention_preview(*, deployment: Deployment,
                      now: dt.datetime | None = None) -> RetentionPreview:
    from apps.core.models import Reading

    now = now or timezone.now()
    policy = retention_policy(deployment=deployment, now=now)
    if policy is None:
        return RetentionPreview(window_days=None)
    past = Reading.objects.filter(device__deployment=deployment, ts__lt=policy.window_end)
    head = past.order_by().values("pk")[:PREVIEW_COUNT_UP_TO + 1]
    count = head.count()
    oldest = past.aggregate(m=Min("ts"))["m"] if count else None
    removable = 0
    holding = []
    if count:
        through = policy.through_seq
        may_go = past.filter(ts__lt=policy.cutoff)
        if through is not None:
            may_go = may_go.filter(seq__lte=through)
        removable = may_go.order_by().values("pk")[:PREVIEW_COUNT_UP_TO].count()
        for hold in policy.holds:
            if hold.through_seq is not None and past.filter(seq__gt=hold.through_seq).exists():
                holding.append(f"{hold.what}: has not delivered past seq {hold.through_seq}")
            if hold.from_ts is not None and hold.from_ts < policy.window_end and past.filter(
                    ts__gte=hold.from_ts).exists():
                holding.append(f"{hold.what}: needs readings from "
                               f"{timezone.localtime(hold.from_ts):%Y-%m-%d %H:%M}")
    return RetentionPreview(
        window_days=deployment.retention_days, window_end=policy.window_end,
        past_window=min(count, PREVIEW_COUNT_UP_TO), past_window_capped=count > PREVIEW_COUNT_UP_TO,
        oldest=oldest, removable=removable, holding=tuple(holding), next_run=_next_run(now),
        applies=readings_partitioned(),
    )
