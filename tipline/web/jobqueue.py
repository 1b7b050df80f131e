"""A cheaper way to send the web process's jobs to a Redis broker, same messages as Celery's.

``CeleryQueue`` publishes through ``Celery.send_task``: per message Celery resolves the route,
kombu acquires a producer, builds a new Redis client object and runs the publish through its
virtual exchange layer. On the tip form that was the largest single CPU cost after the
commit. ``RedisTaskQueue`` builds the task message with Celery's own ``create_task_message``
(protocol 2: headers, properties, body), lays it out as kombu's Redis transport stores a
message, and sends it with one LPUSH on a Redis connection kept for the process. A Celery
worker cannot tell the difference (tests/web/test_jobqueue.py reads the messages back with
kombu and compares them with ones ``send_task`` wrote).

Anything outside the plain case goes through the wrapped ``CeleryQueue`` unchanged: a
countdown, a broker that is not Redis, a task routed to anything but a direct exchange, or a
``before/after_task_publish`` signal receiver somebody connected. Like ``CeleryQueue`` it never
raises into the request: if Redis is unreachable it logs and returns False, the job stays
``pending`` in the database, and the periodic sweep sends it later.
"""

from __future__ import annotations

import base64
import logging
import uuid
from typing import Any, cast

import redis
from celery import Celery, signals
from kombu.utils.json import dumps
from redis.backoff import NoBackoff
from redis.retry import Retry

from tipline.jobs import CeleryQueue, JobQueue
from tipline.settings import Settings

log = logging.getLogger(__name__)

# AMQP's delivery modes, by the names Celery's settings may use.
DELIVERY_MODES = {"transient": 1, "persistent": 2}


class RedisTaskQueue:
    """Publishes Celery task messages to a Redis broker with a single LPUSH each."""

    def __init__(self, celery_app: Celery, timeout: float = 1.0,
                 client: redis.Redis | None = None) -> None:
        self._celery = celery_app
        self._fallback = CeleryQueue(celery_app, timeout)
        conf = celery_app.conf
        options = conf.broker_transport_options or {}
        # One immediate retry on a connection error only: a connection kept from before a Redis
        # restart fails once, then reconnects. A Redis that is down refuses at once; an
        # unreachable host costs at most two connect timeouts; a Redis that stops answering,
        # one read timeout (the timeouts are the ones Celery's transport options give kombu).
        self._client = client or redis.Redis.from_url(
            conf.broker_url,
            socket_connect_timeout=options.get("socket_connect_timeout", timeout),
            socket_timeout=options.get("socket_timeout", max(timeout, 5.0)),
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        )
        self._routes: dict[str, tuple[str, int] | None] = {}
        self._declared: set[str] = set()

    def _queue_for(self, name: str) -> tuple[str, int] | None:
        """The Redis list a task goes to and its delivery mode, as Celery would route it; None
        when the route is not the plain default (a direct exchange to one queue)."""
        if name not in self._routes:
            amqp = self._celery.amqp
            options = amqp.router.route({}, name, (), {}, None)
            queue = options.get("queue") or amqp.default_queue
            exchange = getattr(queue, "exchange", None)
            plain = (
                set(options) == {"queue"}
                and getattr(exchange, "type", None) == "direct"
                and not getattr(queue, "max_priority", None)
            )
            mode = getattr(exchange, "delivery_mode", None) or \
                self._celery.conf.task_default_delivery_mode
            self._routes[name] = (
                (str(queue.name), int(DELIVERY_MODES.get(mode, mode))) if plain else None
            )
        return self._routes[name]

    def message(self, name: str, args: tuple[Any, ...]) -> tuple[str, bytes]:
        """The Redis list and the stored message for task ``name`` called with ``args``."""
        celery = self._celery
        route = self._queue_for(name)
        if route is None:
            raise LookupError(name)
        queue, delivery_mode = route
        task_id = str(uuid.uuid4())
        # The arguments Celery.send_task passes for a plain call (no parent task, no options).
        headers, properties, body, _event = celery.amqp.create_task_message(
            task_id, name, list(args), None, reply_to=celery.thread_oid,
            create_sent_event=False, ignore_result=None,
        )
        payload = dumps(body).encode("utf-8")
        properties = {
            **properties,
            "delivery_mode": delivery_mode,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        }
        envelope = {
            "body": base64.b64encode(payload).decode("ascii"),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": properties,
        }
        return queue, dumps(envelope).encode("utf-8")

    def _plain(self, name: str) -> bool:
        """Only what this class reproduces exactly; anything else goes through Celery."""
        celery = self._celery
        conf = celery.conf
        return (
            conf.task_serializer == "json" and not conf.task_compression
            and not conf.task_send_sent_event and conf.task_protocol == 2
            and not signals.before_task_publish.receivers
            and not signals.after_task_publish.receivers
            # A task registered in this process may carry its own options; a task sent from
            # inside another one gets that one's ids.
            and cast(Any, celery)._tasks.get(name) is None  # (.tasks would finalize the app)
            and celery.current_worker_task is None
            and self._queue_for(name) is not None
        )

    def send_task(self, name: str, *args: Any, countdown: float = 0) -> bool:
        if countdown or name not in self._declared or not self._plain(name):
            # The first send of each task goes the ordinary way, which also declares the
            # queue and its binding on the broker as Celery does.
            sent = self._fallback.send_task(name, *args, countdown=countdown)
            if sent and not countdown:
                self._declared.add(name)
            return sent
        try:
            queue, data = self.message(name, args)
            self._client.lpush(queue, data)
            return True
        except Exception as exc:  # broker down: the sweep will resend from the database
            log.warning("broker unavailable, %s left for the sweep (%s)", name, type(exc).__name__)
            return False

    def send_routing(self, job_id: int) -> bool:
        return self.send_task("tipline.route_job", job_id)

    def send_delivery(self, delivery_id: int, countdown: float = 0) -> bool:
        return self.send_task("tipline.deliver_alert", delivery_id, countdown=countdown)


def queue_for(celery_app: Celery, settings: Settings) -> JobQueue:
    """``RedisTaskQueue`` for a Redis broker, else the ordinary ``CeleryQueue``."""
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return RedisTaskQueue(celery_app, settings.publish_timeout_seconds)
    return CeleryQueue(celery_app, settings.publish_timeout_seconds)
