"""The delivery outbox: what a platform receives, in which order, and what happens on failure."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from dataclasses import dataclass

import pytest
from django.db import connection
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError

from apps.core.http import PermanentError, TransientError
from apps.core.models import DeliveryLink, OutboundBatch
from apps.core.services.outbox import (
    Outcome,
    batch_enqueue,
    batch_record,
    batch_requeue,
    batches_claim,
    link_get_or_create,
    link_planned_seq,
    link_reactivate,
    outbox_dispatch,
)

pytestmark = pytest.mark.django_db

State = OutboundBatch.State


@dataclass(frozen=True, slots=True)
class Received:
    link: str
    position: int
    seq_from: int | None
    seq_to: int | None
    payload: object


class FakePlatform:
    """Stands in for an integration's `send`: keeps what it received, answers as scripted.

    Unscripted batches are accepted; a scripted answer is an Outcome to return or an
    exception to raise, used once each, in order.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._answers: dict[int, list[Outcome | Exception]] = {}

    def answer(self, batch: OutboundBatch, *answers: Outcome | Exception) -> None:
        self._answers.setdefault(batch.pk, []).extend(answers)

    def __call__(self, batch: OutboundBatch) -> Outcome:
        self.received.append(Received(batch.link.name, batch.position, batch.seq_from,
                                      batch.seq_to, batch.payload))
        answers = self._answers.get(batch.pk)
        answer = answers.pop(0) if answers else Outcome(ok=True, status=200, body="accepted")
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def positions(self) -> list[int]:
        return [r.position for r in self.received]


def unavailable(retry_after: float | None = None) -> TransientError:
    return TransientError("platform answered 503; retry later", status_code=503,
                          body="busy", retry_after=retry_after)


def refused() -> PermanentError:
    return PermanentError("platform answered 401: the API key was revoked; issue a new key",
                          status_code=401, body='{"error": "invalid key"}')


def seconds(n: float) -> dt.timedelta:
    return dt.timedelta(seconds=n)


@pytest.fixture
def link(deployment):
    return link_get_or_create(platform="wattics", name="Acme stream", deployment=deployment)


@pytest.fixture
def unordered_link(deployment):
    return link_get_or_create(platform="dexma", name="Acme gateway", deployment=deployment,
                              ordered=False)


@pytest.fixture
def platform():
    return FakePlatform()


def enqueue_ranges(link: DeliveryLink, *bounds: int) -> list[OutboundBatch]:
    """Enqueue consecutive seq ranges: bounds 0, 10, 20 → (0, 10], (10, 20]."""
    return [batch_enqueue(link=link, seq_from=lo, seq_to=hi, item_count=hi - lo)
            for lo, hi in itertools.pairwise(bounds)]


def reload(obj):
    obj.refresh_from_db()
    return obj


# --- Links and enqueueing -------------------------------------------------------------------


def test_link_get_or_create_returns_the_existing_link(deployment, link):
    again = link_get_or_create(platform="wattics", name="Acme stream", deployment=deployment)

    assert again.pk == link.pk


def test_link_name_taken_by_another_deployment_is_refused(other_deployment, link):
    with pytest.raises(ValueError, match="already belongs to deployment"):
        link_get_or_create(platform="wattics", name="Acme stream", deployment=other_deployment)


def test_enqueueing_the_same_range_again_returns_the_existing_batch(link):
    first = batch_enqueue(link=link, seq_from=0, seq_to=10)
    again = batch_enqueue(link=link, seq_from=0, seq_to=10)

    assert again.pk == first.pk
    assert first.idempotency_key == f"wattics:{link.pk}:0-10"
    assert link.batches.count() == 1


def test_enqueueing_the_same_custom_key_again_returns_the_existing_batch(link):
    first = batch_enqueue(link=link, payload={"sites": ["hq"]}, key="wattics:sites:2025-01")
    again = batch_enqueue(link=link, payload={"sites": ["hq"]}, key="wattics:sites:2025-01")

    assert again.pk == first.pk
    assert link.batches.count() == 1


def test_custom_key_of_another_links_batch_is_refused(link, unordered_link):
    batch_enqueue(link=link, payload={}, key="shared-key")

    with pytest.raises(ValueError, match="already used by a batch of link"):
        batch_enqueue(link=unordered_link, payload={}, key="shared-key")


