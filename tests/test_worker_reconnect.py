"""The worker's broker reconnect: how long after the broker's return a worker takes work again.

kombu's defaults wait 2, 4, 6, ... up to 30 s between attempts (after a 20 s Redis outage a
worker came back up to 10 s late); ``workers.reconnect.Consumer`` retries at most every 2 s.
"""

from __future__ import annotations

import itertools
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.utils.functional import fxrange

from tipline.celeryconf import build_celery
from tipline.settings import Settings
from workers.reconnect import CONSUMER, RECONNECT, Consumer


class RecordingConnection:
    """Stands for kombu's Connection: records how the consumer asks it to reconnect."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def ensure_connection(self, *args: Any, **kwargs: Any) -> RecordingConnection:
        self.calls.append((args, kwargs))
        return self

    def as_uri(self) -> str:
        return "redis://127.0.0.1:1/0"


def _consumer(cls: type[CeleryConsumer]) -> CeleryConsumer:
    consumer = object.__new__(cls)  # only what ensure_connected reads
    consumer.app = build_celery(Settings(mode="test", broker_url="redis://127.0.0.1:1/0"))
    consumer.first_connection_attempt = False
    consumer.broker_connection_retry_attempt = 0
    return consumer


def _waits(kwargs: dict[str, Any], n: int) -> list[float]:
    """The waits kombu makes between attempts, from ensure_connection's arguments (as
    kombu.utils.functional.retry_over_time computes them)."""
    start = kwargs.get("interval_start", 2)
    step = kwargs.get("interval_step", 2)
    top = kwargs.get("interval_max", 30)
    return list(itertools.islice(fxrange(start, top + start, step, repeatlast=True), n))


def test_the_worker_retries_its_broker_connection_at_least_every_two_seconds() -> None:
    conn = RecordingConnection()
    assert _consumer(Consumer).ensure_connected(conn) is conn
    [(_args, kwargs)] = conn.calls
    assert kwargs | RECONNECT == kwargs
    waits = _waits(kwargs, 20)
    assert max(waits) <= 2.0
    # However long the outage (up to 30 s), the worker is back within 2 s of the broker.
    assert _worst_lateness(kwargs) <= 2.0
    # Called again with the same connection (the consumer restarts), not wrapped twice.
    _consumer(Consumer).ensure_connected(conn)
    assert conn.calls[1][1] == kwargs


def _worst_lateness(kwargs: dict[str, Any]) -> float:
    """The longest a worker stays away after the broker's return, for outages of 0.1-30 s
    (the broker is lost at attempt 0)."""
    attempts = list(itertools.accumulate(_waits(kwargs, 40), initial=0.0))
    return max(min(a for a in attempts if a >= outage / 10) - outage / 10
               for outage in range(1, 301))


def test_celerys_own_consumer_can_come_back_ten_seconds_after_the_broker() -> None:
    """What the bound above improves on (kombu's defaults), so that test can fail."""
    conn = RecordingConnection()
    _consumer(CeleryConsumer).ensure_connected(conn)
    [(_args, kwargs)] = conn.calls
    assert _worst_lateness(kwargs) > 9.5


def test_the_worker_app_selects_the_quick_reconnect() -> None:
    from tipline.settings import Settings as S

    assert S().sweep_interval_seconds <= 5.0  # and the sweep runs soon after
    assert _waits(RECONNECT, 5) == [0.5, 1.0, 1.5, 2.0, 2.0]
    assert CONSUMER == "workers.reconnect:Consumer"
