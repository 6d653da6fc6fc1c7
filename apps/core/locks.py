"""Locks shared by every worker: single-flight jobs, and one reading writer per deployment."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.core.cache import cache
from django.db import connection

from apps.core.cache import CACHE_ERRORS

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock(class, deployment id): see `lock_deployment_readings`.
_READINGS_LOCK_CLASS = 0x4855


class AlreadyRunning(RuntimeError):
    pass


def _process_namespace() -> str:
    """This machine's boot and PID namespace: where a holder's pid can be checked."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


_NAMESPACE = _process_namespace()


def _holder_dead(holder: object) -> bool:
    """True if `holder` (a lock token) names a process of our namespace that has exited."""
    if not _NAMESPACE or not isinstance(holder, str):
        return False
    namespace, _, rest = holder.rpartition("|")
    pid = rest.partition(":")[0]
    if namespace != _NAMESPACE or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


@contextmanager
def single_flight(name: str, *, ttl: int) -> Iterator[None]:
    """Hold the lock `name` while the block runs; raise AlreadyRunning if another holds it.

    `ttl` bounds how long a crashed holder can block others: set it above the task's hard
    time limit. A holder that was killed (SIGKILL, OOM) on this machine is noticed at once
    and its lock taken over, so a restarted worker does not wait for the ttl. Release only
    deletes the lock if it is still ours.
    """
    key = f"lock:{name}"
    token = f"{_NAMESPACE}|{os.getpid()}:{uuid.uuid4().hex}"
    if not cache.add(key, token, timeout=ttl):
        holder = cache.get(key)
        # One taker per dead holder: the add on the takeover key is the compare-and-set.
        if not (_holder_dead(holder)
                and cache.add(f"{key}:takeover:{holder}", token, timeout=ttl)
                and cache.get(key) == holder):
            raise AlreadyRunning(f"{name} is already running")
        cache.set(key, token, timeout=ttl)
    try:
        yield
    finally:
        try:
            if cache.get(key) == token:
                cache.delete(key)
        except CACHE_ERRORS as exc:
            # Redis went away while we held the lock: it returns empty, or the ttl ends it.
            logger.warning("lock %s not released, the cache is unavailable: %s", name, exc)


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
