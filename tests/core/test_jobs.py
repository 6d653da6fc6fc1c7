import pytest

from apps.core import jobs
from apps.core.models import Deployment, Run

pytestmark = pytest.mark.django_db


def test_a_job_logs_its_run_with_the_counts_the_body_set():
    def body(run):
        run.counts = {"sent": 3}
        return "value"

    job = jobs.job_run(app="demo", job="push", key=7, target="seven", body=body)
    assert job.value == "value" and job.counts == {"sent": 3}
    run = Run.objects.get(pk=job.run.pk)
    assert (run.kind, run.target, run.status) == ("demo.push", "seven", Run.Status.SUCCEEDED)


def test_a_second_run_while_one_holds_the_lock_is_skipped_not_raised():
    calls = []
    with jobs.job_lock("demo", "push", 7):
        job = jobs.job_run(app="demo", job="push", key=7, body=calls.append)
    assert job.skipped == "already running" and job.counts == {"skipped": "already running"}
    assert calls == [] and not Run.objects.exists()
    # Another id of the same job is not blocked.
    with jobs.job_lock("demo", "push", 7):
        assert not jobs.job_run(app="demo", job="push", key=8, body=lambda run: None).skipped


def test_errors_mark_the_run_partial_and_an_exception_fails_it():
    job = jobs.job_run(app="demo", job="sync", body=lambda run: jobs.run_partial(
        run, ["", "one failed", "two failed"]))
    run = Run.objects.get(pk=job.run.pk)
    assert (run.status, run.error) == (Run.Status.PARTIAL, "one failed; two failed")

    def boom(run):
        raise ValueError("platform said no")

    with pytest.raises(ValueError):
        jobs.job_run(app="demo", job="sync", body=boom)
    failed = Run.objects.latest("pk")
    assert failed.status == Run.Status.FAILED and "platform said no" in failed.error
    # The lock went with the failed run.
    assert not jobs.job_run(app="demo", job="sync", body=lambda run: None).skipped


def test_a_row_deleted_before_its_task_runs_is_loaded_as_none():
    deployment = Deployment.objects.create(slug="gone", name="Gone")
    pk = deployment.pk
    deployment.delete()
    assert jobs.load(Deployment.objects.all(), pk, what="deployment") is None
    assert jobs.skipped("deleted") == {"skipped": "deleted"}


def test_lock_names_are_app_job_id():
    assert jobs.lock_name("dexma", "deliver", 12) == "dexma:deliver:12"
    assert jobs.lock_name("volue", "reports_plan") == "volue:reports_plan"
