"""What Volue still needs of a deployment's readings, for retention (apps.core.services.retention).

A report's batch carries its whole body, so Volue's links do not hold readings by seq
(`retention_payload_platforms`). The readings of an event's window are read while its
reports are planned and rechecked: for REPORT_LOOKBACK after the event ends.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Min
from django.utils import timezone

from apps.core.models import Deployment
from apps.core.services.retention import RetentionHold
from apps.volue.models import Event, VolueCustomer
from apps.volue.services.reports import REPORT_LOOKBACK


def holds(deployment: Deployment, now: dt.datetime | None = None) -> list[RetentionHold]:
    if not VolueCustomer.objects.filter(deployment=deployment).exists():
        return []
    now = now or timezone.now()
    start = (Event.objects.filter(window_end__gte=now - REPORT_LOOKBACK,
                                  window_start__isnull=False)
             .aggregate(m=Min("window_start"))["m"])
    if start is None:
        return []
    return [RetentionHold(what="Volue events still reported on", from_ts=start)]
