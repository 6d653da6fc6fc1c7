"""Overlap in a sync: pages fetched ahead on a helper thread, stores behind on another.

`prefetched` lets the provider's time to answer and the hub's time to convert overlap;
`BehindStore` lets the database absorb one flush of readings while the sync fetches and
converts the next. Both keep memory bounded: a few pages ahead, one flush behind.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from django import db
from django.db import DEFAULT_DB_ALIAS

from apps.pull.client import Page


class BehindStore:
    """One piece of database work at a time on a helper thread, on the caller's connection.

    The helper uses the caller's own connection (Django's thread sharing, as its live test
    server does), so the work sees what the caller's transaction sees, and a sync holds one
    connection, not two. The caller must leave the connection alone while work is in flight:
    `wait()` first (`submit` does it for the next piece; the sync does it before it writes a
    quarantine entry). `on_done` gets each piece's result on the caller's thread, in order;
    an error in the work is raised there too. `close()` never returns with work running.
    """

    def __init__(self, on_done: Callable[[Any], None]) -> None:
        self._on_done = on_done
        self._db = db.connections[DEFAULT_DB_ALIAS]
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def submit(self, work: Callable[..., Any], *args: Any) -> None:
        self.wait()
        if self._pool is None:
            self._db.inc_thread_sharing()
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pull-store")
        self._pending = self._pool.submit(self._run, work, args)

    def _run(self, work: Callable[..., Any], args: tuple) -> Any:
        db.connections[DEFAULT_DB_ALIAS] = self._db  # this thread's alias: the caller's
        return work(*args)

    def wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._on_done(pending.result())

    def close(self) -> None:
        if self._pool is None:
            return
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)
            self._pool = None
            self._db.dec_thread_sharing()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def prefetched(pages: Iterator[Page], depth: int = 4) -> Iterator[Page]:
    """The pages of ``pages``, fetched and decoded by a helper thread up to ``depth`` ahead.

    The provider's time to answer and the hub's time to store then overlap instead of
    adding up; memory stays bounded by ``depth`` pages. Errors surface in the caller, in
    order; a caller that stops early stops the helper too.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for page in pages:
                if not offer(page):
                    return
            outcome: object = _DONE
        except BaseException as exc:
            outcome = _Failure(exc)
        finally:
            db.connections.close_all()  # a token refresh may have opened one here
        offer(outcome)

    helper = threading.Thread(target=produce, name="pull-prefetch", daemon=True)
    helper.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        helper.join(timeout=30)
