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
