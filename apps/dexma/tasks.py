"""DEXMA periodic work: thin tasks, one per installation, loading by id."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings

from apps.core.http import TransientError
from apps.core.locks import AlreadyRunning, single_flight
from apps.core.models import Run
from apps.core.services import run_logged
from apps.dexma import delivery, services
from apps.dexma.models import Backfill, DexmaDatasource, Installation

logger = logging.getLogger(__name__)


@shared_task(name="dexma.reconcile_all")
def reconcile_all() -> int:
    """Fan out: one reconcile per installation, so one failing account blocks no other."""
    ids = list(Installation.objects.values_list("pk", flat=True))
    for pk in ids:
        reconcile_installation.delay(pk)
    return len(ids)


@shared_task(name="dexma.reconcile_installation", bind=True, max_retries=3)
def reconcile_installation(self, installation_id: int) -> dict:
    installation = Installation.objects.select_related("deployment").filter(
        pk=installation_id
    ).first()
    if installation is None:
        return {"skipped": "uninstalled"}
    try:
        with single_flight(f"dexma:reconcile:{installation_id}", ttl=900), run_logged(
            kind="dexma.reconcile", target=installation.dep_id,
            deployment=installation.deployment,
        ) as run:
            report = services.installation_reconcile(installation=installation)
            run.counts = {"pushed": report.pushed, "failed": report.failed,
                          "missing": report.missing}
            if report.failed:
                run.status, run.error = Run.Status.PARTIAL, "; ".join(report.errors)[:2000]
    except AlreadyRunning:
        return {"skipped": "already running"}
    except services.PlatformCallError as exc:
        cause = exc.__cause__
        if isinstance(cause, TransientError):
            # The rate budget or the platform says "later": come back after the reset.
            raise self.retry(countdown=min(cause.retry_after or 300, 3600)) from exc
        raise
    return run.counts


@shared_task(name="dexma.consents_apply")
def consents_apply() -> dict:
    """Reflect expired, revoked and renewed consents in the platform's datasource status."""
    try:
        with single_flight("dexma:consents", ttl=900), run_logged(
            kind="dexma.consents", target="all installations"
        ) as run:
            report = services.consents_apply()
            run.counts = {"pushed": report.pushed, "failed": report.failed}
            if report.failed:
                run.status, run.error = Run.Status.PARTIAL, "; ".join(report.errors)[:2000]
    except AlreadyRunning:
        return {"skipped": "already running"}
    return run.counts


# --- IS3 delivery ------------------------------------------------------------------------------


@shared_task(name="dexma.deliver_all")
def deliver_all() -> int:
    """Fan out: one delivery per registered DEXMA datasource, so one failing customer never
    blocks the others."""
    ids = list(DexmaDatasource.objects.exclude(link=None).values_list("pk", flat=True))
    for pk in ids:
        deliver_datasource.delay(pk)
    return len(ids)


@shared_task(name="dexma.deliver_datasource", acks_late=True)
def deliver_datasource(datasource_id: int) -> dict:
    datasource = DexmaDatasource.objects.select_related("link", "deployment").filter(
        pk=datasource_id).first()
    if datasource is None:
        return {"skipped": "deleted"}
    try:
        with single_flight(f"dexma:deliver:{datasource_id}", ttl=900), run_logged(
            kind="dexma.deliver", target=datasource.name, deployment=datasource.deployment,
        ) as run:
            result = delivery.datasource_deliver(datasource=datasource)
            run.counts = result.as_counts()
            # Backfill batches go out here too; a backfill whose own task died with its
            # worker (redelivered only after the broker's visibility timeout) still ends.
            for backfill in Backfill.objects.filter(datasource=datasource,
                                                    state=Backfill.State.SENDING):
                delivery.backfill_refresh(backfill=backfill)
            if result.failed or result.dead:
                run.status = Run.Status.PARTIAL
    except AlreadyRunning:
        return {"skipped": "already running"}
    return run.counts


@shared_task(name="dexma.backfill_run", acks_late=True)
def backfill_run(backfill_id: int) -> dict:
    """Send one backfill; runs again later (from where it stopped) until it is done."""
    backfill = Backfill.objects.select_related("datasource__deployment").filter(
        pk=backfill_id).first()
    if backfill is None or backfill.state in (Backfill.State.DONE, Backfill.State.FAILED):
        return {"skipped": "finished"}
    datasource = backfill.datasource
    try:
        with single_flight(f"dexma:backfill:{backfill_id}", ttl=900), run_logged(
            kind="dexma.backfill", target=str(backfill), deployment=datasource.deployment,
        ) as run:
            sent_before = backfill.values_sent
            backfill = delivery.backfill_run(
                backfill=backfill, deadline=time.monotonic() + settings.TASK_SLICE_SECONDS)
            run.counts = {"batches": backfill.batches, "planned": backfill.values_planned,
                          "sent": backfill.values_sent}
            if backfill.state == Backfill.State.DONE:
                verification = delivery.datasource_verify(
                    datasource=datasource, date_from=backfill.date_from,
                    date_to=backfill.date_to)
                run.counts["verification"] = verification.summary
            elif backfill.state == Backfill.State.FAILED:
                run.status, run.error = Run.Status.FAILED, backfill.error
    except AlreadyRunning:
        return {"skipped": "already running"}
    if backfill.state == Backfill.State.SENDING:
        # Progress: go on straight away, behind the tasks now waiting. None (the link is
        # waiting out a retry or the platform's budget): look again in a minute.
        moved = backfill.values_sent > sent_before
        backfill_run.apply_async((backfill_id,), countdown=0 if moved else 60)
    return run.counts


@shared_task(name="dexma.verify_datasource")
def verify_datasource(datasource_id: int) -> str:
    datasource = DexmaDatasource.objects.select_related("link", "installation").filter(
        pk=datasource_id).first()
    if datasource is None:
        return "deleted"
    return delivery.datasource_verify(datasource=datasource).summary
