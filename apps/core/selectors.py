"""Reads: health probes, overview figures."""

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dataclass_field

from celery import current_app
from django.db import connection, models
from django.db.models import Count, Max, Min, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.core.models import (
    DailyIngestStat,
    DeliveryLink,
    Deployment,
    Device,
    OutboundBatch,
    Quarantine,
    Reading,
    Run,
    Site,
)


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    detail: str


def database_check() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not ready"
        return Check(False, f"{type(exc).__name__}: {exc}".strip()[:300])
    return Check(True, connection.vendor)


def broker_check(timeout: float = 2.0) -> Check:
    try:
        # The project's Celery app (config/celery.py), current once Django is set up: core
        # reads it without importing the configuration package above it.
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            transport = conn.transport_cls
    except Exception as exc:  # kombu raises many kinds; all mean "not ready"
        return Check(False, f"{type(exc).__name__}: {exc}".strip()[:300])
    return Check(True, str(transport))


# --- Overview figures (the admin index) ----------------------------------------------------
# None of these reads the readings table: its size comes from PostgreSQL's statistics and
# its daily flow from DailyIngestStat, so the overview costs the same at a hundred million
# rows as at a hundred.


@dataclass(frozen=True, slots=True)
class OverviewCounts:
    deployments: int
    sites: int
    devices: int
    readings: int
    readings_estimated: bool
    open_quarantine: int
    failed_runs_24h: int


@dataclass(frozen=True, slots=True)
class LinkBacklog:
    link_id: int
    platform: str
    name: str
    deployment: str
    state: str
    state_label: str
    broken_reason: str
    cursor: int
    pending: int
    retry: int
    dead: int
    # How long the longest-waiting due batch has been due; None when nothing is due.
    oldest_due_age: dt.timedelta | None
    last_success_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class DayCount:
    day: dt.date
    accepted: int
    quarantined: int


def table_rows_estimate(*, model: type[models.Model]) -> int | None:
    """PostgreSQL's own idea of a table's row count, read from its statistics in O(1).

    None on other databases. `reltuples` is -1 until the first VACUUM/ANALYZE
    (PostgreSQL 14+) and lags between them; `n_live_tup` follows every commit but is empty
    on a replica, so the larger of the two is the better guess. A partitioned table holds
    no rows itself: its figure is the sum over its partitions (`pg_partition_tree` lists a
    plain table as its own single leaf).
    """
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH root AS (SELECT to_regclass(%s) AS relid), "
            "leaves AS (SELECT t.relid FROM root, pg_partition_tree(root.relid) t "
            "WHERE t.isleaf UNION SELECT root.relid FROM root "
            "JOIN pg_class c ON c.oid = root.relid WHERE c.relkind = 'r') "
            "SELECT bool_or(true), "
            "sum(greatest(c.reltuples::bigint, coalesce(s.n_live_tup, 0), 0)) "
            "FROM leaves JOIN pg_class c ON c.oid = leaves.relid "
            "LEFT JOIN pg_stat_user_tables s ON s.relid = leaves.relid",
            [model._meta.db_table],
        )
        leaves, rows = cursor.fetchone()
    return int(rows or 0) if leaves else None


# Below this many rows the overview counts exactly: a young table's statistics say 0 or lag
# far behind (no ANALYZE yet), and counting that few rows is cheap.
EXACT_COUNT_UP_TO = 200_000


def readings_count() -> tuple[int, bool]:
    """(readings, estimated): exact up to EXACT_COUNT_UP_TO, from statistics beyond."""
    # A sliced queryset counts as SELECT count(*) FROM (... LIMIT n): bounded work.
    found = Reading.objects.order_by().values("pk")[: EXACT_COUNT_UP_TO + 1].count()
    if found <= EXACT_COUNT_UP_TO:
        return found, False
    estimate = table_rows_estimate(model=Reading)
    return max(estimate or 0, found), True


def overview_counts(*, now: dt.datetime | None = None) -> OverviewCounts:
    now = now or timezone.now()
    readings, estimated = readings_count()
    return OverviewCounts(
        deployments=Deployment.objects.count(),
        sites=Site.objects.count(),
        devices=Device.objects.count(),
        readings=readings,
        readings_estimated=estimated,
        open_quarantine=Quarantine.objects.filter(status=Quarantine.Status.OPEN).count(),
        failed_runs_24h=Run.objects.filter(
            status=Run.Status.FAILED, started_at__gte=now - dt.timedelta(hours=24)
        ).count(),
    )


def _batches_of_link(*states: str) -> QuerySet[OutboundBatch]:
    return OutboundBatch.objects.filter(link=OuterRef("pk"), state__in=states).order_by()


def _batch_count(state: str) -> Coalesce:
    # One index-only count per state on batch_link_state_idx: sent batches pile up for
    # ever, so joining every batch of every link and grouping would grow with history.
    counted = _batches_of_link(state).values("link").annotate(n=Count("*")).values("n")
    return Coalesce(Subquery(counted, output_field=models.BigIntegerField()), 0)