def test_batch_without_range_or_key_is_refused(link):
    with pytest.raises(ValueError, match="needs an idempotency key"):
        batch_enqueue(link=link, payload={"x": 1})


def test_empty_range_is_refused(link):
    with pytest.raises(ValueError, match="seq_to must exceed seq_from"):
        batch_enqueue(link=link, seq_from=10, seq_to=10)


def test_positions_increase_per_link(link, unordered_link):
    a1, a2 = enqueue_ranges(link, 0, 10, 20)
    b1 = batch_enqueue(link=unordered_link, seq_from=0, seq_to=5)
    a3 = batch_enqueue(link=link, payload={}, key="extra")

    assert [a1.position, a2.position, a3.position] == [1, 2, 3]
    assert b1.position == 1


def test_planning_continues_after_the_last_enqueued_range(link):
    link.cursor = 5
    link.save()
    enqueue_ranges(link, 5, 10, 30)

    assert link_planned_seq(link=link) == 30


def test_planning_starts_at_the_cursor_when_nothing_is_enqueued(link):
    link.cursor = 42
    link.save()

    assert link_planned_seq(link=link) == 42


# --- Order and concurrency within a link ------------------------------------------------------


def test_dispatch_sends_an_ordered_links_batches_in_position_order(link, platform):
    enqueue_ranges(link, 0, 10, 20, 30)

    result = outbox_dispatch(send=platform)

    assert [(r.seq_from, r.seq_to) for r in platform.received] == [(0, 10), (10, 20), (20, 30)]
    assert result.sent == 3
    assert set(link.batches.values_list("state", flat=True)) == {State.SENT}


def test_later_batch_waits_while_an_earlier_one_is_in_retry(link, platform, settings):
    settings.OUTBOX_RETRY_SCHEDULE = [10]
    first, _second = enqueue_ranges(link, 0, 10, 20)
    platform.answer(first, unavailable())
    t0 = timezone.now()

    outbox_dispatch(send=platform, now=t0)
    outbox_dispatch(send=platform, now=t0 + seconds(5))
    assert platform.positions == [1]

    outbox_dispatch(send=platform, now=t0 + seconds(11))
    assert platform.positions == [1, 1, 2]


