import pytest

from apps.core.locks import AlreadyRunning, single_flight


def test_second_holder_is_refused_while_the_first_runs():
    with single_flight("sync:1", ttl=60), pytest.raises(AlreadyRunning), single_flight(
        "sync:1", ttl=60
    ):
        pass


def test_lock_is_free_again_after_the_block():
    with single_flight("sync:1", ttl=60):
        pass
    with single_flight("sync:1", ttl=60):
        pass


def test_lock_is_released_when_the_block_raises():
    with pytest.raises(ValueError), single_flight("sync:1", ttl=60):
        raise ValueError("boom")
    with single_flight("sync:1", ttl=60):
        pass


def test_different_names_do_not_block_each_other():
    with single_flight("sync:1", ttl=60), single_flight("sync:2", ttl=60):
        pass


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_lock_of_a_killed_holder_on_this_machine_is_taken_over():
    import os

    from django.core.cache import cache

    from apps.core import locks

    if not locks._NAMESPACE:
        pytest.skip("no /proc: holders cannot be checked")
    cache.set("lock:sync:dead", f"{locks._NAMESPACE}|{_dead_pid()}:x", timeout=60)
    with single_flight("sync:dead", ttl=60):
        assert cache.get("lock:sync:dead").startswith(f"{locks._NAMESPACE}|{os.getpid()}:")
    cache.set("lock:sync:live", f"{locks._NAMESPACE}|{os.getpid()}:x", timeout=60)
    cache.set("lock:sync:elsewhere", f"other-host|{_dead_pid()}:x", timeout=60)
    with pytest.raises(AlreadyRunning), single_flight("sync:live", ttl=60):
        pass
    with pytest.raises(AlreadyRunning), single_flight("sync:elsewhere", ttl=60):
        pass
    cache.delete_many(["lock:sync:live", "lock:sync:elsewhere"])


def test_lock_held_when_the_cache_goes_away_does_not_fail_the_block(settings, caplog):
    """Redis stopped while a job ran: the job's outcome stands; the lock is left to Redis
    (which returns empty) or its ttl."""
    done = []
    with single_flight("sync:outage", ttl=60):
        settings.CACHES = {
            **settings.CACHES,
            "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"},
        }
        done.append(True)
    assert done == [True]
    assert "lock sync:outage not released, the cache is unavailable" in caplog.text
