"""Backfill: history oldest first in windows of whole timestamps, resumable."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from django.db import transaction
from django.db.models import Count, F, Sum
from django.utils import timezone

from apps.core.models import OutboundBatch, Reading
from apps.core.selectors import pairs_q
from apps.core.services import batch_enqueue, outbox_dispatch
from apps.dexma.client import Is3Client
from apps.dexma.models import Backfill, DexmaDatasource
from apps.dexma.schemas import MAX_VALUES, Is3MappingError
from apps.dexma.services.batches import PLATFORM, Is3Sender, State, channels_of
from apps.dexma.services.live import live_start_seq


def backfill_start(*, datasource: DexmaDatasource, date_from: dt.datetime,
                   date_to: dt.datetime) -> Backfill:
    if datasource.link_id is None:
        raise Is3MappingError(f"datasource '{datasource.name}' is not registered on the platform")
    if date_to <= date_from:
        raise Is3MappingError("the backfill's end must be after its start")
    return Backfill.objects.create(datasource=datasource, date_from=date_from, date_to=date_to,
                                   seq_snapshot=live_start_seq())


def _backfill_key(backfill: Backfill, start: dt.datetime) -> str:
    return f"{PLATFORM}:{backfill.datasource.link_id}:bf{backfill.pk}:{start.isoformat()}"


def backfill_plan(*, backfill: Backfill) -> int:
    """Cut the history into windows of whole timestamps, each at most 5,000 values, oldest
    first; resumable from `planned_until` (batch keys make a repeat harmless)."""
    if backfill.state != Backfill.State.PLANNING:
        return 0
    datasource = backfill.datasource
    pairs = sorted(channels_of(datasource))
    start = backfill.planned_until or backfill.date_from
    counts = list(
        Reading.objects.filter(pairs_q(pairs), ts__gte=start, ts__lt=backfill.date_to,
                               seq__lte=backfill.seq_snapshot)
        .values("ts").annotate(n=Count("pk")).order_by("ts").values_list("ts", "n")
    )
    windows: list[tuple[dt.datetime, dt.datetime, int]] = []
    window_start, size = None, 0
    for ts, n in counts:
        if n > MAX_VALUES:
            raise Is3MappingError(f"{n} values at {ts.isoformat()}: more than IS3 takes in one "
                                  "message; split the datasource")
        if window_start is not None and size + n > MAX_VALUES:
            windows.append((window_start, ts, size))
            window_start, size = None, 0
        if window_start is None:
            window_start = ts
        size += n
    if window_start is not None:
        windows.append((window_start, backfill.date_to, size))
    base_payload = {"backfill": backfill.pk, "seq_max": backfill.seq_snapshot,
                    "pairs": [list(p) for p in pairs]}
    link = datasource.link
    for window_from, window_to, size in windows:
        with transaction.atomic():
            batch_enqueue(link=link, key=_backfill_key(backfill, window_from), item_count=size,
                          payload={**base_payload, "from": window_from.isoformat(),
                                   "to": window_to.isoformat()})
            Backfill.objects.filter(pk=backfill.pk).update(
                planned_until=window_to, batches=F("batches") + 1,
                values_planned=F("values_planned") + size)
    Backfill.objects.filter(pk=backfill.pk).update(state=Backfill.State.SENDING)
    backfill.refresh_from_db()
    return len(windows)


def _backfill_batches(backfill: Backfill):
    return OutboundBatch.objects.filter(
        link_id=backfill.datasource.link_id,
        idempotency_key__startswith=f"{PLATFORM}:{backfill.datasource.link_id}:bf{backfill.pk}:")


def backfill_refresh(*, backfill: Backfill) -> Backfill:
    """Progress from the outbox itself: what IS3 acknowledged, what is still open."""
    batches = _backfill_batches(backfill)
    sent = batches.filter(state=State.SENT).aggregate(n=Sum("item_count"))["n"] or 0
    changes: dict = {"values_sent": sent}
    finished = not batches.filter(state__in=OutboundBatch.OPEN_STATES).exists()
    if backfill.state == Backfill.State.SENDING and finished:
        dead = batches.filter(state=State.DEAD).count()
        changes["state"] = Backfill.State.FAILED if dead else Backfill.State.DONE
        changes["finished_at"] = timezone.now()
        if dead:
            changes["error"] = (f"{dead} batch(es) dead: see the outbox; requeue them, "
                                "then run the backfill again")
    Backfill.objects.filter(pk=backfill.pk).update(**changes)
    backfill.refresh_from_db()
    return backfill


def backfill_run(*, backfill: Backfill, client: Is3Client | None = None,
                 progress: Callable[[Backfill], None] | None = None,
                 deadline: float | None = None, prefetch: bool = True) -> Backfill:
    """Plan what is left, then send until every backfill batch is acknowledged, the link
    stops (retry later, or broken), or `deadline` (time.monotonic) passes."""
    datasource = DexmaDatasource.objects.select_related("link").get(pk=backfill.datasource_id)
    backfill.datasource = datasource
    try:
        backfill_plan(backfill=backfill)
    except Is3MappingError as exc:
        Backfill.objects.filter(pk=backfill.pk).update(state=Backfill.State.FAILED,
                                                       error=str(exc))
        backfill.refresh_from_db()
        return backfill
    own = client is None
    client = client or Is3Client()
    try:
        with Is3Sender(datasource=datasource, client=client, prefetch=prefetch) as sender:
            _backfill_send(backfill=backfill, datasource=datasource, sender=sender,
                           progress=progress, deadline=deadline)
    finally:
        if own:
            client.close()
    return backfill_refresh(backfill=backfill)


def _backfill_send(*, backfill: Backfill, datasource: DexmaDatasource, sender: Is3Sender,
                   progress: Callable[[Backfill], None] | None,
                   deadline: float | None) -> None:
    while datasource.sendable:
        # Rounds of a few batches: the deadline is looked at between rounds.
        done = outbox_dispatch(send=sender, link=datasource.link, limit=5)
        backfill = backfill_refresh(backfill=backfill)
        if progress is not None:
            progress(backfill)
        if backfill.state != Backfill.State.SENDING or not done.sent:
            break
        if deadline is not None and time.monotonic() > deadline:
            break