def test_dead_batch_does_not_block_the_next(link, platform, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 1
    first, _second = enqueue_ranges(link, 0, 10, 20)
    platform.answer(first, unavailable())

    result = outbox_dispatch(send=platform)

    assert platform.positions == [1, 2]
    assert (result.dead, result.sent) == (1, 1)


def test_ordered_link_has_one_batch_in_flight(link):
    enqueue_ranges(link, 0, 10, 20, 30)

    claimed = batches_claim(limit=3)

    assert [b.position for b in claimed] == [1]


def test_unordered_link_has_several_batches_in_flight(unordered_link):
    enqueue_ranges(unordered_link, 0, 10, 20, 30)

    claimed = batches_claim(limit=3)

    assert sorted(b.position for b in claimed) == [1, 2, 3]
    assert {b.state for b in claimed} == {State.SENDING}


def test_unordered_link_sends_past_a_batch_in_retry(unordered_link, platform):
    first, _, _ = enqueue_ranges(unordered_link, 0, 10, 20, 30)
    platform.answer(first, unavailable())

    outbox_dispatch(send=platform)

    assert platform.positions == [1, 2, 3]


def test_dispatch_stops_at_limit(unordered_link, platform):
    enqueue_ranges(unordered_link, 0, 10, 20, 30)

    outbox_dispatch(send=platform, limit=2)

    assert platform.positions == [1, 2]


def test_dispatch_sends_only_the_platform_asked_for(link, unordered_link, platform):
    enqueue_ranges(link, 0, 10)
    enqueue_ranges(unordered_link, 0, 10)

    outbox_dispatch(send=platform, platform="dexma")

    assert [r.link for r in platform.received] == ["Acme gateway"]


def test_payload_batch_reaches_the_platform_as_enqueued(link, platform):
    batch_enqueue(link=link, payload={"sites": ["hq", "lab"]}, key="wattics:sites:1")

    outbox_dispatch(send=platform)

    assert platform.received[0].payload == {"sites": ["hq", "lab"]}


# --- Failures --------------------------------------------------------------------------------


def test_transient_failures_are_retried_per_the_schedule_whose_last_step_repeats(
    link, platform, settings
):
    settings.OUTBOX_RETRY_SCHEDULE = [10, 60]
    (batch,) = enqueue_ranges(link, 0, 10)
    platform.answer(batch, unavailable(), unavailable(), unavailable())
    t0 = timezone.now()

    outbox_dispatch(send=platform, now=t0)
    assert reload(batch).next_attempt_at == t0 + seconds(10)
    t1 = t0 + seconds(10)
    outbox_dispatch(send=platform, now=t1)
    assert reload(batch).next_attempt_at == t1 + seconds(60)
    t2 = t1 + seconds(60)
    outbox_dispatch(send=platform, now=t2)
    assert reload(batch).next_attempt_at == t2 + seconds(60)

    assert platform.positions == [1, 1, 1]
    assert (batch.state, batch.attempts, batch.last_status) == (State.RETRY, 3, 503)


def test_transient_failure_honours_a_larger_retry_after(link, platform, settings):
    settings.OUTBOX_RETRY_SCHEDULE = [10]
    (batch,) = enqueue_ranges(link, 0, 10)
    platform.answer(batch, unavailable(retry_after=120))
    t0 = timezone.now()

    outbox_dispatch(send=platform, now=t0)

    assert reload(batch).next_attempt_at == t0 + seconds(120)


def test_transient_failure_keeps_the_schedule_over_a_smaller_retry_after(
    link, platform, settings
):
    settings.OUTBOX_RETRY_SCHEDULE = [10]
    (batch,) = enqueue_ranges(link, 0, 10)
    platform.answer(batch, unavailable(retry_after=2))
    t0 = timezone.now()

    outbox_dispatch(send=platform, now=t0)

    assert reload(batch).next_attempt_at == t0 + seconds(10)


def test_batch_is_dead_after_max_attempts(link, platform, settings):
    settings.OUTBOX_RETRY_SCHEDULE = [1]
    settings.OUTBOX_MAX_ATTEMPTS = 3
    (batch,) = enqueue_ranges(link, 0, 10)
    platform.answer(batch, *[unavailable() for _ in range(5)])
    t0 = timezone.now()

    for step in range(5):
        outbox_dispatch(send=platform, now=t0 + seconds(2 * step))

    assert platform.positions == [1, 1, 1]
    assert reload(batch).state == State.DEAD
    assert "gave up after 3 attempts" in batch.last_error
    assert reload(link).state == DeliveryLink.State.ACTIVE


def test_permanent_failure_kills_the_batch_and_breaks_the_link_with_a_reason(link, platform):
    first, _second = enqueue_ranges(link, 0, 10, 20)
    platform.answer(first, refused())

    result = outbox_dispatch(send=platform)

    assert platform.positions == [1]
    assert result.dead == 1
    assert reload(first).state == State.DEAD
    assert reload(link).state == DeliveryLink.State.BROKEN
    assert "HTTP 401" in link.broken_reason
    assert "API key was revoked" in link.broken_reason
    assert "re-activate this link" in link.broken_reason


def test_permanent_outcome_returned_by_send_breaks_the_link(link, platform):
    (batch,) = enqueue_ranges(link, 0, 10)
    platform.answer(batch, Outcome(ok=False, status=422, error="device 'm1' is unknown",
                                   permanent=True))

    outbox_dispatch(send=platform)

    assert reload(link).state == DeliveryLink.State.BROKEN
    assert "device 'm1' is unknown" in link.broken_reason


def test_unexpected_exception_in_send_is_retried(link, platform):
    (batch,) = enqueue_ranges(link, 0, 10)
    platform.answer(batch, KeyError("meter"))

    result = outbox_dispatch(send=platform)

    assert result.failed == 1
    assert reload(batch).state == State.RETRY
    assert batch.last_error == "KeyError: 'meter'"


def test_unreachable_cache_releases_the_claim_without_charging_an_attempt(
        unordered_link, platform, settings):
    """Redis down is the hub's own failure: the batch keeps its attempts (and so its place
    on the retry schedule), is tried again soon, and the round stops there."""
    settings.OUTBOX_RETRY_SCHEDULE = [10, 30, 60, 300]
    first, _second = enqueue_ranges(unordered_link, 0, 10, 20)
    OutboundBatch.objects.filter(pk=first.pk).update(attempts=3)
    platform.answer(first, RedisConnectionError("Error 111 connecting to 127.0.0.1:6379."))
    t0 = timezone.now()

    result = outbox_dispatch(send=platform, now=t0)

    assert platform.positions == [1]  # the second batch waits for a later round
    assert (result.sent, result.failed, result.dead) == (0, 0, 0)
    reload(first)
    assert (first.state, first.attempts) == (State.RETRY, 3)
    assert first.next_attempt_at == t0 + seconds(10)
    assert "cache is unavailable" in first.last_error

    outbox_dispatch(send=platform, now=t0 + seconds(11))
    assert sorted(platform.positions) == [1, 1, 2]
    assert (reload(first).state, first.attempts) == (State.SENT, 4)


def test_broken_link_is_not_claimed(link, platform):
    enqueue_ranges(link, 0, 10)
    DeliveryLink.objects.filter(pk=link.pk).update(state=DeliveryLink.State.BROKEN)

    outbox_dispatch(send=platform)

    assert platform.received == []


def test_paused_link_is_not_claimed(link, platform):
    enqueue_ranges(link, 0, 10)
    DeliveryLink.objects.filter(pk=link.pk).update(state=DeliveryLink.State.PAUSED)

    outbox_dispatch(send=platform)

    assert platform.received == []


# --- Dead letters and re-activation ---------------------------------------------------------


def test_requeued_dead_batch_is_sent_again(link, platform, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 1
    (batch,) = enqueue_ranges(link, 0, 10)
    platform.answer(batch, unavailable())
    outbox_dispatch(send=platform)

    assert batch_requeue(batches=[reload(batch)]) == 1
    outbox_dispatch(send=platform)

    assert platform.positions == [1, 1]
    assert (reload(batch).state, batch.attempts) == (State.SENT, 1)


def test_requeue_leaves_a_broken_link_broken(link, platform):
    (batch,) = enqueue_ranges(link, 0, 10)
    platform.answer(batch, refused())
    outbox_dispatch(send=platform)

    batch_requeue(batches=[batch])
    outbox_dispatch(send=platform)

    assert platform.positions == [1]
    assert reload(link).state == DeliveryLink.State.BROKEN


def test_reactivated_link_sends_its_requeued_batch(link, platform):
    (batch,) = enqueue_ranges(link, 0, 10)
    platform.answer(batch, refused())
    outbox_dispatch(send=platform)

    link_reactivate(link=link)
    batch_requeue(batches=[batch])
    outbox_dispatch(send=platform)

    assert platform.positions == [1, 1]
    assert (link.state, link.broken_reason) == (DeliveryLink.State.ACTIVE, "")


def test_requeue_ignores_batches_that_are_not_dead(link):
    (batch,) = enqueue_ranges(link, 0, 10)

    assert batch_requeue(batches=[batch]) == 0


# --- Crashes and concurrent dispatchers ------------------------------------------------------


def test_claimed_batch_is_not_claimed_again_before_its_lease_lapses(link, platform, settings):
    enqueue_ranges(link, 0, 10)
    batches_claim()

    outbox_dispatch(send=platform, now=timezone.now() + seconds(settings.OUTBOX_LEASE_SECONDS - 1))

    assert platform.received == []


def test_worker_dying_after_send_resends(link, platform, settings):
    (batch,) = enqueue_ranges(link, 0, 10)
    (claimed,) = batches_claim()
    platform(claimed)  # the platform got it; the worker dies before recording the outcome

    later = timezone.now() + seconds(settings.OUTBOX_LEASE_SECONDS + 1)
    result = outbox_dispatch(send=platform, now=later)

    assert platform.positions == [1, 1]
    assert result.sent == 1
    assert (reload(batch).state, batch.attempts) == (State.SENT, 2)
    assert reload(link).cursor == 10


def test_late_outcome_of_a_lapsed_claim_is_ignored(link, settings):
    enqueue_ranges(link, 0, 10)
    (stale,) = batches_claim()
    later = timezone.now() + seconds(settings.OUTBOX_LEASE_SECONDS + 1)
    (current,) = batches_claim(now=later)

    ignored = batch_record(batch=stale, outcome=Outcome(ok=False, status=401, permanent=True))
    recorded = batch_record(batch=current, outcome=Outcome(ok=True, status=200))

    assert (ignored.state, ignored.link.state) == (State.SENDING, DeliveryLink.State.ACTIVE)
    assert recorded.state == State.SENT


def test_batch_whose_claims_keep_lapsing_goes_dead(link, platform, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 2
    (batch,) = enqueue_ranges(link, 0, 10)
    lease = seconds(settings.OUTBOX_LEASE_SECONDS + 1)
    t0 = timezone.now()
    batches_claim(now=t0)
    batches_claim(now=t0 + lease)

    outbox_dispatch(send=platform, now=t0 + 2 * lease)

    assert platform.received == []
    assert reload(batch).state == State.DEAD
    assert "no outcome was ever recorded" in batch.last_error


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_never_send_the_same_batch(deployment):
    links = [
        link_get_or_create(platform="wattics", name=f"stream {i}", deployment=deployment,
                           ordered=i % 2 == 0)
        for i in range(4)
    ]
    for link in links:
        enqueue_ranges(link, *range(0, 110, 10))
    ordered_ids = {link.pk for link in links if link.ordered}
    sent: list[tuple[str, int, int, int]] = []  # thread, batch, link, position
    in_flight: set[tuple[int, int]] = set()  # (link, batch)
    clashes: list[str] = []
    errors: list[BaseException] = []
    guard = threading.Lock()
    start = threading.Barrier(2)

    def send(batch: OutboundBatch) -> Outcome:
        with guard:
            if any(pk == batch.pk for _, pk in in_flight):
                clashes.append(f"batch {batch.pk} sent twice at once")
            if batch.link_id in ordered_ids and any(lk == batch.link_id for lk, _ in in_flight):
                clashes.append(f"ordered link {batch.link_id} had two batches in flight")
            in_flight.add((batch.link_id, batch.pk))
            sent.append((threading.current_thread().name, batch.pk, batch.link_id,
                         batch.position))
        time.sleep(0.005)
        with guard:
            in_flight.discard((batch.link_id, batch.pk))
        return Outcome(ok=True, status=200)

    def dispatcher() -> None:
        try:
            start.wait()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                outbox_dispatch(send=send, limit=100)
                if not OutboundBatch.objects.exclude(state=State.SENT).exists():
                    break
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher, name=f"dispatcher-{n}") for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert clashes == []
    all_ids = list(OutboundBatch.objects.values_list("pk", flat=True))
    assert len(all_ids) == 40
    assert sorted(pk for _, pk, _, _ in sent) == sorted(all_ids)
    assert {thread for thread, _, _, _ in sent} == {"dispatcher-1", "dispatcher-2"}
    for link_id in ordered_ids:
        assert [pos for _, _, lk, pos in sent if lk == link_id] == list(range(1, 11))


# --- The cursor ------------------------------------------------------------------------------


def test_cursor_advances_to_the_batch_end_on_success(link, platform):
    enqueue_ranges(link, 0, 10, 20)

    outbox_dispatch(send=platform)

    assert reload(link).cursor == 20
    assert link.last_success_at is not None


def test_cursor_stays_put_on_failure(link, platform):
    (batch,) = enqueue_ranges(link, 0, 10)
    platform.answer(batch, unavailable())

    outbox_dispatch(send=platform)

    assert reload(link).cursor == 0
    assert link.last_success_at is None


def test_cursor_never_goes_backwards(unordered_link, platform):
    first, _second = enqueue_ranges(unordered_link, 0, 10, 20)
    platform.answer(first, unavailable())
    outbox_dispatch(send=platform)
    assert reload(unordered_link).cursor == 20

    outbox_dispatch(send=platform, now=timezone.now() + seconds(3600))

    assert platform.positions == [1, 2, 1]
    assert reload(unordered_link).cursor == 20


def test_cursor_follows_what_the_platform_acknowledged(link, platform):
    (batch,) = enqueue_ranges(link, 0, 10)
    platform.answer(batch, Outcome(ok=True, status=200, advance_cursor_to=7))

    outbox_dispatch(send=platform)

    assert reload(link).cursor == 7
