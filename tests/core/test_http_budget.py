"""The rate-limit budget kept in process between requests, and still shared through the cache."""

from __future__ import annotations

import pytest
import responses
from django.core.cache import cache

from apps.core.http import RateLimitBudget
from tests.core.test_http import BASE, FakeTime, make_client

pytestmark = pytest.mark.usefixtures("_clear_cache")


class CountingCache:
    """The real cache, with its reads and writes counted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.gets = self.sets = 0
        real_get, real_set = cache.get, cache.set

        def get(*args, **kwargs):
            self.gets += 1
            return real_get(*args, **kwargs)

        def set_(*args, **kwargs):
            self.sets += 1
            return real_set(*args, **kwargs)

        monkeypatch.setattr("apps.core.http.budgets.cache.get", get)
        monkeypatch.setattr("apps.core.http.budgets.cache.set", set_)


def headers(remaining: int, reset: int = 60) -> dict[str, str]:
    return {"X-RateLimit-Remaining": str(remaining), "X-RateLimit-Reset": str(reset)}


def test_far_from_the_limit_the_cache_is_read_and_written_once_per_second(monkeypatch):
    fake = FakeTime()
    counted = CountingCache(monkeypatch)
    budget = RateLimitBudget("p", "k", clock=fake.clock)
    for page in range(100):  # a hundred pages in 0.99 s
        assert budget.wait_needed() == 0.0
        budget.record(headers(5000 - page))
        fake.now += 0.0099
    assert (counted.gets, counted.sets) == (1, 1)
    fake.now += 0.02
    budget.wait_needed()
    budget.record(headers(4899))
    assert (counted.gets, counted.sets) == (2, 2)


def test_near_the_limit_every_request_reads_and_writes_the_shared_budget(monkeypatch):
    fake = FakeTime()
    counted = CountingCache(monkeypatch)
    budget = RateLimitBudget("p", "k", reserve=1, clock=fake.clock)
    budget.record(headers(8))
    for remaining in (7, 6, 5):
        budget.wait_needed()
        budget.record(headers(remaining))
    assert (counted.gets, counted.sets) == (3, 4)


def test_another_workers_exhausted_budget_stops_this_one_within_a_recheck():
    fake = FakeTime()
    mine = RateLimitBudget("p", "k", clock=fake.clock)
    theirs = RateLimitBudget("p", "k", clock=fake.clock)
    mine.record(headers(5000))
    assert mine.wait_needed() == 0.0
    theirs.record(headers(0, reset=30))  # near the limit: shared at once
    fake.now += RateLimitBudget.RECHECK_SECONDS
    assert mine.wait_needed() == pytest.approx(30 - RateLimitBudget.RECHECK_SECONDS)


def test_a_worker_near_the_limit_sees_the_others_at_once():
    fake = FakeTime()
    mine = RateLimitBudget("p", "k", reserve=1, clock=fake.clock)
    theirs = RateLimitBudget("p", "k", reserve=1, clock=fake.clock)
    mine.record(headers(5))
    assert mine.wait_needed() == 0.0
    theirs.record(headers(1, reset=20))
    assert mine.wait_needed() == pytest.approx(20)


def test_the_client_waits_for_the_reset_its_own_last_answer_gave():
    fake = FakeTime()
    with responses.RequestsMock() as mocked:
        mocked.get(f"{BASE}/meters", headers=headers(0, reset=15))
        mocked.get(f"{BASE}/meters", status=200)
        client = make_client(fake)
        client.get("/meters")
        client.get("/meters")
    assert fake.sleeps == [15.0]
