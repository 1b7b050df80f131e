"""RedisTaskQueue: the same Celery messages as Celery.send_task, with one LPUSH each."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery, signals

from tests.conftest import REDIS_URL
from tipline.celeryconf import build_celery
from tipline.jobs import CeleryQueue
from tipline.settings import Settings
from tipline.web.jobqueue import RedisTaskQueue, queue_for


@pytest.fixture
def celery_app() -> Iterator[Celery]:
    """The web process's Celery configuration, on a queue name of this test's own."""
    app = build_celery(Settings(mode="test", broker_url=REDIS_URL, database_url="sqlite://"))
    app.conf.task_default_queue = f"tipline-test-{uuid.uuid4().hex}"
    yield app
    _forget(app.conf.task_default_queue)
    app.close()


def _forget(name: str) -> None:
    """Delete the test's queues and the bindings kombu declared for them."""
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(name, f"{name}.urgent")
    for key in client.scan_iter("_kombu.binding.*"):
        for member in client.smembers(key):
            if name.encode() in member:
                client.srem(key, member)


def _stored(app: Celery) -> list[dict[str, Any]]:
    """Every message waiting in the app's queue, oldest first, as stored in Redis."""
    client = redis.Redis.from_url(REDIS_URL)
    return [json.loads(raw) for raw in reversed(client.lrange(app.conf.task_default_queue, 0, -1))]


def _without_ids(message: dict[str, Any]) -> dict[str, Any]:
    headers = {k: v for k, v in message["headers"].items() if k not in ("id", "root_id")}
    props = {k: v for k, v in message["properties"].items()
             if k not in ("correlation_id", "delivery_tag")}
    return {**message, "headers": headers, "properties": props}


def test_messages_match_what_celery_sends(celery_app: Celery) -> None:
    CeleryQueue(celery_app).send_routing(41)
    fast = RedisTaskQueue(celery_app)
    assert fast.send_routing(41)  # the first send of a task goes through Celery (declares)
    assert fast.send_routing(41)  # then the single LPUSH
    by_celery, first, by_lpush = _stored(celery_app)
    assert _without_ids(by_lpush) == _without_ids(by_celery) == _without_ids(first)
    headers, props = by_lpush["headers"], by_lpush["properties"]
    assert headers["task"] == "tipline.route_job" and headers["root_id"] == headers["id"]
    assert props["correlation_id"] == headers["id"] != by_celery["headers"]["id"]
    assert props["delivery_tag"] != by_celery["properties"]["delivery_tag"]
    body = json.loads(base64.b64decode(by_lpush["body"]))
    assert body == [[41], {}, {"callbacks": None, "errbacks": None, "chain": None,
                               "chord": None}]


def test_a_kombu_consumer_reads_the_task(celery_app: Celery) -> None:
    """What a worker does with it: kombu takes it off the queue and decodes it."""
    fast = RedisTaskQueue(celery_app)
    fast.send_routing(1)
    fast.send_routing(7)
    with celery_app.connection_for_read() as conn:
        queue = conn.SimpleQueue(celery_app.conf.task_default_queue, no_ack=True)
        try:
            messages = [queue.get(timeout=2), queue.get(timeout=2)]
        finally:
            queue.close()
    last = messages[1]
    assert last.headers["task"] == "tipline.route_job"
    assert last.content_type == "application/json"
    assert last.decode()[0] == [7]
    assert last.delivery_info["routing_key"] == celery_app.conf.task_default_queue


def test_countdown_and_signal_receivers_go_through_celery(celery_app: Celery) -> None:
    fast = RedisTaskQueue(celery_app)
    fast.send_routing(1)
    assert fast.send_delivery(5, countdown=30)
    stored = _stored(celery_app)
    assert stored[-1]["headers"]["eta"] is not None  # Celery turned the countdown into an ETA

    seen: list[str] = []

    def _receiver(sender: str | None = None, **_kw: Any) -> None:
        seen.append(str(sender))

    signals.before_task_publish.connect(_receiver)
    try:
        assert fast.send_routing(2)
    finally:
        signals.before_task_publish.disconnect(_receiver)
    assert seen == ["tipline.route_job"]


def test_broker_down_returns_false_and_does_not_raise() -> None:
    nowhere = "redis://127.0.0.1:1/0"  # nothing listens there
    down = RedisTaskQueue(build_celery(Settings(mode="test", broker_url=nowhere,
                                                database_url="sqlite://")), timeout=0.5)
    assert down.send_routing(1) is False  # the first (Celery) send
    down._declared.add("tipline.route_job")
    assert down.send_routing(1) is False  # the LPUSH


def test_queue_for_picks_by_broker() -> None:
    redis_app = build_celery(Settings(mode="test", broker_url=REDIS_URL, database_url="sqlite://"))
    fs_app = build_celery(Settings(mode="test", broker_url="memory://", database_url="sqlite://"))
    assert isinstance(queue_for(redis_app, Settings(mode="test", broker_url=REDIS_URL,
                                                    database_url="sqlite://")), RedisTaskQueue)
    assert isinstance(queue_for(fs_app, Settings(mode="test", broker_url="memory://",
                                                 database_url="sqlite://")), CeleryQueue)


def test_a_connection_dropped_by_redis_is_replaced_on_the_next_send(celery_app: Celery) -> None:
    """As after a Redis restart: the kept connection is dead; the next send reconnects."""
    fast = RedisTaskQueue(celery_app)
    fast.send_routing(1)
    assert fast.send_routing(2)
    client_id = fast._client.client_id()
    redis.Redis.from_url(REDIS_URL).client_kill_filter(_id=client_id)
    assert fast.send_routing(3)
    assert fast._client.client_id() != client_id
    assert [json.loads(base64.b64decode(m["body"]))[0] for m in _stored(celery_app)] == \
        [[1], [2], [3]]


def test_a_task_routed_to_another_queue_goes_where_celery_sends_it() -> None:
    app = build_celery(Settings(mode="test", broker_url=REDIS_URL, database_url="sqlite://"))
    name = f"tipline-test-{uuid.uuid4().hex}"
    app.conf.task_default_queue = name
    app.conf.task_routes = {"tipline.escalate": {"queue": f"{name}.urgent"}}
    client = redis.Redis.from_url(REDIS_URL)
    try:
        CeleryQueue(app).send_task("tipline.escalate")
        fast = RedisTaskQueue(app)
        fast.send_task("tipline.escalate")
        fast.send_task("tipline.escalate")
        stored = [json.loads(m) for m in reversed(client.lrange(f"{name}.urgent", 0, -1))]
        assert len(stored) == 3 and client.llen(name) == 0
        assert _without_ids(stored[2]) == _without_ids(stored[0])
        assert stored[2]["properties"]["delivery_info"]["routing_key"] == f"{name}.urgent"
    finally:
        _forget(name)
        app.close()
