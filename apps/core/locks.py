"""Single-flight: at most one run of a named job at a time, across every worker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache import cache


class AlreadyRunning(RuntimeError):
    pass


@contextmanager
def single_flight(name: str, *, ttl: int) -> Iterator[None]:
    """Hold the lock `name` while the block runs; raise AlreadyRunning if another holds it.

    `ttl` bounds how long a crashed holder can block others: set it above the task's hard
    time limit. Release only deletes the lock if it is still ours.
    """
    key = f"lock:{name}"
    token = uuid.uuid4().hex
    if not cache.add(key, token, timeout=ttl):
        raise AlreadyRunning(f"{name} is already running")
    try:
        yield
    finally:
        if cache.get(key) == token:
            cache.delete(key)
