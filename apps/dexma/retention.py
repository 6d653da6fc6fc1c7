"""What DEXMA still needs of a deployment's readings, for retention (apps.core.services.retention).

Live delivery reads by seq range through the datasource's delivery link, which core holds
already. A backfill reads by time: until it is done, its whole span stays.
"""

from __future__ import annotations

from apps.core.models import Deployment
from apps.core.services.retention import RetentionHold
from apps.dexma.models import Backfill


def holds(deployment: Deployment) -> list[RetentionHold]:
    running = (Backfill.objects.filter(datasource__deployment=deployment,
                                       state__in=[Backfill.State.PLANNING, Backfill.State.SENDING])
               .select_related("datasource").order_by("date_from"))
    return [RetentionHold(what=f"DEXMA {backfill}", from_ts=backfill.date_from)
            for backfill in running]
