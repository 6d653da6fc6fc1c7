"""Per-key throttling: a fixed one-minute window counted atomically on every cache backend.

DRF's SimpleRateThrottle keeps a list of timestamps per client and rewrites it on every
request (read-modify-write, racy across workers); a counter per window is one `INCR`. Only
Redis increments atomically by itself, and even there Django's `incr` checks existence and
increments in two round trips (a key expiring between them comes back without a TTL). The
embedded file cache increments by reading and rewriting a file, so parallel clients
overwrite each other's counts: there the counter is taken under an exclusive lock on a file
beside the cache, shared by every process of the machine (the only ones that share that
cache directory).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.filebased import FileBasedCache
from django.core.cache.backends.redis import RedisCache
from django.utils.connection import ConnectionProxy
from rest_framework.throttling import BaseThrottle

from apps.partner_api.auth import LAST_USED_EVERY, Partner, key_touch

WINDOW = 60
TTL = WINDOW + 5
logger = logging.getLogger(__name__)
_THREAD_LOCK = threading.Lock()
_clock = time.time  # replaced in tests that need one window


@contextmanager
def _exclusive(store: BaseCache) -> Iterator[None]:
    with _THREAD_LOCK:
        if not isinstance(store, FileBasedCache):
            yield  # the local-memory cache: one process, the thread lock is enough
            return
        os.makedirs(store._dir, exist_ok=True)
        # The cache culls only its own *.djcache files, so the lock file stays put.
        fd = os.open(os.path.join(store._dir, "partner_api_rate.lock"), os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


def rate_count(name: str, *, store: BaseCache = cache) -> int:
    """Add one to the counter `name` and return the new value, atomically."""
    return rate_count_marking(name, store=store)[0]


def rate_count_marking(name: str, *, store: BaseCache = cache,
                       mark: tuple[str, int] | None = None) -> tuple[int, bool | None]:
    """rate_count, and on Redis, in the same round trip, `mark` (name, seconds) set if absent.

    The second value says whether the mark was absent (auth.key_touch): None when not
    asked, or on a cache other than Redis.
    """
    if isinstance(store, ConnectionProxy):
        # `django.core.cache.cache` stands for the backend but is not one: seen through it,
        # Redis would take the slow path and the file cache would go without its lock.
        store = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(store, RedisCache):
        key = store.make_and_validate_key(name)
        client = store._cache.get_client(key, write=True)
        pipe = client.pipeline()  # MULTI/EXEC: the increment and its TTL together
        pipe.incr(key)
        pipe.expire(key, TTL)
        if mark:
            pipe.set(store.make_and_validate_key(mark[0]), 1, nx=True, ex=mark[1])
        done = pipe.execute()
        return int(done[0]), bool(done[2]) if mark else None
    with _exclusive(store):
        if store.add(name, 1, timeout=TTL):
            return 1, None
        try:
            return store.incr(name), None
        except ValueError:  # expired between add and incr
            store.set(name, 1, timeout=TTL)
            return 1, None


class KeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        partner = request.user
        if not isinstance(partner, Partner):
            return True
        limit = partner.key.rate_per_minute or settings.PARTNER_API_RATE_PER_MINUTE
        now = _clock()
        window = int(now // WINDOW)
        name = f"partner_api:rate:{partner.key.prefix}:{window}"
        self.reset = (window + 1) * WINDOW - now
        try:
            used, due = rate_count_marking(name, mark=(f"partner_api:used:{partner.key.prefix}",
                                               LAST_USED_EVERY))
        except Exception as exc:
            # The counter lives in the cache (Redis); without it the request goes through
            # unthrottled rather than failing: the readings it carries go to the database.
            logger.warning("partner API: cache unavailable, key %s not throttled: %s",
                           partner.key.prefix, exc)
            return True
        if due is not None:
            key_touch(partner.key, due=due)
            request.key_touched = True
        request.rate_limit = (limit, max(0, limit - used), int(self.reset + 0.999))
        return used <= limit

    def wait(self) -> float:
        return self.reset
