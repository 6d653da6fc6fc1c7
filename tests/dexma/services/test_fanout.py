"""Beat's IS3 fan-out: only datasources with work, DELIVERY_CHUNK per task, one run per chunk."""

import datetime as dt

import pytest
import responses
from django.utils import timezone

from apps.core.models import OutboundBatch, Run
from apps.dexma import tasks

from .helpers import INSERT, START, datasource_with, ingest, quarter_hours

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def is3_url(settings):
    settings.DEXMA_INSERT_URL = INSERT


@pytest.fixture
def queued(monkeypatch):
    chunks = []
    monkeypatch.setattr(tasks.deliver_chunk, "delay", chunks.append)
    return chunks


@pytest.fixture
def three(installation, make_device):
    """Three registered datasources, one meter each."""
    devices = [make_device(installation.deployment, f"MAD-{n:02d}") for n in range(3)]
    return [datasource_with(installation, [device], ["active_power"], name=f"ds {n}",
                            key=f"hub-{n}", token=f"tok-{n}", platform_id=300 + n)
            for n, device in enumerate(devices)]


def test_a_tick_queues_only_datasources_with_new_readings_in_chunks(
        deployment, three, queued, settings):
    settings.DELIVERY_CHUNK = 2
    assert tasks.deliver_all() == 0 and queued == []  # no readings yet: nothing queued

    ingest(deployment, three[0].selections.get().device, "active_power",
           quarter_hours(START, 2))
    assert tasks.deliver_all() == 3  # a commit of their deployment: all three look once
    assert queued == [[three[0].pk, three[1].pk], [three[2].pk]]


@responses.activate
def test_once_planned_and_sent_a_datasource_waits_for_the_next_commit(
        deployment, three, queued):
    responses.post(INSERT, body="OK")
    device = three[1].selections.get().device
    ingest(deployment, device, "active_power", quarter_hours(START, 2))
    tasks.deliver_all()
    counts = tasks.deliver_chunk(queued.pop())
    assert counts["sent"] == 1 and counts["links"] == 3 and counts["active"] == 1
    assert len(responses.calls) == 1

    assert tasks.deliver_all() == 0 and queued == []  # examined: nothing new, nothing due
    ingest(deployment, device, "active_power", quarter_hours(START + dt.timedelta(1), 1))
    assert tasks.deliver_all() == 3


@responses.activate
def test_a_batch_due_for_retry_is_queued_without_a_new_commit(deployment, three, queued):
    responses.post(INSERT, status=503)
    ingest(deployment, three[0].selections.get().device, "active_power",
           quarter_hours(START, 1))
    tasks.deliver_all()
    tasks.deliver_chunk(queued.pop())
    batch = OutboundBatch.objects.get(link=three[0].link)
    assert batch.state == OutboundBatch.State.RETRY

    assert tasks.deliver_all() == 0  # the retry is not due yet
    OutboundBatch.objects.filter(pk=batch.pk).update(next_attempt_at=timezone.now())
    assert tasks.deliver_all() == 1 and queued == [[three[0].pk]]


@responses.activate
def test_one_failing_datasource_never_stops_its_chunk_and_the_chunk_logs_one_run(
        deployment, three, queued, monkeypatch):
    responses.post(INSERT, body="OK")
    for datasource in three:
        ingest(deployment, datasource.selections.get().device, "active_power",
               quarter_hours(START, 1))
    real = tasks.services.datasource_deliver

    def deliver(*, datasource, **kwargs):
        if datasource.pk == three[0].pk:
            raise RuntimeError("the planner broke")
        return real(datasource=datasource, **kwargs)

    monkeypatch.setattr(tasks.services, "datasource_deliver", deliver)
    tasks.deliver_all()
    counts = tasks.deliver_chunk(queued.pop())

    assert counts["sent"] == 2 and counts["failed_links"] == 1
    run = Run.objects.get(kind="dexma.deliver")
    assert run.status == Run.Status.PARTIAL and run.deployment == deployment
    assert "RuntimeError: the planner broke" in run.error
    assert run.counts["links"] == 3 and run.counts["active"] == 3
    assert run.started_at <= run.finished_at
    # The failed one is queued again on the next tick; the two that went out are not.
    assert tasks.deliver_all() == 1 and queued == [[three[0].pk]]


def test_a_tick_that_finds_nothing_to_do_writes_no_run(deployment, three, queued):
    ingest(deployment, three[0].selections.get().device, "voltage",  # not selected
           quarter_hours(START, 1))
    tasks.deliver_all()
    counts = tasks.deliver_chunk(queued.pop())
    assert counts["active"] == 0 and not Run.objects.exists()
    assert tasks.deliver_all() == 0


@responses.activate
def test_a_chunk_past_its_slice_queues_the_rest_as_a_new_chunk(
        deployment, three, queued, settings):
    responses.post(INSERT, body="OK")
    settings.TASK_SLICE_SECONDS = 0
    ingest(deployment, three[0].selections.get().device, "active_power",
           quarter_hours(START, 1))
    ids = [d.pk for d in three]
    counts = tasks.deliver_chunk(ids)
    # The first link always goes; the slice is then up and the others wait one task.
    assert counts["links"] == 1 and counts["requeued"] == 2 and queued == [ids[1:]]


def test_a_plan_cut_short_by_its_batch_limit_leaves_the_datasource_with_work(
        deployment, three, queued, monkeypatch):
    from apps.dexma.services import live

    monkeypatch.setattr(live, "MAX_VALUES", 1)  # one value a batch
    ingest(deployment, three[0].selections.get().device, "active_power",
           quarter_hours(START, 2))
    datasource = three[0]
    assert live.datasource_plan(datasource=datasource, max_batches=1) == 1
    datasource.link.refresh_from_db()
    assert datasource.link.examined_commit_seq == 0  # a value is left: not examined yet
    tasks.deliver_all()
    assert datasource.pk in [pk for chunk in queued for pk in chunk]

    assert live.datasource_plan(datasource=datasource, max_batches=5) == 1
    datasource.link.refresh_from_db()
    assert datasource.link.examined_commit_seq > 0
