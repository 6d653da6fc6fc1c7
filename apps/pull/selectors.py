"""Reads of the pull sync."""

from __future__ import annotations

from apps.core.models import Run
from apps.pull.models import Connection


def connections_failing() -> list[Connection]:
    """Enabled connections whose last run failed: what the admin badges and ops chase."""
    return list(Connection.objects.filter(is_enabled=True, last_status=Run.Status.FAILED)
                .select_related("deployment").order_by("name"))