def links_with_backlog(
    queryset: QuerySet[DeliveryLink] | None = None, *, now: dt.datetime | None = None
) -> QuerySet[DeliveryLink]:
    """Links annotated with `pending`, `retry`, `dead` batch counts and `oldest_due_at`."""
    now = now or timezone.now()
    queryset = DeliveryLink.objects.all() if queryset is None else queryset
    oldest_due = (
        _batches_of_link(*OutboundBatch.OPEN_STATES)
        .filter(next_attempt_at__lte=now)
        .values("link")
        .annotate(first=Min("next_attempt_at"))
        .values("first")
    )
    return queryset.annotate(
        pending=_batch_count(OutboundBatch.State.PENDING),
        retry=_batch_count(OutboundBatch.State.RETRY),
        dead=_batch_count(OutboundBatch.State.DEAD),
        oldest_due_at=Subquery(oldest_due, output_field=models.DateTimeField()),
    )


def link_backlog(*, now: dt.datetime | None = None) -> list[LinkBacklog]:
    """Every delivery link with what it still has to send, worst first."""
    now = now or timezone.now()
    links = links_with_backlog(now=now).select_related("deployment")
    rows = [
        LinkBacklog(
            link_id=link.pk,
            platform=link.platform,
            name=link.name,
            deployment=link.deployment.name,
            state=link.state,
            state_label=link.get_state_display(),
            broken_reason=link.broken_reason,
            cursor=link.cursor,
            pending=link.pending,
            retry=link.retry,
            dead=link.dead,
            oldest_due_age=now - link.oldest_due_at if link.oldest_due_at else None,
            last_success_at=link.last_success_at,
        )
        for link in links
    ]
    severity = {DeliveryLink.State.BROKEN: 0, DeliveryLink.State.PAUSED: 1}
    rows.sort(key=lambda r: (severity.get(r.state, 2), -r.dead, -(r.pending + r.retry)))
    return rows


def readings_per_day(*, days: int = 30, today: dt.date | None = None) -> list[DayCount]:
    """Readings accepted and quarantined per UTC day, oldest first, days without any kept."""
    today = today or timezone.now().date()
    first = today - dt.timedelta(days=days - 1)
    totals = {
        row["day"]: row
        for row in DailyIngestStat.objects.filter(day__gte=first, day__lte=today)
        .values("day")
        .annotate(accepted=Sum("accepted"), quarantined=Sum("quarantined"))
        .order_by()
    }
    result = []
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        row = totals.get(day, {})
        result.append(
            DayCount(day=day, accepted=row.get("accepted") or 0,
                     quarantined=row.get("quarantined") or 0)
        )
    return result


def runs_latest(*, limit: int = 10) -> list[Run]:
    return list(Run.objects.select_related("deployment").order_by("-started_at")[:limit])


@dataclass(slots=True)
class LinkAccounts:
    """Where every reading a link is responsible for stands, in its current version.

    The states partition the readings in scope, so they add up to `accepted`; `unaccounted`
    is what does not (a bug to report, never expected).
    """

    accepted: int = 0
    delivered: int = 0
    pending: int = 0
    undeliverable: dict[str, int] = dataclass_field(default_factory=dict)
    unaccounted: int = 0
    scope: str = ""

    @property
    def undeliverable_total(self) -> int:
        return sum(self.undeliverable.values())

    def close(self) -> "LinkAccounts":
        self.unaccounted = (self.accepted - self.delivered - self.pending
                            - self.undeliverable_total)
        return self


# --- readings for delivery ---------------------------------------------------------------


def pairs_q(pairs: Iterable[tuple[int, int]]) -> Q:
    """Readings of these (device id, parameter id) pairs; no pair matches no reading."""
    by_device: dict[int, list[int]] = defaultdict(list)
    for device_id, parameter_id in pairs:
        by_device[device_id].append(parameter_id)
    cond = Q(pk__in=[])
    for device_id, parameter_ids in by_device.items():
        cond |= Q(device_id=device_id, parameter_id__in=parameter_ids)
    return cond


def readings_of_pairs(
    pairs: Iterable[tuple[int, int]], *, after_seq: int | None = None,
    through_seq: int | None = None,
) -> QuerySet[Reading]:
    """The readings of these (device, parameter) pairs, with seq in (after_seq, through_seq].

    Delivery cursors are on `seq`: it grows with every commit (`lock_deployment_readings`),
    so "after the cursor" is every reading stored or changed since.
    """
    readings = Reading.objects.filter(pairs_q(pairs))
    if after_seq is not None:
        readings = readings.filter(seq__gt=after_seq)
    if through_seq is not None:
        readings = readings.filter(seq__lte=through_seq)
    return readings


@dataclass(frozen=True, slots=True)
class Span:
    """The next readings of a queryset in seq order: through which seq, how many, and
    whether more may follow (the limit was reached)."""

    upto: int
    count: int
    more: bool


def readings_next_span(readings: QuerySet[Reading], *, limit: int) -> Span | None:
    """Through which seq `readings` hold their next ≤ `limit` readings in seq order, and how
    many, in at most two statements: the limit-th seq (then exactly `limit` readings, seqs
    being unique), else the highest seq and the count of what is left (all of it). None if
    there are none."""
    at_limit = list(readings.order_by("seq").values_list("seq", flat=True)[limit - 1:limit])
    if at_limit:
        return Span(at_limit[0], limit, more=True)
    rest = readings.aggregate(top=Max("seq"), n=Count("pk"))
    return None if rest["top"] is None else Span(rest["top"], rest["n"], more=False)


def readings_seq_upto(readings: QuerySet[Reading]) -> int | None:
    """The highest seq of `readings`; None if there are none."""
    return readings.aggregate(top=Max("seq"))["top"]
