"""The rate counter counts every request exactly once, whatever the cache and the parallelism."""

import multiprocessing
import threading
import uuid

import pytest
from django.conf import settings
from django.core.cache.backends.filebased import FileBasedCache
from django.core.cache.backends.redis import RedisCache
from django.db import connection

from apps.partner_api.throttling import rate_count

PROCESSES, EACH = 6, 60


def _stores(tmp_path):
    prefix = f"rate-test-{uuid.uuid4().hex}"
    yield "file", lambda: FileBasedCache(str(tmp_path / "cache"), {})
    yield "redis", lambda: RedisCache(settings.CACHES["default"]["LOCATION"],
                                      {"KEY_PREFIX": prefix})


def _count_many(make_store, name, out):
    store = make_store()
    out.put([rate_count(name, store=store) for _ in range(EACH)])


@pytest.mark.parametrize("backend", ["file", "redis"])
def test_parallel_processes_each_get_a_distinct_count(tmp_path, backend):
    make_store = dict(_stores(tmp_path))[backend]
    name = f"partner_api:rate:test:{uuid.uuid4().hex}"
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    workers = [context.Process(target=_count_many, args=(make_store, name, out))
               for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    counts = sorted(c for _ in workers for c in out.get(timeout=60))
    for worker in workers:
        worker.join(timeout=60)
    # Lost updates would show as repeated counts and a total below the requests made.
    assert counts == list(range(1, PROCESSES * EACH + 1))
    assert make_store().get(name) == PROCESSES * EACH


@pytest.mark.django_db(transaction=True)
def test_parallel_clients_get_exactly_the_limit_and_429_after(deployment, make_key,
                                                              monkeypatch):
    from rest_framework.test import APIClient

    from apps.partner_api import throttling

    window_start = (int(throttling.time.time()) // 60 + 1) * 60.0
    monkeypatch.setattr(throttling, "_clock", lambda: window_start)  # one window

    _, raw = make_key(deployment, rate=50)
    statuses: list[int] = []

    def client_run():
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=raw)
        try:
            statuses.extend(client.get("/api/v1/assets/").status_code for _ in range(15))
        finally:
            connection.close()

    threads = [threading.Thread(target=client_run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (statuses.count(200), statuses.count(429)) == (50, 40)


def _count_many_default(name, out):
    out.put([rate_count(name) for _ in range(EACH)])


def test_the_default_cache_is_counted_as_the_backend_it_stands_for(tmp_path, settings):
    """`rate_count` without a store uses `django.core.cache.cache`, a proxy: the embedded
    file cache behind it still takes the lock (parallel processes, exact counts)."""
    settings.CACHES = {"default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(tmp_path / "cache")}}
    name = f"partner_api:rate:test:{uuid.uuid4().hex}"
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    workers = [context.Process(target=_count_many_default, args=(name, out))
               for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    counts = sorted(c for _ in workers for c in out.get(timeout=60))
    for worker in workers:
        worker.join(timeout=60)
    assert counts == list(range(1, PROCESSES * EACH + 1))


def test_on_redis_the_default_cache_counts_and_marks_in_one_round_trip():
    """Through the proxy too, Redis answers the count and the key's last-use mark together
    (a pipeline), so the throttle needs no second round trip."""
    from apps.partner_api.throttling import rate_count_marking

    name, mark = f"rate-{uuid.uuid4().hex}", f"used-{uuid.uuid4().hex}"
    assert rate_count_marking(name, mark=(mark, 60)) == (1, True)
    assert rate_count_marking(name, mark=(mark, 60)) == (2, False)
