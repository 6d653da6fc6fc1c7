"""Sending: one packet per POST in time order, each documented code treated, resume."""

import datetime as dt

import pytest
import responses
from django.core import mail
from django.utils import timezone

from apps.core.models import DeliveryLink, OutboundBatch, Quarantine
from apps.wattics.models import WatticsAccount, WatticsLatePacket, WatticsStream
from apps.wattics.services import stream_push, stream_resume
from tests.wattics.conftest import T0, Q, ingest
from tests.wattics.fake import FakeWattics, basic

pytestmark = pytest.mark.django_db


@pytest.fixture
def wattics():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeWattics(rsps)


def stamps(packets):
    return [p["tsISO8601"] for p in packets]


def due_now(stream):
    OutboundBatch.objects.filter(link=stream.link).exclude(state="sent").update(
        next_attempt_at=timezone.now())


def test_sends_each_reading_as_one_packet_per_post_in_time_order(
        deployment, account, make_stream, wattics):
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [21.5, 22, 22.5, 23])
    result = stream_push(stream=stream)
    assert result.sent == 4 and not result.error
    assert wattics.posts == [
        {"id": "wm-1", "tsISO8601": "2026-03-02T10:00:00.000+01:00", "value": 21.5},
        {"id": "wm-1", "tsISO8601": "2026-03-02T10:15:00.000+01:00", "value": 22},
        {"id": "wm-1", "tsISO8601": "2026-03-02T10:30:00.000+01:00", "value": 22.5},
        {"id": "wm-1", "tsISO8601": "2026-03-02T10:45:00.000+01:00", "value": 23},
    ]
    headers = wattics.headers[0]
    assert headers["Authorization"] == basic("acme", "s3cret")
    assert headers["Content-Type"] == "application/json"
    assert headers["Accept"] == "application/json"
    stream.refresh_from_db()
    assert stream.last_accepted_ts == T0 + 3 * Q and stream.sent_count == 4


def test_electricity_packet_carries_converted_totals_on_phase_one(
        deployment, account, make_stream, wattics):
    stream = make_stream(deployment, kind="electricity")
    ingest(deployment, stream.device, "active_power", [1500.0])
    ingest(deployment, stream.device, "active_energy", [1234.5])
    ingest(deployment, stream.device, "voltage", [230.2])
    stream_push(stream=stream)
    assert wattics.posts == [{"id": "wm-1", "tsISO8601": "2026-03-02T10:00:00.000+01:00",
                              "aP_1": 1500, "v_1": 230.2, "pC_1": 1234500}]


def test_continues_right_after_the_last_packet_wattics_already_has(
        deployment, account, make_stream, wattics):
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [20, 21, 22, 23])
    wattics.accepted["wm-1"] = [{"id": "wm-1", "tsISO8601": "2026-03-02T10:15:00.000+01:00",
                                 "value": 21}]
    stream_push(stream=stream)
    assert stamps(wattics.posts) == ["2026-03-02T10:30:00.000+01:00",
                                     "2026-03-02T10:45:00.000+01:00"]
    stream.refresh_from_db()
    # Already at Wattics when the stream started: not undeliverable, nothing to fix.
    assert (stream.held_count, stream.late_count) == (2, 0)


def test_marks_readings_older_than_what_was_sent_as_late_and_never_sends_them(
        deployment, account, make_stream, wattics):
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [20, 21, 22])
    stream_push(stream=stream)
    ingest(deployment, stream.device, "temperature", [19], start=T0 - Q)  # older
    ingest(deployment, stream.device, "temperature", [25], start=T0 + Q)  # corrected
    ingest(deployment, stream.device, "temperature", [30], start=T0 + 3 * Q)  # new
    stream_push(stream=stream)
    assert len(wattics.posts) == 4 and wattics.posts[-1]["value"] == 30
    stream.refresh_from_db()
    assert stream.late_count == 2
    late = WatticsLatePacket.objects.filter(stream=stream).order_by("ts")
    assert [p.packet["value"] for p in late] == [19, 25]
    assert "discards packets sent out of order" in late[0].reason


