"""A worker that is back on the broker within about 2 s of the broker's return.

Celery's consumer reconnects through kombu's ``Connection.ensure_connection`` with kombu's
default waits between attempts: 2, 4, 6, ... up to 30 s. After Redis was stopped for 20 s,
the attempts fell at 0, 2, 6, 12, 20 and 30 s, so a worker came back up to 10 s after Redis
did, and every routing job the sweep re-sent for the outage waited those seconds more. A
refused connection costs a millisecond, so retrying every ``RECONNECT['interval_max']``
seconds at most is cheap. Selected by ``worker_consumer`` in ``workers.celery_app``.
"""

from __future__ import annotations

import functools
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer

# kombu's ensure_connection arguments. kombu waits interval_start, then one interval_step
# more each time, up to interval_max + interval_start: 0.5, 1, 1.5, then every 2 s.
RECONNECT = {"interval_start": 0.5, "interval_step": 0.5, "interval_max": 1.5}


class Consumer(CeleryConsumer):
    def ensure_connected(self, conn: Any) -> Any:
        if not getattr(conn, "_tipline_reconnect", False):
            conn.ensure_connection = functools.partial(conn.ensure_connection, **RECONNECT)
            conn._tipline_reconnect = True
        return super().ensure_connected(conn)


# The value of ``worker_consumer`` that selects it.
CONSUMER = f"{__name__}:Consumer"
