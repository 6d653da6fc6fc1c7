"""DEXMA periodic work: thin tasks, one per installation, loading by id."""

from __future__ import annotations

import time

from celery import shared_task
from django.conf import settings
from django.db.models import Exists, OuterRef

from apps.core import fanout, jobs
from apps.core.models import Run
from apps.dexma import services
from apps.dexma.client import Is3Client
from apps.dexma.models import Backfill, DexmaDatasource, Installation


@shared_task(name="dexma.reconcile_all")
def reconcile_all() -> int:
    """Fan out: one reconcile per installation, so one failing account blocks no other."""
    ids = list(Installation.objects.values_list("pk", flat=True))
    for pk in ids:
        reconcile_installation.delay(pk)
    return len(ids)


@shared_task(name="dexma.reconcile_installation", bind=True, max_retries=3)
def reconcile_installation(self, installation_id: int) -> dict:
    installation = jobs.load(Installation.objects.select_related("deployment"),
                             installation_id, what="DEXMA installation")
    if installation is None:
        return jobs.skipped("uninstalled")

    def body(run):
        report = services.installation_reconcile(installation=installation)
        run.counts = {"pushed": report.pushed, "failed": report.failed,
                      "missing": report.missing}
        jobs.run_partial(run, report.errors)

    try:
        job = jobs.job_run(app="dexma", job="reconcile", key=installation_id,
                           kind="dexma.reconcile", target=installation.dep_id,
                           deployment=installation.deployment, body=body)
    except services.PlatformCallError as exc:
        if exc.transient:
            # The rate budget or the platform says "later": come back after the reset.
            raise self.retry(countdown=min(exc.retry_after or 300, 3600)) from exc
        raise
    return job.counts


@shared_task(name="dexma.consents_apply")
def consents_apply() -> dict:
    """Reflect expired, revoked and renewed consents in the platform's datasource status."""

    def body(run):
        report = services.consents_apply()
        run.counts = {"pushed": report.pushed, "failed": report.failed}
        jobs.run_partial(run, report.errors)

    return jobs.job_run(app="dexma", job="consents", kind="dexma.consents",
                        target="all installations", body=body).counts


# --- IS3 delivery ------------------------------------------------------------------------------


@shared_task(name="dexma.deliver_all")
def deliver_all() -> int:
    """Fan out the registered DEXMA datasources with work (new readings of their deployment,
    a due batch, a backfill sending), DELIVERY_CHUNK per task (apps/core/fanout.py).
    Returns how many datasources were queued."""
    with_work = DexmaDatasource.objects.exclude(link=None).filter(
        fanout.work_q() | Exists(Backfill.objects.filter(datasource=OuterRef("pk"),
                                                         state=Backfill.State.SENDING)))
    return fanout.fan_out(with_work, deliver_chunk.delay)


@shared_task(name="dexma.deliver_chunk")
def deliver_chunk(datasource_ids: list[int]) -> dict:
    """Deliver these datasources one after the other; one failing never stops the others.

    One run row for the chunk when anything happened (its counts summed, the failing
    datasources named in its error)."""
    # One IS3 client (one keep-alive session) for the chunk: the token goes per request.
    with Is3Client() as client:
        report = fanout.chunk_run(
            datasource_ids, one=lambda pk, deadline: _deliver_one(pk, client=client),
            kind="dexma.deliver", what="DEXMA datasource", requeue=deliver_chunk.delay)
    return {**report.counts, "links": report.links, "active": report.active,
            "failed_links": len(report.errors), "requeued": len(report.rest)}


def _deliver(datasource: DexmaDatasource,
             client: Is3Client | None = None) -> services.DeliveryResult:
    result = services.datasource_deliver(datasource=datasource, client=client)
    # Backfill batches go out here too; a backfill whose own task died with its worker
    # (redelivered only after the broker's visibility timeout) still ends.
    for backfill in Backfill.objects.filter(datasource=datasource,
                                            state=Backfill.State.SENDING):
        services.backfill_refresh(backfill=backfill)
    return result


def _deliver_one(datasource_id: int, *, client: Is3Client) -> tuple | None:
    datasource = jobs.load(DexmaDatasource.objects.select_related("link", "deployment"),
                           datasource_id, what="DEXMA datasource")
    if datasource is None:
        return None
    job = jobs.job_run(app="dexma", job="deliver", key=datasource_id, log=False,
                       body=lambda run: _deliver(datasource, client))
    if job.skipped:
        return None
    result = job.value
    counts = result.as_counts()
    counts.pop("skipped", None)
    if not any(counts.values()):
        return None
    error = (f"{result.failed} batch(es) failed, {result.dead} dead"
             if result.failed or result.dead else "")
    return datasource.name, counts, error, datasource.deployment_id


@shared_task(name="dexma.deliver_datasource")
def deliver_datasource(datasource_id: int) -> dict:
    """One datasource now (ops, tests); beat's fan-out goes through `deliver_chunk`."""
    datasource = jobs.load(DexmaDatasource.objects.select_related("link", "deployment"),
                           datasource_id, what="DEXMA datasource")
    if datasource is None:
        return jobs.skipped("deleted")

    def body(run):
        result = _deliver(datasource)
        run.counts = result.as_counts()
        if result.failed or result.dead:
            run.status = Run.Status.PARTIAL

    return jobs.job_run(app="dexma", job="deliver", key=datasource_id, kind="dexma.deliver",
                        target=datasource.name, deployment=datasource.deployment,
                        body=body).counts


@shared_task(name="dexma.backfill_run")
def backfill_run(backfill_id: int) -> dict:
    """Send one backfill; runs again later (from where it stopped) until it is done."""
    backfill = jobs.load(Backfill.objects.select_related("datasource__deployment"),
                         backfill_id, what="DEXMA backfill")
    if backfill is None or backfill.state in (Backfill.State.DONE, Backfill.State.FAILED):
        return jobs.skipped("finished")
    datasource = backfill.datasource
    sent_before = backfill.values_sent

    def body(run):
        done = services.backfill_run(
            backfill=backfill, deadline=time.monotonic() + settings.TASK_SLICE_SECONDS)
        run.counts = {"batches": done.batches, "planned": done.values_planned,
                      "sent": done.values_sent}
        if done.state == Backfill.State.DONE:
            verification = services.datasource_verify(
                datasource=datasource, date_from=done.date_from, date_to=done.date_to)
            run.counts["verification"] = verification.summary
        elif done.state == Backfill.State.FAILED:
            run.status, run.error = Run.Status.FAILED, done.error
        return done

    job = jobs.job_run(app="dexma", job="backfill", key=backfill_id, kind="dexma.backfill",
                       target=str(backfill), deployment=datasource.deployment, body=body)
    if job.skipped:
        return job.counts
    backfill = job.value
    if backfill.state == Backfill.State.SENDING:
        # Progress: go on straight away, behind the tasks now waiting. None (the link is
        # waiting out a retry or the platform's budget): look again in a minute.
        moved = backfill.values_sent > sent_before
        backfill_run.apply_async((backfill_id,), countdown=0 if moved else 60)
    return job.counts


@shared_task(name="dexma.verify_datasource")
def verify_datasource(datasource_id: int) -> str:
    datasource = jobs.load(DexmaDatasource.objects.select_related("link", "installation"),
                           datasource_id, what="DEXMA datasource")
    if datasource is None:
        return "deleted"
    return services.datasource_verify(datasource=datasource).summary