def test_batches_hold_at_most_the_configured_number_of_packets(
        deployment, account, make_stream, wattics):
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", list(range(7)))
    stream_push(stream=stream)
    batches = OutboundBatch.objects.filter(link=stream.link).order_by("position")
    assert [b.item_count for b in batches] == [3, 3, 1]
    assert all(b.state == "sent" for b in batches)
    assert batches.last().seq_to == stream.link.batches.model.objects.get(
        pk=batches.last().pk).link.cursor


def test_quarantines_a_packet_refused_with_400_and_goes_on(
        deployment, account, make_stream, wattics):
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [20, 21, 22])
    wattics.answer(200, 400)
    result = stream_push(stream=stream)
    assert result.sent == 2 and result.refused == 1
    assert stamps(wattics.posts) == ["2026-03-02T10:00:00.000+01:00",
                                     "2026-03-02T10:15:00.000+01:00",
                                     "2026-03-02T10:30:00.000+01:00"]
    entry = Quarantine.objects.get()
    assert entry.payload["raw"]["value"] == 21
    assert entry.payload["context"]["answer"] == "answer 400"
    assert entry.source == "wattics:stream:wm-1"
    stream.refresh_from_db()
    assert stream.refused_count == 1 and stream.link.state == DeliveryLink.State.ACTIVE


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_stop_every_stream_on_them_and_alert(
        status, deployment, account, make_stream, make_device, wattics, settings):
    settings.ADMINS = [("ops", "ops@example.com")]
    first = make_stream(deployment, "wm-1")
    second = make_stream(deployment, "wm-2")
    own = make_stream(deployment, "wm-3")
    WatticsAccount.objects.create(name="Own", username="own", password="pw", device=own.device)
    for s in (first, second, own):
        ingest(deployment, s.device, "temperature", [20, 21])
    wattics.answer(status)
    stream_push(stream=first)
    account.refresh_from_db()
    assert account.state == WatticsAccount.State.REJECTED
    for s in (first, second):
        s.link.refresh_from_db()
        assert s.link.state == DeliveryLink.State.BROKEN
        assert f"answered {status}" in s.link.broken_reason
    assert stream_push(stream=second).sent == 0
    assert stream_push(stream=own).sent == 2  # other credentials keep going
    assert len(mail.outbox) == 1 and "rejected" in mail.outbox[0].subject
    assert "wm-1, wm-2" in mail.outbox[0].body


def test_resuming_credentials_sends_the_waiting_packets_in_order(
        deployment, account, make_stream, wattics):
    from apps.wattics.services import account_reactivate

    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [20, 21])
    wattics.answer(401)
    stream_push(stream=stream)
    account_reactivate(account=account)
    due_now(stream)
    stream_push(stream=stream)
    assert [p["value"] for p in wattics.posts] == [20, 20, 21]
    assert wattics.accepted["wm-1"] == wattics.posts[1:]


def test_404_stops_only_that_stream_and_alerts(
        deployment, account, make_stream, wattics, settings):
    settings.ADMINS = [("ops", "ops@example.com")]
    unknown = make_stream(deployment, "wm-unknown")
    known = make_stream(deployment, "wm-2")
    for s in (unknown, known):
        ingest(deployment, s.device, "temperature", [20])
    wattics.answer(404)
    stream_push(stream=unknown)
    unknown.link.refresh_from_db()
    assert unknown.link.state == DeliveryLink.State.BROKEN
    assert "does not know this meter id" in unknown.link.broken_reason
    assert stream_push(stream=known).sent == 1
    assert len(mail.outbox) == 1 and "wm-unknown" in mail.outbox[0].subject


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried_and_later_packets_wait(
        status, deployment, account, make_stream, wattics):
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [20, 21, 22, 23])
    wattics.answer(200, status, status)  # two tries of the second packet fail
    result = stream_push(stream=stream)
    assert result.sent == 1 and "later packets of this stream wait" in result.error
    assert [p["value"] for p in wattics.posts] == [20, 21, 21]
    batch = OutboundBatch.objects.get(link=stream.link, position=1)
    assert batch.state == OutboundBatch.State.RETRY
    assert batch.next_attempt_at > timezone.now()
    assert stream_push(stream=stream).sent == 0  # not due yet: nothing skips ahead
    due_now(stream)
    stream_push(stream=stream)
    assert [p["value"] for p in wattics.accepted["wm-1"]] == [20, 21, 22, 23]


