"""The delivery outbox: batches recorded before they are sent, sent until acknowledged.

An integration enqueues batches in the same transaction that decides to send them, and
calls `outbox_dispatch` from its own periodic task with its own `send`. A batch is claimed
in one short transaction (`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL), sent with no
transaction open, and its outcome recorded afterwards. A claim is a lease: if the worker
dies between sending and recording, the lease lapses and the batch is sent again, so
delivery is at least once and nothing is lost. The lease outlives Celery's hard time
limit, so a live worker's claim never lapses and two dispatchers never send one batch at
the same time.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, Max, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from apps.core import metrics
from apps.core.cache import CACHE_ERRORS
from apps.core.http import PermanentError, TransientError
from apps.core.logs import log_context
from apps.core.models import DeliveryLink, Deployment, OutboundBatch
from apps.core.redact import redact

logger = logging.getLogger(__name__)

State = OutboundBatch.State
_BODY_KEPT = 10_000


@dataclass(slots=True)
class Outcome:
    """What the platform answered to one send."""

    ok: bool
    status: int | None = None
    body: str = ""
    error: str = ""
    permanent: bool = False
    retry_after: float | None = None
    # Set when the platform acknowledged more (or less) than the batch's seq_to.
    advance_cursor_to: int | None = None
    # The hub's own infrastructure failed (the cache is unreachable), not the platform: the
    # claim is released without counting an attempt, and the batch is tried again soon.
    hub_fault: bool = False
    # This batch alone must not be sent again (its error says why); the link carries on.
    undeliverable: bool = False


@dataclass(slots=True)
class DispatchResult:
    sent: int = 0
    failed: int = 0  # transient failures, scheduled for another attempt
    dead: int = 0


def link_get_or_create(
    *, platform: str, name: str, deployment: Deployment, ordered: bool = True
) -> DeliveryLink:
    link, _ = DeliveryLink.objects.get_or_create(
        platform=platform, name=name, defaults={"deployment": deployment, "ordered": ordered}
    )
    if link.deployment_id != deployment.pk:
        raise ValueError(
            f"{platform} link '{name}' already belongs to deployment {link.deployment_id}, "
            f"not {deployment.slug}; link names are unique per platform, so choose another"
        )
    return link


def link_planned_seq(*, link: DeliveryLink) -> int:
    """The seq up to which the link's readings are already in batches: plan after it.

    Never below the cursor, which a platform may have moved past the last batch
    (`Outcome.advance_cursor_to`).
    """
    planned = link.batches.aggregate(top=Max("seq_to"))["top"]
    return link.cursor if planned is None else max(planned, link.cursor)


def batch_enqueue(
    *,
    link: DeliveryLink,
    seq_from: int | None = None,
    seq_to: int | None = None,
    payload: object = None,
    item_count: int = 0,
    key: str | None = None,
) -> OutboundBatch:
    """Record a batch at the end of the link's queue; call it in the deciding transaction.

    The same idempotency key enqueued again returns the batch already recorded.
    """
    if (seq_from is None) != (seq_to is None):
        raise ValueError("give both seq_from (exclusive) and seq_to (inclusive), or neither")
    if seq_from is not None and seq_to <= seq_from:
        raise ValueError(f"empty seq range ({seq_from}, {seq_to}]: seq_to must exceed seq_from")
    if key is None:
        if seq_to is None:
            raise ValueError("a batch without a seq range needs an idempotency key (key=…)")
        key = f"{link.platform}:{link.pk}:{seq_from}-{seq_to}"
    with transaction.atomic():
        # The link row lock serialises enqueues per link: positions never collide and a
        # repeated key finds the batch its twin committed.
        DeliveryLink.objects.select_for_update().only("pk").get(pk=link.pk)
        existing = OutboundBatch.objects.filter(idempotency_key=key).first()
        if existing is not None:
            if existing.link_id != link.pk:
                raise ValueError(
                    f"idempotency key '{key}' is already used by a batch of link "
                    f"{existing.link_id}; prefix custom keys with the platform and link id"
                )
            return existing
        last = link.batches.aggregate(top=Max("position"))["top"] or 0
        return OutboundBatch.objects.create(
            link=link,
            position=last + 1,
            idempotency_key=key,
            seq_from=seq_from,
            seq_to=seq_to,
            payload=payload,
            item_count=item_count,
            next_attempt_at=timezone.now(),
        )


def _due_batches(
    *, now: dt.datetime, platform: str | None, link: DeliveryLink | None
) -> QuerySet[OutboundBatch]:
    # While SENDING, next_attempt_at is when the claim lapses, so one condition covers
    # "due" and "claimed by a worker presumed dead" (and matches batch_due_idx).
    earlier_open = OutboundBatch.objects.filter(
        link=OuterRef("link"), position__lt=OuterRef("position"),
        state__in=OutboundBatch.OPEN_STATES
    )
    qs = OutboundBatch.objects.filter(
        state__in=OutboundBatch.OPEN_STATES,
        next_attempt_at__lte=now,
        link__state=DeliveryLink.State.ACTIVE,
    ).filter(Q(link__ordered=False) | ~Exists(earlier_open))
    if platform is not None:
        qs = qs.filter(link__platform=platform)
    if link is not None:
        qs = qs.filter(link=link)
    return qs.order_by("next_attempt_at", "pk")


def _take(batch: OutboundBatch, *, lease_until: dt.datetime) -> bool:
    """Claim one candidate by compare-and-set; False if someone else changed it first."""
    current = OutboundBatch.objects.filter(
        pk=batch.pk, state=batch.state, attempts=batch.attempts
    )
    if batch.state == State.SENDING and batch.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
        # Every claim so far died before recording: most likely this batch kills the worker.
        error = (
            f"claimed {batch.attempts} times and no outcome was ever recorded (the worker died "
            "each time); check the worker logs for this batch, then requeue it"
        )
        if current.update(state=State.DEAD, last_error=error):
            logger.error("outbox: batch %s is dead: %s", batch.pk, error)
        return False
    if not current.update(
        state=State.SENDING, attempts=batch.attempts + 1, next_attempt_at=lease_until
    ):
        return False
    batch.state = State.SENDING
    batch.attempts += 1
    batch.next_attempt_at = lease_until
    return True


def batches_claim(
    *,
    limit: int = 1,
    platform: str | None = None,
    link: DeliveryLink | None = None,
    now: dt.datetime | None = None,
) -> list[OutboundBatch]:
    """Mark up to `limit` due batches SENDING and return them; send each, then record it."""
    now = now or timezone.now()
    lease_until = now + dt.timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)
    qs = _due_batches(now=now, platform=platform, link=link).select_related("link__deployment")
    # Without SKIP LOCKED (the SQLite demo) the compare-and-set in _take alone decides
    # which of two claimers wins a batch.
    if connection.features.has_select_for_update_skip_locked:
        qs = qs.select_for_update(skip_locked=True, of=("self",))
    with transaction.atomic():
        return [b for b in qs[:limit] if _take(b, lease_until=lease_until)]


def _retry_delay(attempts: int, retry_after: float | None) -> float:
    schedule = settings.OUTBOX_RETRY_SCHEDULE
    delay = float(schedule[min(attempts, len(schedule)) - 1]) if schedule else 60.0
    return max(delay, retry_after or 0.0)


def batch_record(
    *, batch: OutboundBatch, outcome: Outcome, now: dt.datetime | None = None
) -> OutboundBatch:
    """Store the outcome of the claim `batch` holds; returns the batch as now stored.

    An outcome for a claim that is no longer current (it lapsed and the batch was claimed
    again, or ops requeued it) is ignored: the newer claim's outcome is the one that counts.
    """
    now = now or timezone.now()
    changes, link_changes = _outcome_changes(batch, outcome, now=now)
    # Write first, read never: the compare-and-set is the claim check, and on SQLite a
    # transaction that starts with a write waits for a busy database instead of failing.
    with transaction.atomic():
        current = OutboundBatch.objects.filter(
            pk=batch.pk, state=State.SENDING, attempts=batch.attempts
        ).update(**changes)
        if current and link_changes:
            DeliveryLink.objects.filter(pk=batch.link_id).update(**link_changes)
    if not current:
        logger.warning(
            "outbox: ignoring outcome (ok=%s, status=%s) for batch %s attempt %s: "
            "that claim is no longer current",
            outcome.ok, outcome.status, batch.pk, batch.attempts,
        )
    elif changes["state"] == State.DEAD:
        logger.error("outbox: batch %s of link %s is dead: %s", batch.pk, batch.link_id,
                     link_changes.get("broken_reason") or changes["last_error"])
    return OutboundBatch.objects.select_related("link").get(pk=batch.pk)


def _outcome_changes(
    batch: OutboundBatch, outcome: Outcome, *, now: dt.datetime
) -> tuple[dict[str, object], dict[str, object]]:
    """The batch's and the link's new field values once `outcome` is recorded."""
    changes: dict[str, object] = {
        "last_status": outcome.status,
        "last_body": outcome.body[:_BODY_KEPT],
        "last_error": outcome.error,
    }
    if outcome.ok:
        acknowledged = (
            outcome.advance_cursor_to if outcome.advance_cursor_to is not None else batch.seq_to
        )
        link_changes: dict[str, object] = {"last_success_at": now}
        if acknowledged is not None:
            # Greatest: an unordered link's batches succeed in any order; the cursor only
            # ever moves forward.
            link_changes["cursor"] = Greatest("cursor", Value(acknowledged))
        return {**changes, "state": State.SENT, "sent_at": now, "last_error": ""}, link_changes
    if outcome.hub_fault:
        # Not the platform's doing: the claim is given back as if it had not been made.
        retry_at = now + dt.timedelta(seconds=_retry_delay(1, None))
        return {**changes, "state": State.RETRY, "attempts": batch.attempts - 1,
                "next_attempt_at": retry_at}, {}
    if outcome.undeliverable:
        return {**changes, "state": State.DEAD}, {}
    if outcome.permanent:
        status = f"HTTP {outcome.status}" if outcome.status is not None else "an error"
        reason = (
            f"batch #{batch.position} was refused with {status}: {outcome.error or outcome.body}"
            ". Retrying will not help: fix the cause (credentials, configuration or data) on "
            "the platform or in the hub, then re-activate this link and requeue its dead "
            "batches."
        )
        return {**changes, "state": State.DEAD}, {
            "state": DeliveryLink.State.BROKEN, "broken_reason": reason,
        }
    if batch.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
        error = (
            f"gave up after {batch.attempts} attempts; last error: {outcome.error}. "
            "Requeue it once the platform accepts data again."
        )
        return {**changes, "state": State.DEAD, "last_error": error}, {}
    delay = dt.timedelta(seconds=_retry_delay(batch.attempts, outcome.retry_after))
    return {**changes, "state": State.RETRY, "next_attempt_at": now + delay}, {}


def _outcome_of_error(exc: Exception) -> Outcome:
    if isinstance(exc, PermanentError | TransientError):
        return Outcome(
            ok=False,
            status=exc.status_code,
            body=exc.body,
            error=redact(str(exc)),
            permanent=isinstance(exc, PermanentError),
            retry_after=exc.retry_after,
        )
    # A bug or an unforeseen failure: retried on schedule, dead after the last attempt.
    return Outcome(ok=False, error=redact(f"{type(exc).__name__}: {exc}"))


def outbox_dispatch(
    *,
    send: Callable[[OutboundBatch], Outcome],
    platform: str | None = None,
    link: DeliveryLink | None = None,
    limit: int = 50,
    now: dt.datetime | None = None,
) -> DispatchResult:
    """Send due batches one at a time until none is due or `limit` were tried.

    Call it outside any transaction: each claim must commit before `send` runs, so other
    dispatchers see it.
    """
    result = DispatchResult()
    for _ in range(limit):
        claimed = batches_claim(limit=1, platform=platform, link=link, now=now)
        if not claimed:
            break
        batch = claimed[0]
        stop = None
        with log_context(deployment=batch.link.deployment.slug, link=batch.link_id,
                         platform=batch.link.platform, batch=batch.pk):
            try:
                outcome = send(batch)
            except SoftTimeLimitExceeded as exc:
                outcome, stop = _outcome_of_error(exc), exc
            except CACHE_ERRORS as exc:
                logger.warning("outbox: batch %s not sent, the cache is unavailable: %s",
                               batch.pk, exc)
                outcome = Outcome(ok=False, error=f"the hub's cache is unavailable: {exc}",
                                  hub_fault=True)
            except Exception as exc:
                if not isinstance(exc, TransientError | PermanentError):
                    logger.exception("outbox: sending batch %s failed unexpectedly", batch.pk)
                outcome = _outcome_of_error(exc)
            recorded = batch_record(batch=batch, outcome=outcome, now=now)
        # A different attempts value: our claim lapsed meanwhile and the outcome was ignored.
        if recorded.attempts == batch.attempts:
            result.sent += recorded.state == State.SENT
            result.failed += recorded.state == State.RETRY
            result.dead += recorded.state == State.DEAD
            metrics.batch_recorded(platform=batch.link.platform, state=recorded.state,
                                   items=batch.item_count)
        if outcome.hub_fault:
            break  # the next batches would fail the same way; a later tick tries again
        if stop is not None:
            raise stop
    return result


def batch_requeue(*, batches: Iterable[OutboundBatch]) -> int:
    """Give dead batches a fresh start; a broken link stays broken until re-activated."""
    return OutboundBatch.objects.filter(
        pk__in=[b.pk for b in batches], state=State.DEAD
    ).update(state=State.PENDING, attempts=0, next_attempt_at=timezone.now())


def link_reactivate(*, link: DeliveryLink) -> DeliveryLink:
    """Let a paused or broken link send again (its dead batches stay dead until requeued)."""
    DeliveryLink.objects.filter(pk=link.pk).update(
        state=DeliveryLink.State.ACTIVE, broken_reason=""
    )
    link.refresh_from_db(fields=["state", "broken_reason"])
    return link
