"""Retention waits for DEXMA: a backfill still running holds the history it sends."""

from __future__ import annotations

import datetime as dt

from apps.core.models import Reading
from apps.core.services.retention import readings_retention_apply, retention_preview
from apps.dexma.models import Backfill

NOW = dt.datetime(2026, 9, 15, tzinfo=dt.UTC)  # the readings of 2026-06-01 are past 30 days


def _delivered(datasource) -> None:
    link = datasource.link
    if link is None:
        from apps.core.services.outbox import link_get_or_create

        link = link_get_or_create(platform="dexma", name="retention test",
                                  deployment=datasource.deployment)
        datasource.link = link
        datasource.save(update_fields=["link"])
    link.cursor = max(r.seq for r in Reading.objects.all())
    link.save(update_fields=["cursor"])


def test_a_running_backfill_holds_its_span_until_it_is_done(deployment, registered):
    deployment.retention_days = 30
    deployment.save()
    _delivered(registered)
    backfill = Backfill.objects.create(
        datasource=registered, date_from=dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
        date_to=dt.datetime(2026, 7, 1, tzinfo=dt.UTC), seq_snapshot=0,
        state=Backfill.State.SENDING)
    stored = Reading.objects.count()
    assert readings_retention_apply(max_rows=1000, now=NOW).deleted_total == 0
    assert Reading.objects.count() == stored
    preview = retention_preview(deployment=deployment, now=NOW)
    assert preview.removable == 0
    assert preview.holding == (f"DEXMA {backfill}: needs readings from 2026-05-01 00:00",)
    backfill.state = Backfill.State.DONE
    backfill.save()
    assert readings_retention_apply(max_rows=1000, now=NOW).deleted_total == stored
    assert Reading.objects.count() == 0