def test_a_server_error_retried_in_place_sends_the_packet_once_accepted(
        deployment, account, make_stream, wattics):
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [20, 21])
    wattics.answer(503)
    assert stream_push(stream=stream).sent == 2
    assert [p["value"] for p in wattics.posts] == [20, 20, 21]


def test_a_server_error_whose_packet_was_taken_is_not_sent_again(
        deployment, account, make_stream, wattics):
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [20, 21, 22])
    wattics.answer(200, "taken 500")
    assert stream_push(stream=stream).sent == 3
    assert [p["value"] for p in wattics.posts] == [20, 21, 22]  # the last-packet GET said so


def test_a_refused_connection_is_sent_again_without_asking_wattics(
        deployment, account, make_stream, wattics):
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [20, 21])
    wattics.answer(200, "refused")
    assert stream_push(stream=stream).sent == 2
    assert [p["value"] for p in wattics.posts] == [20, 21, 21]
    assert wattics.gets == 1  # the first start's alone: nothing reached Wattics to ask about


def test_resumes_after_a_timeout_whose_packet_arrived(
        deployment, account, make_stream, wattics):
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [20, 21, 22])
    wattics.answer(200, "arrived")
    assert stream_push(stream=stream).sent == 3
    assert [p["value"] for p in wattics.posts] == [20, 21, 22]  # no duplicate
    assert [p["value"] for p in wattics.accepted["wm-1"]] == [20, 21, 22]  # no gap


def test_resumes_after_a_timeout_whose_packet_did_not_arrive(
        deployment, account, make_stream, wattics):
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [20, 21, 22])
    wattics.answer(200, "lost")
    assert stream_push(stream=stream).sent == 3
    assert [p["value"] for p in wattics.posts] == [20, 21, 21, 22]
    assert [p["value"] for p in wattics.accepted["wm-1"]] == [20, 21, 22]


def test_resumes_after_the_worker_died_mid_batch(deployment, account, make_stream, wattics):
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [20, 21, 22])
    stream_push(stream=stream, deadline=0)  # plan only
    batch = OutboundBatch.objects.get(link=stream.link)
    # A worker claimed it, sent two packets and died before recording anything.
    OutboundBatch.objects.filter(pk=batch.pk).update(
        state="sending", attempts=1, next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    wattics.accepted["wm-1"] = [
        {"id": "wm-1", "tsISO8601": "2026-03-02T10:00:00.000+01:00", "value": 20},
        {"id": "wm-1", "tsISO8601": "2026-03-02T10:15:00.000+01:00", "value": 21}]
    stream_push(stream=stream)
    assert [p["value"] for p in wattics.posts] == [22]


def test_a_stream_no_account_covers_is_stopped_with_what_to_do(
        deployment, make_stream, wattics):
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [20])
    result = stream_push(stream=stream)
    assert "no Wattics credentials cover meter wm-1" in result.error
    stream.link.refresh_from_db()
    assert stream.link.state == DeliveryLink.State.BROKEN and not wattics.posts


def test_resume_asks_wattics_again_before_sending(deployment, account, make_stream, wattics):
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [20])
    stream_push(stream=stream)
    stream_resume(stream=WatticsStream.objects.select_related("link").get(pk=stream.pk))
    assert WatticsStream.objects.get(pk=stream.pk).needs_resync


def test_an_idle_stream_does_not_call_wattics(deployment, account, make_stream, wattics):
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [20])
    stream_push(stream=stream)
    calls = (len(wattics.posts), wattics.gets)
    stream_push(stream=stream)
    assert (len(wattics.posts), wattics.gets) == calls


