"""Sending background jobs only after the database transaction that created them commits.

Services call ``after_commit(session, queue.send_routing, job_id)``; the callback runs once the
session commits and is dropped if it rolls back. A queue never raises into the request: if the
broker is down the job stays ``pending`` in the database and the periodic sweep sends it later.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from celery.utils.saferepr import saferepr
from kombu.utils.uuid import uuid
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

_KEY = "tipline_after_commit"


class JobQueue(Protocol):
    def send_routing(self, job_id: int) -> bool: ...

    def send_delivery(self, delivery_id: int, countdown: float = 0) -> bool: ...

    def send_task(self, name: str, *args: Any, countdown: float = 0,
                  force: bool = False) -> bool: ...


def after_commit(session: Session, fn: Callable[..., Any], *args: Any) -> None:
    session.info.setdefault(_KEY, []).append((fn, args))


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    pending = session.info.pop(_KEY, [])
    for fn, args in pending:
        try:
            fn(*args)
        except Exception:  # a queue must never break the request that committed
            log.exception("after-commit callback %s failed", getattr(fn, "__name__", fn))


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(_KEY, None)


# Up to this many integer arguments, a task's argsrepr is their list's repr (saferepr's own
# answer for them; it bounds only long or nested values).
_INT_ARGS = 8

# After a failed publish, publishing is skipped for this long (the job is already committed;
# the sweep sends it): while the broker is down, a request pays nothing for it.
BREAKER_SECONDS = 5.0


class CeleryQueue:
    """Publishes to Celery by task name; best effort, within ``timeout`` seconds at most.

    Each thread publishes over its own broker connection and kombu producer, both kept
    between publishes (given only a connection, Celery builds a producer for every task:
    about a fifth of a publish's CPU). The connection is opened with no connection retry and
    socket timeouts of ``timeout`` (kombu's default connection retry and the worker's 5 s
    socket timeout would otherwise decide how long a request waits). After a failure the
    queue is open-circuit for ``BREAKER_SECONDS``: publishes return False at once, and
    ``on_unpublished(name, args)`` records that the row is not in the broker, so the sweep
    re-sends it at its next run (``tipline.routing.services.mark_unpublished``).
    """

    def __init__(self, celery_app: Any, timeout: float = 1.0,
                 on_unpublished: Callable[[str, tuple[Any, ...]], None] | None = None,
                 breaker_seconds: float = BREAKER_SECONDS) -> None:
        self._celery = celery_app
        self._timeout = timeout
        self._retry_policy = {"max_retries": 0, "interval_start": 0, "timeout": timeout}
        self.on_unpublished = on_unpublished
        self.breaker_seconds = breaker_seconds
        self._down_until = 0.0
        self._local = threading.local()

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._celery.connection_for_write(
                connect_timeout=self._timeout,
                transport_options={
                    # kombu: fail the first connection attempt instead of retrying it.
                    "max_retries": 0, "interval_start": 0, "interval_step": 0,
                    "connect_retries_timeout": self._timeout,
                    # redis-py: connect and every command bounded by the publish timeout.
                    "socket_connect_timeout": self._timeout, "socket_timeout": self._timeout,
                    "retry_on_timeout": False,
                })
            self._local.conn = conn
        return conn

    def _producer(self) -> Any:
        producer = getattr(self._local, "producer", None)
        if producer is None:
            producer = self._celery.amqp.Producer(self._connection(), auto_declare=False)
            self._local.producer = producer
        return producer

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        self._local.producer = None
        self._local.templates = None  # a new connection declares the queues again
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken connection, thrown away anyway
                conn.release()

    @property
    def broker_down(self) -> bool:
        """True while the circuit is open (a publish failed less than breaker_seconds ago)."""
        return time.monotonic() < self._down_until

    def send_task(self, name: str, *args: Any, countdown: float = 0,
                  force: bool = False) -> bool:
        """Publish; False if the broker did not take it. ``force``: try even while the
        circuit is open (for a message that exists nowhere else, e.g. a held SMS)."""
        if self.broker_down and not force:
            self._unpublished(name, args)
            return False
        started = time.monotonic()
        reused = getattr(self._local, "conn", None) is not None
        try:
            try:
                self._publish(name, args, countdown)
            except Exception:
                # A kept connection that fails at once was most likely closed by a broker
                # restart: one more try on a new connection (a down broker refuses in ~1 ms).
                if not reused or time.monotonic() - started > 0.1:
                    raise
                self._drop_connection()
                self._publish(name, args, countdown)
            return True
        except Exception as exc:  # broker down: the sweep will resend from the database
            self._drop_connection()
            self._down_until = time.monotonic() + self.breaker_seconds
            log.warning("broker unavailable, %s left for the sweep (%s); not publishing for "
                        "%.0f s", name, type(exc).__name__, self.breaker_seconds)
            self._unpublished(name, args)
            return False

    def _publish(self, name: str, args: tuple[Any, ...], countdown: float,
                 task_id: str | None = None) -> None:
        parent = self._celery.current_worker_task
        if countdown or (parent is not None and self._celery.conf.task_inherit_parent_priority):
            # A delay (an ETA in the headers), or a priority taken from the parent task:
            # Celery's own send_task, which fills them in.
            self._celery.send_task(name, args=list(args), countdown=countdown or None,
                                   producer=self._producer(), retry=False,
                                   retry_policy=self._retry_policy, task_id=task_id)
            return
        body, options, repr_size, repr_levels = self._template(name)
        task_id = task_id or uuid()
        arglist = list(args)
        if len(arglist) <= _INT_ARGS and all(type(a) is int for a in arglist):
            argsrepr = repr(arglist)  # what saferepr gives a few ints, at a tenth the cost
        else:
            argsrepr = saferepr(arglist, repr_size, maxlevels=repr_levels)
        # Sent from a task (a routing job's alerts): the ids send_task takes from it, the
        # root of its chain and itself as the parent; a message with no root is its own.
        root_id, parent_id = task_id, None
        if parent is not None:
            root_id = parent.request.root_id or parent.request.id or task_id
            parent_id = parent.request.id
        headers = dict(options["headers"], id=task_id, root_id=root_id, parent_id=parent_id,
                       argsrepr=argsrepr)
        self._producer().publish((arglist, *body[1:]), **dict(
            options, headers=headers, correlation_id=task_id))

    def _template(self, name: str) -> tuple[tuple[Any, ...], dict[str, Any], int, int]:
        """What Celery's send_task hands kombu for task ``name`` with no delay, captured once
        per thread from Celery itself (a producer that records instead of sending).

        Celery's send_task costs about twice kombu's publish (routing, options, building the
        message anew, a result object): 0.27 ms of a web tip's CPU. Every field but the task id,
        its arguments and their repr, and inside a task its root and parent ids, is the same
        for every message of a task and a thread (``reply_to`` is the thread's id, ``origin``
        the process's): a test compares what is sent this way with what send_task sends, from
        a request and from inside a task. Not done here, as send_task does inside a task: the
        new task's result object added to the parent's ``children`` (read only by a result
        backend; tipline's tasks keep no results). Celery's limits on the arguments' repr
        come with it (read from its configuration once, not for every publish).

        The queues Celery lists under ``declare`` are declared here, once per connection,
        instead of by kombu on every publish: kombu's own check binds a copy of the queue and
        its exchange for each message before it finds the queue in its cache of declared
        entities, a fifth of a publish's CPU. Its cache is per connection too, so the queues
        are declared exactly as often as before; a dropped connection drops the templates."""
        templates: dict[str, tuple[tuple[Any, ...], dict[str, Any], int, int]] | None = getattr(
            self._local, "templates", None)
        if templates is None:
            templates = self._local.templates = {}
        found = templates.get(name)
        if found is None:
            recorder = _RecordingProducer(self._connection())
            # Captured inside a task, the message sent nowhere is not the task's child either.
            self._celery.send_task(name, args=[], producer=recorder, retry=False,
                                   retry_policy=self._retry_policy, add_to_parent=False)
            producer = self._producer()
            for entity in recorder.options.pop("declare", None) or ():
                producer.maybe_declare(entity)
            found = templates[name] = (recorder.body, recorder.options,
                                       self._celery.amqp.argsrepr_maxsize,
                                       self._celery.conf.task_repr_maxlevels)
        return found

    def _unpublished(self, name: str, args: tuple[Any, ...]) -> None:
        if self.on_unpublished is None:
            return
        try:
            self.on_unpublished(name, args)
        except Exception as exc:  # the sweep still finds the row, only later in a backlog
            log.warning("could not record that %s was not published (%s)", name,
                        type(exc).__name__)

    def send_routing(self, job_id: int) -> bool:
        return self.send_task("tipline.route_job", job_id)

    def send_delivery(self, delivery_id: int, countdown: float = 0) -> bool:
        return self.send_task("tipline.deliver_alert", delivery_id, countdown=countdown)


class _RecordingProducer:
    """Stands in for kombu's producer to see what Celery would publish."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection  # send_task enters its error translation; nothing is sent
        self.body: tuple[Any, ...] = ()
        self.options: dict[str, Any] = {}

    def publish(self, body: tuple[Any, ...], **options: Any) -> None:
        self.body, self.options = body, options


class RecordingQueue:
    """A fake queue for tests: remembers what would have been sent."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, tuple[Any, ...]]] = []
        self.fail = fail

    def send_task(self, name: str, *args: Any, countdown: float = 0,
                  force: bool = False) -> bool:
        if self.fail:
            return False
        self.sent.append((name, args))
        return True

    def send_routing(self, job_id: int) -> bool:
        return self.send_task("tipline.route_job", job_id)

    def send_delivery(self, delivery_id: int, countdown: float = 0) -> bool:
        return self.send_task("tipline.deliver_alert", delivery_id, countdown=countdown)
