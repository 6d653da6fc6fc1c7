"""Readings to DEXMA through IS3: configuration checks, live delivery, backfill, verification.

Batches go through the core outbox, one delivery link per DEXMA datasource (ordered).
A batch does not store its values; it stores bounds from which it is rebuilt the same way
every time it is sent:

- live: the seq range (seq_from, seq_to], planned so that it holds at most 5,000 values of
  the datasource's device parameters. A reading changed after planning gets a new seq, so it
  leaves the range (which only shrinks) and lands in a later batch: nothing is lost.
- backfill: a time window [from, to) of whole timestamps holding at most 5,000 values among
  readings with seq <= the backfill's snapshot; what changes later is live delivery's.

Both also store the device parameters they were planned for, so a selection changed between
planning and sending cannot grow a batch past the IS3 limit.
"""

from apps.dexma.delivery.backfill import (
    backfill_plan,
    backfill_refresh,
    backfill_run,
    backfill_start,
)
from apps.dexma.delivery.batches import (
    Is3Sender,
    batch_build,
    channels_of,
    selection_resolutions,
)
from apps.dexma.delivery.live import (
    DeliveryResult,
    datasource_deliver,
    datasource_plan,
    live_start_seq,
)
from apps.dexma.delivery.verify import Verification, datasource_verify

__all__ = [
    "DeliveryResult",
    "Is3Sender",
    "Verification",
    "backfill_plan",
    "backfill_refresh",
    "backfill_run",
    "backfill_start",
    "batch_build",
    "channels_of",
    "datasource_deliver",
    "datasource_plan",
    "datasource_verify",
    "live_start_seq",
    "selection_resolutions",
]