@pytest.fixture
def queued(monkeypatch) -> list:
    """The chunks the fan-out queues, caught here instead of going to the broker."""
    from apps.wattics import tasks

    chunks = []
    monkeypatch.setattr(tasks.push_chunk, "delay", chunks.append)
    return chunks


def test_periodic_push_queues_active_streams_with_work_in_chunks(
        deployment, account, make_stream, wattics, queued, settings):
    from apps.wattics import tasks
    from apps.wattics.services import stream_pause

    settings.DELIVERY_CHUNK = 2
    streams = [make_stream(deployment, f"wm-{n}") for n in range(3)]
    stream_pause(stream=make_stream(deployment, "wm-paused"))
    # Never synced with Wattics yet: each active stream looks once, to sync and plan.
    assert tasks.push_due() == 3
    assert queued == [[streams[0].pk, streams[1].pk], [streams[2].pk]]
    for chunk in queued:
        tasks.push_chunk(chunk)
    queued.clear()
    assert tasks.push_due() == 0 and queued == []  # synced, examined, nothing due

    ingest(deployment, streams[1].device, "temperature", [21.0, 21.5])
    assert tasks.push_due() == 3  # a commit of their deployment: each looks once
    counts = tasks.push_chunk([s.pk for s in streams])
    assert counts["sent"] == 2 and counts["active"] == 1 and counts["links"] == 3
    assert [p["value"] for p in wattics.posts] == [21.0, 21.5]
    assert tasks.push_due() == 0


def test_a_stream_waiting_out_a_retry_is_queued_once_it_is_due(
        deployment, account, make_stream, wattics, queued):
    from apps.wattics import tasks

    stream = make_stream(deployment)
    wattics.answer(503, 503)  # both tries fail: the batch waits for its retry
    ingest(deployment, stream.device, "temperature", [21.0])
    tasks.push_chunk([stream.pk])
    assert OutboundBatch.objects.get(link=stream.link).state == OutboundBatch.State.RETRY
    assert tasks.push_due() == 0
    due_now(stream)
    assert tasks.push_due() == 1 and queued == [[stream.pk]]


def test_one_failing_stream_never_stops_its_chunk_which_logs_one_run(
        deployment, account, make_stream, wattics, monkeypatch):
    from apps.core.models import Run
    from apps.wattics import tasks

    first, second = make_stream(deployment, "wm-1"), make_stream(deployment, "wm-2")
    for stream in (first, second):
        ingest(deployment, stream.device, "temperature", [20.0])
    real = tasks.stream_push_service

    def push(*, stream, **kwargs):
        if stream.pk == first.pk:
            raise RuntimeError("planner bug")
        return real(stream=stream, **kwargs)

    monkeypatch.setattr(tasks, "stream_push_service", push)
    counts = tasks.push_chunk([first.pk, second.pk])
    assert counts["sent"] == 1 and counts["failed_links"] == 1
    run = Run.objects.get(kind="wattics.push")
    assert run.status == Run.Status.PARTIAL and "RuntimeError: planner bug" in run.error
    assert [p["id"] for p in wattics.posts] == ["wm-2"]


def test_a_long_history_is_sent_in_slices_each_continued_by_a_new_task(
        deployment, account, make_stream, wattics, monkeypatch, settings):
    """A slice stops sending once its time is up; the task then queues its continuation
    (behind whatever waits) instead of holding a worker process for the whole history."""
    from apps.wattics import tasks

    settings.TASK_SLICE_SECONDS = 1
    wattics.delay = 0.1  # 3 packets a batch: 0.3 s each
    queued = []
    monkeypatch.setattr(tasks.stream_push, "delay", queued.append)
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", list(range(24)))  # 8 batches

    counts = [tasks.stream_push(stream.pk)]
    while queued and len(counts) < 20:
        queued.pop()
        counts.append(tasks.stream_push(stream.pk))

    sent = [c["sent"] for c in counts]
    assert sum(sent) == 24 and 2 <= len([n for n in sent if n]) <= 6, sent
    assert all(c["more"] for c in counts[:-1]) and not counts[-1]["more"], counts
    assert [p["value"] for p in wattics.posts] == list(range(24))


