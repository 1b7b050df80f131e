"""A workaround for a Celery 5.7 / kombu 5.7 worker exit when Redis goes away mid-task.

What happens (reproduced in ``tests/e2e/test_worker_redis_loss.py``): the worker holds an
unacknowledged task when the Redis connection breaks. Celery's consumer cleans up with
``connection.collect()``, which detaches the transport from its connection
(``transport.client = None``), then closes the connection as well (added in Celery 5.7 so a
half-open socket cannot hang the reconnect: celery/celery#9705). Closing the redis channel
restores the unacknowledged messages, which needs a new Redis client, whose parameters are
read from ``transport.client`` -> ``AttributeError: 'NoneType' object has no attribute
'hostname'`` (the same failure as celery/kombu#582). ``ignore_errors`` around the close only
ignores connection errors, so the AttributeError reaches the worker as an "Unrecoverable
error" and the worker exits.

The tasks that were running finish after the worker has reconnected, and acknowledge on the
closed channel of the lost connection, which needs a client the same way: the worker exits
again (``'NoneType' object has no attribute 'client'``).

The workaround: a redis channel whose transport has been detached does not try to restore
(it cannot reach Redis anyway), and a closed channel ignores acknowledgements and
rejections. Nothing is lost: those messages stay in Redis's unacked index and come back
after the visibility timeout (every task is idempotent: the row is claimed already), and
every task's row is in the database, where the sweep and ``tipline.resolve`` find it first.
Remove this when kombu/celery handle it.
"""

from __future__ import annotations

from kombu.transport import redis


class Channel(redis.Channel):
    def close(self) -> None:
        if not self.closed and getattr(self.connection, "client", True) is None:
            self.do_restore = False  # detached by Connection.collect(): nothing to restore with
        super().close()

    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        if self._lost():
            return
        super().basic_ack(delivery_tag, multiple=multiple)

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if self._lost():
            return
        super().basic_reject(delivery_tag, requeue=requeue)

    def _lost(self) -> bool:
        """A channel of a connection the worker has given up (closed, or its transport
        detached): acknowledging on it would need a client it can no longer make."""
        return bool(self.closed) or getattr(self.connection, "client", None) is None


class Transport(redis.Transport):
    Channel = Channel


# The value of ``broker_transport`` that selects it (redis:// and rediss:// URLs).
TRANSPORT = f"{__name__}:Transport"
