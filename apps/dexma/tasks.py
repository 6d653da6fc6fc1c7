"""DEXMA periodic work: thin tasks, one per installation, loading by id."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.core.http import TransientError
from apps.core.locks import AlreadyRunning, single_flight
from apps.core.models import Run
from apps.core.services import run_logged
from apps.dexma import services
from apps.dexma.models import Installation

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