def test_a_round_never_ends_inside_an_instant_when_history_came_one_parameter_at_a_time(
        deployment, account, make_stream, wattics, settings):
    settings.WATTICS_PLAN_MAX_READINGS = 5  # rounds of a few readings, as at 200,000 by scale
    stream = make_stream(deployment, kind="electricity")
    for parameter, base in (("active_power", 1000.0), ("voltage", 230.0),
                            ("active_energy", 10.0)):
        ingest(deployment, stream.device, parameter, [base + i for i in range(12)])

    for _ in range(10):
        stream_push(stream=stream)
        due_now(stream)

    assert len(wattics.posts) == 12
    assert all({"aP_1", "v_1", "pC_1"} <= set(p) for p in wattics.posts)
    assert [p["pC_1"] for p in wattics.posts] == [(10 + i) * 1000 for i in range(12)]
    stream.refresh_from_db()
    assert (stream.late_count, stream.round_seq) == (0, None)


def test_a_round_takes_one_crowded_instant_whole(deployment, account, make_stream, wattics,
                                                 settings):
    settings.WATTICS_PLAN_MAX_READINGS = 2
    stream = make_stream(deployment, kind="electricity")
    for parameter in ("active_power", "voltage", "current"):
        ingest(deployment, stream.device, parameter, [1.0, 2.0])

    stream_push(stream=stream)
    due_now(stream)
    stream_push(stream=stream)

    assert [sorted(p) for p in wattics.posts] == [["aP_1", "c_1", "id", "tsISO8601", "v_1"]] * 2


def test_readings_arriving_between_the_rounds_of_a_sweep_are_late_only_if_older(
        deployment, account, make_stream, wattics, settings):
    settings.WATTICS_PLAN_MAX_READINGS = 4
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [20, 21, 22, 23, 24, 25, 26, 27])
    stream_push(stream=stream)  # plans the first four instants of eight
    stream.refresh_from_db()
    assert stream.round_seq is not None and stream.planned_ts == T0 + 3 * Q
    # A correction of an instant already planned, and of one still to come.
    ingest(deployment, stream.device, "temperature", [None, 31, None, None, None, 35])

    for _ in range(3):
        due_now(stream)
        stream_push(stream=stream)

    assert [p["value"] for p in wattics.posts] == [20, 21, 22, 23, 24, 35, 26, 27]
    late = WatticsLatePacket.objects.get(stream=stream)
    assert late.ts == T0 + Q and late.packet["value"] == 31
    stream.refresh_from_db()
    assert (stream.late_count, stream.round_seq) == (1, None)


def test_a_recreated_stream_resumes_after_the_collectors_last_packet_without_late_history(
        deployment, account, make_stream, wattics):
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [20, 21, 22])
    stream_push(stream=stream)
    device = stream.device
    stream.delete()
    ingest(deployment, device, "temperature", [None, None, None, 23, 24])

    from apps.wattics.services import stream_create

    again = stream_create(device=device, meter_id="wm-1", kind="single",
                          channels={"value": "temperature"}, timezone="Europe/Madrid")
    stream_push(stream=again)

    assert [p["value"] for p in wattics.posts] == [20, 21, 22, 23, 24]
    again.refresh_from_db()
    assert (again.late_count, again.held_count) == (0, 3)
    assert not WatticsLatePacket.objects.filter(stream=again).exists()


def test_a_round_cut_short_leaves_the_stream_with_work_until_the_sweep_ends(
        deployment, account, make_stream, wattics, settings):
    from apps.wattics.services import stream_plan

    settings.WATTICS_PLAN_MAX_READINGS = 2
    stream = make_stream(deployment)
    ingest(deployment, stream.device, "temperature", [20.0, 20.5, 21.0])
    stream_plan(stream=stream)  # the first two instants
    stream.link.refresh_from_db()
    assert stream.link.examined_commit_seq == 0
    stream_plan(stream=stream)  # the last one: the sweep is done
    stream.link.refresh_from_db()
    assert stream.link.examined_commit_seq > 0
