"""The Redis broker transport: a worker whose Redis goes away keeps running.

After a lost connection Celery collects the connection, then releases it. In the worker's
logs the task channel comes out of the first pass still open (its pending BRPOP failed), the
transport has let go of its settings, and the release closes the channel while it holds
unacknowledged messages. `lose_connection` brings a channel to that state. kombu's transport
raises an AttributeError there, which kills the worker; the hub's raises nothing.

These tests run their own Redis, stopped and started on the same port.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import redis
from django.conf import settings
from kombu import Connection
from kombu.common import ignore_errors
from kombu.transport import get_transport_cls

from apps.core.broker import CONNECTION_GONE, Transport
from config.celery import app
from tests.faults.harness import REDIS_SERVER, free_port

KOMBU_REDIS = "kombu.transport.redis:Transport"
HUB_REDIS = "apps.core.broker:Transport"
BODY = b"reading batch 42"


class PrivateRedis:
    """A redis-server of the test's own, with an append-only file so a clean stop keeps data."""

    def __init__(self, directory):
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait(up=True)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self._wait(up=False)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def _wait(self, up: bool) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                answered = self.client().ping()
            except redis.exceptions.ConnectionError:
                answered = False
            if answered == up:
                return
            time.sleep(0.05)
        raise AssertionError(f"redis on port {self.port} did not {'start' if up else 'stop'}")


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait(10)


def take_unacked(conn: Connection, queue: str = "q"):
    """Publish a message and take it without acknowledging it, as an acks-late worker does."""
    channel = conn.default_channel
    channel.queue_declare(queue)
    channel.basic_publish(channel.prepare_message(BODY), "", queue)
    message = channel.basic_get(queue, no_ack=False)
    assert message is not None and message.body == BODY
    return message


def lose_connection(conn: Connection) -> None:
    """Celery's teardown, from where the task channel's first close has failed: the
    transport lets go of its settings, then the connection is released."""
    conn._do_close_transport()
    ignore_errors(conn, conn.close)


def in_queue(server: PrivateRedis, queue: str = "q") -> int:
    return server.client().llen(queue)


def unacked(server: PrivateRedis) -> int:
    return server.client().hlen("unacked")


def test_kombu_transport_raises_an_error_celery_does_not_handle(private_redis):
    conn = Connection(private_redis.url, transport=KOMBU_REDIS)
    take_unacked(conn)
    with pytest.raises(AttributeError, match="hostname"):
        lose_connection(conn)


def test_with_redis_there_the_message_is_put_back_at_once(private_redis):
    conn = Connection(private_redis.url, transport=HUB_REDIS)
    take_unacked(conn)
    assert (in_queue(private_redis), unacked(private_redis)) == (0, 1)

    lose_connection(conn)

    assert (in_queue(private_redis), unacked(private_redis)) == (1, 0)


def test_with_redis_gone_a_task_finished_meanwhile_is_acknowledged_once_it_is_back(
        private_redis):
    conn = Connection(private_redis.url, transport=HUB_REDIS)
    message = take_unacked(conn)
    private_redis.stop()

    lose_connection(conn)  # putting the message back fails as a connection error, handled

    private_redis.start()  # with its data: the message is still in the unacked index
    assert (in_queue(private_redis), unacked(private_redis)) == (0, 1)
    message.ack()
    assert (in_queue(private_redis), unacked(private_redis)) == (0, 0)


def test_with_redis_gone_an_unacknowledged_message_comes_back_after_the_visibility_timeout(
        private_redis):
    conn = Connection(private_redis.url, transport=HUB_REDIS)
    take_unacked(conn)
    private_redis.stop()
    lose_connection(conn)
    private_redis.start()

    later = Connection(private_redis.url, transport=HUB_REDIS,
                       transport_options={"visibility_timeout": 0})
    try:
        later.default_channel.qos.restore_visible(num=10)
        message = later.default_channel.basic_get("q", no_ack=True)
        assert message is not None and message.body == BODY
    finally:
        later.close()


def test_a_channel_that_never_made_a_client_raises_a_connection_error(private_redis):
    conn = Connection(private_redis.url, transport=HUB_REDIS)
    channel = conn.channel()
    conn._do_close_transport()
    with pytest.raises(redis.exceptions.ConnectionError, match=CONNECTION_GONE):
        channel.qos.restore_unacked()
    assert redis.exceptions.ConnectionError in Connection(transport=HUB_REDIS).connection_errors


def test_the_hub_uses_it_for_a_redis_broker():
    assert app.conf.broker_url.startswith("redis://")
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, Transport)
        assert conn.as_uri().startswith("redis://")  # the worker's "Connected to" line
    assert get_transport_cls("rediss") is not Transport  # TLS keeps kombu's own


def test_celerys_reminder_on_a_lost_connection_is_not_logged_other_warnings_are():
    code = (
        "import warnings\n"
        "from celery import signals\n"
        "from celery.exceptions import CPendingDeprecationWarning\n"
        "from celery.worker.consumer.consumer import CANCEL_TASKS_BY_DEFAULT\n"
        "import config.celery\n"
        # What Celery's logging setup does in a worker, before the worker's setup is done.
        "warnings.filterwarnings('always', category=CPendingDeprecationWarning)\n"
        "signals.celeryd_after_setup.send(sender='test@host', instance=None, conf=None)\n"
        "warnings.warn(CANCEL_TASKS_BY_DEFAULT, CPendingDeprecationWarning)\n"
        "warnings.warn('another reminder', CPendingDeprecationWarning)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=settings.BASE_DIR)
    assert done.returncode == 0, done.stderr
    assert "another reminder" in done.stderr
    assert "In Celery 5.1" not in done.stderr
