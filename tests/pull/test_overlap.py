"""The sync's helper threads: pages fetched ahead, one flush stored behind."""

from __future__ import annotations

import threading

import pytest

from apps.core.models import Deployment
from apps.pull.services.overlap import BehindStore


@pytest.mark.django_db
def test_the_store_works_on_its_own_thread_in_the_callers_transaction_in_order():
    # The test's transaction is open and uncommitted: only the caller's own connection sees
    # this row, so the helper finding it proves it used that connection.
    Deployment.objects.create(slug="behind", name="Behind")
    done: list[tuple] = []
    store = BehindStore(on_done=lambda result: done.append((result, threading.get_ident())))

    def work(tag: str) -> tuple[str, int, int]:
        return tag, Deployment.objects.filter(slug="behind").count(), threading.get_ident()

    store.submit(work, "first")
    store.submit(work, "second")  # waits for the first: one piece in flight at a time
    assert [result[0] for result, _ in done] == ["first"]
    store.close()

    caller = threading.get_ident()
    assert [(tag, seen) for (tag, seen, _), _ in done] == [("first", 1), ("second", 1)]
    assert all(worker != caller for (_, _, worker), _ in done)
    assert all(thread == caller for _, thread in done)  # results handed over on the caller's


@pytest.mark.django_db
def test_an_error_in_the_store_is_raised_in_the_caller_and_close_still_stops_the_helper():
    store = BehindStore(on_done=lambda result: None)

    def failing() -> None:
        raise RuntimeError("disk full")

    store.submit(failing)
    with pytest.raises(RuntimeError, match="disk full"):
        store.wait()
    store.submit(lambda: "after")
    store.close()
    store.close()  # a second close is harmless
    assert store._pool is None
