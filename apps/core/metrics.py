"""Prometheus metrics: event counters from every process, state read from the database.

Two kinds of numbers, two sources:

- **Events** (HTTP retries and 429s, token refreshes, run outcomes and durations, batches
  delivered) happen in whichever process does the work: a gunicorn worker, a Celery pool
  process, beat, a management command. They use prometheus_client's multiprocess mode:
  each process writes its counters to its own memory-mapped file in ``METRICS_DIR`` and
  ``/metrics`` sums the files of every process on the host. Files are named after the
  process role (``web``, ``worker``, ``beat``, ``cmd``) and pid; each role wipes the
  files of its exited processes when it starts (see ``metrics_dir_prepare``), which
  Prometheus sees as a counter reset, as it would for a restarted single process.
- **State** (readings accepted and quarantined, delivery backlog and lag per link) is read
  from the database at scrape time by :class:`DatabaseCollector`: the database is the truth
  and every process sees the same. It reads only small aggregate tables and the indexed
  open batches, never the readings table.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

P = ParamSpec("P")
ROLE_ENV = "HUB_PROCESS_ROLE"
ROLES = ("web", "worker", "beat", "cmd")


def _process_identifier() -> str:
    # prometheus_client splits file names on "_": the role must not contain one.
    role = os.environ.get(ROLE_ENV, "cmd").replace("_", "-") or "cmd"
    return f"{role}-{os.getpid()}"


# Multiprocess mode is chosen here rather than by having PROMETHEUS_MULTIPROC_DIR set before
# the first import of prometheus_client anywhere: every metric below is created after this.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", settings.METRICS_DIR)
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
values.ValueClass = values.MultiProcessValue(process_identifier=_process_identifier)

# Every metric has labels, so no value (and no file) exists before a process first records
# one: a process that sets its role at start-up never writes under the default one.
HTTP_RETRIES = Counter(
    "hub_http_retries_total",
    "Requests to a platform sent again after a 429, a 5xx or a network error.",
    ["platform", "reason"],
)
HTTP_RATE_LIMITED = Counter(
    "hub_http_429_total", "Answers 429 Too Many Requests received from a platform.", ["platform"]
)
HTTP_BUDGET_WAITS = Counter(
    "hub_http_budget_waits_total",
    "Requests held back because the platform's announced rate-limit budget was used up.",
    ["platform"],
)
TOKEN_REFRESHES = Counter(
    "hub_token_refreshes_total",
    "Access tokens obtained from a platform's token endpoint, by grant.",
    ["platform", "grant"],
)
RUNS = Counter(
    "hub_runs_total", "Finished runs (syncs, ingests, deliveries) by kind and status.",
    ["kind", "status"],
)
RUN_DURATION = Histogram(
    "hub_run_duration_seconds",
    "Duration of finished runs by kind.",
    ["kind"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
BATCHES = Counter(
    "hub_delivery_batches_total",
    "Outbound batch attempts by platform and the state they ended in (sent, retry, dead).",
    ["platform", "outcome"],
)
DELIVERED = Counter(
    "hub_delivered_items_total",
    "Items platforms acknowledged (item_count of sent batches: readings for DEXMA, "
    "packets for Wattics, usage rows for Volue).",
    ["platform"],
)


def platform_of(client_name: str) -> str:
    """The platform label of an HTTP client name ("pull:acme" -> "pull")."""
    return client_name.split(":", 1)[0] or "unknown"


# --- Recording events (one call at each place where the event happens) ------------------

_reported: set[type[Exception]] = set()


def _never_fails(record: Callable[P, None]) -> Callable[P, None]:
    """Counting must not break the work counted: a failure (an unwritable metrics
    directory, a full disk) is logged once per process and kind of error, then ignored."""

    @functools.wraps(record)
    def safe(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            record(*args, **kwargs)
        except Exception as exc:
            if type(exc) not in _reported:
                _reported.add(type(exc))
                logger.error("metrics: cannot record events in PROMETHEUS_MULTIPROC_DIR=%s "
                             "(%s); make it writable by this process",
                             os.environ.get("PROMETHEUS_MULTIPROC_DIR"), exc)

    return safe


@_never_fails
def http_retry(client_name: str, outcome: str) -> None:
    """A retry after ``outcome``: an HTTP status ("503") or a network error's name."""
    reason = "network"
    if outcome == "429":
        reason = "429"
    elif outcome.isdigit():
        reason = f"{outcome[0]}xx"
    HTTP_RETRIES.labels(platform_of(client_name), reason).inc()


