"""Writes of the DEXMA Market App: installation, datasource lifecycle, consent, reconcile, and
readings to DEXMA through IS3 (configuration checks, live delivery, backfill, verification).

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

from apps.dexma.services.backfill import (
    backfill_plan,
    backfill_refresh,
    backfill_run,
    backfill_start,
)
from apps.dexma.services.batches import (
    Is3Sender,
    batch_build,
    channels_of,
    selection_resolutions,
)
from apps.dexma.services.datasources import (
    Selection,
    datasource_create,
    datasource_delete,
    datasource_disable,
    datasource_forget,
    datasource_push,
    datasource_update,
    selection_from_form,
)
from apps.dexma.services.errors import (
    DexmaError,
    InstallError,
    PlatformCallError,
    TokenInvalid,
    TokenMissing,
)
from apps.dexma.services.installations import (
    ClientFactory,
    client_for,
    installation_authenticate,
    installation_install,
    installation_uninstall,
)
from apps.dexma.services.live import (
    DeliveryResult,
    datasource_deliver,
    datasource_plan,
    live_start_seq,
)
from apps.dexma.services.reconcile import SyncReport, consents_apply, installation_reconcile
from apps.dexma.services.verify import Verification, datasource_verify

__all__ = [
    "ClientFactory",
    "DeliveryResult",
    "DexmaError",
    "InstallError",
    "Is3Sender",
    "PlatformCallError",
    "Selection",
    "SyncReport",
    "TokenInvalid",
    "TokenMissing",
    "Verification",
    "backfill_plan",
    "backfill_refresh",
    "backfill_run",
    "backfill_start",
    "batch_build",
    "channels_of",
    "client_for",
    "consents_apply",
    "datasource_create",
    "datasource_delete",
    "datasource_deliver",
    "datasource_disable",
    "datasource_forget",
    "datasource_plan",
    "datasource_push",
    "datasource_update",
    "datasource_verify",
    "installation_authenticate",
    "installation_install",
    "installation_reconcile",
    "installation_uninstall",
    "live_start_seq",
    "selection_from_form",
    "selection_resolutions",
]
