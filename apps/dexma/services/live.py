"""Live delivery: new readings since the cursor, planned by seq range and sent in order."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Max

from apps.core.fanout import commit_seq_top, link_examined
from apps.core.models import DeliveryLink, Reading
from apps.core.selectors import readings_next_span, readings_of_pairs
from apps.core.services import batch_enqueue, link_planned_seq, outbox_dispatch
from apps.dexma.client import Is3Client
from apps.dexma.models import DexmaDatasource
from apps.dexma.schemas import MAX_VALUES
from apps.dexma.services.batches import Is3Sender, channels_of


@dataclass(slots=True)
class DeliveryResult:
    batches_planned: int = 0
    sent: int = 0
    failed: int = 0
    dead: int = 0
    values_sent: int = 0
    quarantined: int = 0
    skipped: str = ""

    def as_counts(self) -> dict:
        return {"planned": self.batches_planned, "sent": self.sent, "failed": self.failed,
                "dead": self.dead, "values": self.values_sent, "quarantined": self.quarantined,
                **({"skipped": self.skipped} if self.skipped else {})}


def datasource_plan(*, datasource: DexmaDatasource, max_batches: int = 20,
                    channels: dict | None = None) -> int:
    """Put the datasource's new readings (seq above what is planned) into batches of at most
    5,000 values; late readings are new readings too. Returns the batches planned.

    `channels`: the datasource's `channels_of`, when the caller has them already."""
    if datasource.link_id is None:
        return 0
    # Read before the readings: every reading up to this commit is visible to the queries
    # below, so once they find nothing more the link has examined everything up to it.
    examined = commit_seq_top(deployment_id=datasource.deployment_id)
    pairs = sorted(channels if channels is not None else channels_of(datasource))
    if not pairs:
        link_examined(link_id=datasource.link_id, seq=examined)
        return 0
    planned = 0
    for _ in range(max_batches):
        with transaction.atomic():
            link = DeliveryLink.objects.select_for_update().get(pk=datasource.link_id)
            start = link_planned_seq(link=link)
            span = readings_next_span(readings_of_pairs(pairs, after_seq=start),
                                      limit=MAX_VALUES)
            if span is not None:
                batch_enqueue(link=link, seq_from=start, seq_to=span.upto,
                              payload={"pairs": [list(p) for p in pairs]},
                              item_count=span.count)
                planned += 1
            if span is None or not span.more:
                # That was the last of what the queries saw, and they saw every reading
                # up to `examined`: no further round to find nothing.
                link_examined(link_id=datasource.link_id, seq=examined)
                break
    return planned


def _dispatch(*, datasource: DexmaDatasource, result: DeliveryResult, limit: int,
              client: Is3Client | None, now: dt.datetime | None = None,
              channels: dict | None = None) -> None:
    own = client is None
    client = client or Is3Client()
    try:
        sender = Is3Sender(datasource=datasource, client=client, channels=channels)
        done = outbox_dispatch(send=sender, link=datasource.link, limit=limit, now=now)
    finally:
        if own:
            client.close()
    result.sent += done.sent
    result.failed += done.failed
    result.dead += done.dead
    result.values_sent += sender.values_sent
    result.quarantined += sender.quarantined


def datasource_deliver(*, datasource: DexmaDatasource, limit: int = 50,
                       client: Is3Client | None = None,
                       now: dt.datetime | None = None) -> DeliveryResult:
    """Plan new readings, then send due batches (only while the datasource is enabled)."""
    result = DeliveryResult()
    if datasource.link_id is None:
        result.skipped = "no delivery link (not registered on the platform)"
        return result
    channels = channels_of(datasource)  # read once for planning and sending
    result.batches_planned = datasource_plan(datasource=datasource, channels=channels)
    if not datasource.sendable:
        result.skipped = "datasource not enabled"
        return result
    _dispatch(datasource=datasource, result=result, limit=limit, client=client, now=now,
              channels=channels)
    return result


def live_start_seq() -> int:
    """Where live delivery of a new datasource starts: history goes by backfill."""
    return Reading.objects.aggregate(top=Max("seq"))["top"] or 0