@_never_fails
def http_rate_limited(client_name: str) -> None:
    HTTP_RATE_LIMITED.labels(platform_of(client_name)).inc()


@_never_fails
def http_budget_wait(client_name: str) -> None:
    HTTP_BUDGET_WAITS.labels(platform_of(client_name)).inc()


@_never_fails
def token_refreshed(client_name: str, grant: str) -> None:
    TOKEN_REFRESHES.labels(platform_of(client_name), grant or "unknown").inc()


@_never_fails
def run_observe(*, kind: str, status: str, seconds: float | None) -> None:
    RUNS.labels(kind, status).inc()
    if seconds is not None:
        RUN_DURATION.labels(kind).observe(max(0.0, seconds))


@_never_fails
def batch_recorded(*, platform: str, state: str, items: int) -> None:
    BATCHES.labels(platform, state).inc()
    if state == "sent" and items:
        DELIVERED.labels(platform).inc(items)


# --- Process start-up -------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def metrics_dir_prepare(role: str) -> int:
    """Declare this process's role; wipe the files its role's exited processes left.

    Called by the parent process of a role as it starts, before it starts its children
    (gunicorn's master, the Celery worker's main process, beat): the previous run's counters
    go, which Prometheus reads as a counter reset. Files of live processes stay, so a second
    worker started on the same host leaves the first one's counters alone. One-off
    processes (management commands, shells) that have exited are cleaned up as well.
    Returns the number of files removed.
    """
    if role not in ROLES:
        raise ValueError(f"unknown process role {role!r}; use one of {', '.join(ROLES)}")
    os.environ[ROLE_ENV] = role
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    removed = 0
    for path in directory.glob("*.db"):
        owner, _, pid = path.stem.rsplit("_", 1)[-1].rpartition("-")
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        if owner in (role, "cmd") and not _pid_alive(int(pid)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def process_exited(pid: int) -> None:
    """A worker process exited (gunicorn's child_exit): drop its live gauges, if any."""
    multiprocess.mark_process_dead(f"{os.environ.get(ROLE_ENV, 'cmd')}-{pid}")


# --- State from the database ------------------------------------------------------------


class DatabaseCollector(Collector):
    """Gauges and totals read from the database at scrape time, from indexed tables only."""

    def collect(self) -> Iterator:
        started = time.monotonic()
        up = GaugeMetricFamily(
            "hub_metrics_database_up",
            "1 when the database answered the metrics queries of this scrape.",
        )
        try:
            families = [*self._ingest(), *self._delivery()]
        except DatabaseError as exc:
            logger.warning("metrics: database metrics unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families
        elapsed = GaugeMetricFamily(
            "hub_metrics_database_seconds", "Time the database metrics of this scrape took."
        )
        elapsed.add_metric([], time.monotonic() - started)
        yield elapsed

    def _ingest(self) -> list:
        from apps.core.models import DailyIngestStat

        accepted = CounterMetricFamily(
            "hub_readings_accepted",
            "Readings accepted, per deployment (from the daily ingest statistics).",
            labels=["deployment"],
        )
        quarantined = CounterMetricFamily(
            "hub_readings_quarantined",
            "Readings quarantined, per deployment (from the daily ingest statistics).",
            labels=["deployment"],
        )
        rows = (
            DailyIngestStat.objects.order_by()
            .values("deployment__slug")
            .annotate(accepted=Sum("accepted"), quarantined=Sum("quarantined"))
        )
        for row in rows:
            accepted.add_metric([row["deployment__slug"]], row["accepted"] or 0)
            quarantined.add_metric([row["deployment__slug"]], row["quarantined"] or 0)
        return [accepted, quarantined]

    def _delivery(self) -> list:
        from apps.core.models import DeliveryLink, OutboundBatch

        state = OutboundBatch.State
        open_states = (state.PENDING, state.SENDING, state.RETRY)
        labels = ["platform", "link", "deployment"]
        batches = GaugeMetricFamily(
            "hub_delivery_backlog_batches",
            "Batches recorded for a link and not yet acknowledged (pending, sending, retry).",
            labels=labels,
        )
        items = GaugeMetricFamily(
            "hub_delivery_backlog_items", "Items in the link's unacknowledged batches.",
            labels=labels,
        )
        lag = GaugeMetricFamily(
            "hub_delivery_lag_seconds",
            "Age of the link's oldest unacknowledged batch (0 when nothing waits).",
            labels=labels,
        )
        dead = GaugeMetricFamily(
            "hub_delivery_dead_batches",
            "Batches given up on (dead letters) until ops requeue them.", labels=labels,
        )
        link_state = GaugeMetricFamily(
            "hub_delivery_link_state", "1 for the link's current state (active, paused, broken).",
            labels=[*labels, "state"],
        )
        # One index-only count per link on batch_link_state_idx: sent batches pile up for
        # ever, so the dead count must not scan them.
        dead_count = (
            OutboundBatch.objects.filter(link=OuterRef("pk"), state=state.DEAD)
            .order_by().values("link").annotate(n=Count("*")).values("n")
        )
        links = (
            DeliveryLink.objects.order_by()
            .values("pk", "platform", "name", "state", "deployment__slug")
            .annotate(dead=Coalesce(Subquery(dead_count), 0))
        )
        # Open batches are few and covered by the partial index batch_due_idx.
        waiting = {
            row["link"]: row
            for row in OutboundBatch.objects.filter(state__in=open_states)
            .order_by().values("link")
            .annotate(n=Count("*"), items=Sum("item_count"), oldest=Min("created_at"))
        }
        now = timezone.now()
        for link in links:
            key = [link["platform"], link["name"], link["deployment__slug"]]
            row = waiting.get(link["pk"])
            batches.add_metric(key, row["n"] if row else 0)
            items.add_metric(key, (row["items"] or 0) if row else 0)
            lag.add_metric(key, (now - row["oldest"]).total_seconds() if row else 0.0)
            dead.add_metric(key, link["dead"])
            for choice in DeliveryLink.State.values:
                link_state.add_metric([*key, choice], 1 if link["state"] == choice else 0)
        return [batches, items, lag, dead, link_state]


def registry_build() -> CollectorRegistry:
    """A registry for one scrape: every process's event files plus the database state."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(DatabaseCollector())
    return registry


# --- The endpoint -----------------------------------------------------------------------


def _ip_allowed(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for allowed in settings.METRICS_ALLOWED_IPS:
        try:
            if ip in ipaddress.ip_network(allowed, strict=False):
                return True
        except ValueError:
            logger.warning("METRICS_ALLOWED_IPS: %r is not an address or network", allowed)
    return False


def metrics_access_denied(request: HttpRequest) -> str | None:
    """Why this request may not read the metrics, or None when it may."""
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        # Bytes: compare_digest refuses str with non-ASCII characters (a 500 otherwise).
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode()):
            return None
        return "metrics need 'Authorization: Bearer <METRICS_TOKEN>'"
    # Behind a proxy REMOTE_ADDR is the proxy's own (often loopback) address: a proxied
    # request proves nothing about where it came from.
    if "X-Forwarded-For" in request.headers:
        return "metrics are not served through a proxy unless METRICS_TOKEN is set"
    if _ip_allowed(request.META.get("REMOTE_ADDR", "")):
        return None
    return (
        "metrics are served to loopback and METRICS_ALLOWED_IPS only; "
        "set METRICS_TOKEN to scrape from elsewhere"
    )


@require_GET
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition of the hub's metrics."""
    refusal = metrics_access_denied(request)
    if refusal is not None:
        return HttpResponse(refusal + "\n", status=403, content_type="text/plain; charset=utf-8")
    return HttpResponse(generate_latest(registry_build()), content_type=CONTENT_TYPE_LATEST)
