"""Locks shared by every worker: single-flight jobs, and one reading writer per deployment."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache import cache
from django.db import connection

# pg_advisory_xact_lock(class, deployment id): see `lock_deployment_readings`.
_READINGS_LOCK_CLASS = 0x4855


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


def lock_deployment_readings(deployment_id: int) -> None:
    """Until the current transaction ends, be the only writer of this deployment's readings.

    Held by `readings_ingest` for its whole transaction, so readings commit in `seq` order and
    a delivery cursor on `seq` never skips a late commit. Deleting a device takes it too: the
    readings table carries no database foreign keys (they cost more than the ingest itself),
    so this lock is what keeps an ingest from writing readings of a device being deleted.
    A no-op on SQLite, whose writers are serialised anyway.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", [_READINGS_LOCK_CLASS, deployment_id]
            )
