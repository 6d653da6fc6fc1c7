"""The shared cache (Redis in production) speeds the hub up; the database holds the truth.

Code that can go on without the cache catches `CACHE_ERRORS`, logs, and carries on: an
unreachable Redis must not fail a partner's push or charge a delivery attempt to a batch.
"""

from __future__ import annotations

from redis.exceptions import RedisError

# redis-py raises its own ConnectionError / TimeoutError for socket failures.
CACHE_ERRORS: tuple[type[BaseException], ...] = (RedisError,)
