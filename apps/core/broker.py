"""The Redis broker transport, with one fix: a worker outlives Redis going away.

When Redis goes away while a worker holds unacknowledged messages (tasks are acked late),
Celery closes the broken connection twice: once to collect it, once to release it.
- The first close of the task channel fails on its pending BRPOP, so the channel stays open.
- The transport then lets go of its connection settings.
- The second close puts the channel's unacknowledged messages back in their queues, which
  needs a Redis client, built from settings that are gone. kombu 5.7 answers with an
  AttributeError; Celery does not count it as a connection error, logs "Unrecoverable error"
  and the worker exits, and every queue waits for someone to restart it.

A task that finishes after the loss hits the same wall when it acknowledges its message.

Here a channel keeps its own copy of the settings it connected with. After the loss, putting
messages back or acknowledging one works if Redis is there, and otherwise fails with a Redis
ConnectionError, which kombu and Celery already handle: the worker reconnects when Redis is
back. Nothing is lost either way: a message not put back stays in Redis's unacked index, and
Redis returns it to its queue after the visibility timeout.
"""

from __future__ import annotations

import kombu.transport
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

CONNECTION_GONE = "the broker connection is closed and this channel never made a client"


class Channel(kombu_redis.Channel):
    # The settings of the last plain (not event-loop) client, a dict of host, port,
    # credentials, db and the connection class; `None` until the channel first needs one.
    _settings: dict | None = None

    def _connparams(self, asynchronous: bool = False) -> dict:
        if self.connection is not None and self.connection.client is not None:
            params = super()._connparams(asynchronous=asynchronous)
            if not asynchronous:
                self._settings = dict(params)
            return params
        # An event-loop client is registered with the transport's poller, gone with it.
        if asynchronous or self._settings is None:
            raise RedisConnectionError(CONNECTION_GONE)
        return dict(self._settings)


class Transport(kombu_redis.Transport):
    Channel = Channel


def install() -> None:
    """Make `redis://` broker URLs use this transport, in this process.

    The URL's scheme names the transport, so URLs, the worker's banner and its "Connected to"
    line read as usual. `rediss://` and `sentinel://` keep kombu's own transports.
    """
    kombu.transport.TRANSPORT_ALIASES["redis"] = f"{__name__}:Transport"
    kombu.transport._transport_cache.pop("redis", None)
