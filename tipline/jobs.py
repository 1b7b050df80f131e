"""Sending background jobs only after the database transaction that created them commits.

Services call ``after_commit(session, queue.send_routing, job_id)``; the callback runs once the
session commits and is dropped if it rolls back. A queue never raises into the request: if the
broker is down the job stays ``pending`` in the database and the periodic sweep sends it later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

_KEY = "tipline_after_commit"


class JobQueue(Protocol):
    def send_routing(self, job_id: int) -> bool: ...

    def send_delivery(self, delivery_id: int, countdown: float = 0) -> bool: ...

    def send_task(self, name: str, *args: Any, countdown: float = 0) -> bool: ...


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


class CeleryQueue:
    """Publishes to Celery by task name, with short timeouts so a dead broker fails fast."""

    def __init__(self, celery_app: Any, timeout: float = 1.0) -> None:
        self._celery = celery_app
        self._retry_policy = {"max_retries": 0, "interval_start": 0, "timeout": timeout}

    def send_task(self, name: str, *args: Any, countdown: float = 0) -> bool:
        try:
            self._celery.send_task(
                name,
                args=list(args),
                countdown=countdown or None,
                retry=False,
                retry_policy=self._retry_policy,
            )
            return True
        except Exception as exc:  # broker down: the sweep will resend from the database
            log.warning("broker unavailable, %s left for the sweep (%s)", name, type(exc).__name__)
            return False

    def send_routing(self, job_id: int) -> bool:
        return self.send_task("tipline.route_job", job_id)

    def send_delivery(self, delivery_id: int, countdown: float = 0) -> bool:
        return self.send_task("tipline.deliver_alert", delivery_id, countdown=countdown)


class RecordingQueue:
    """A fake queue for tests: remembers what would have been sent."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, tuple[Any, ...]]] = []
        self.fail = fail

    def send_task(self, name: str, *args: Any, countdown: float = 0) -> bool:
        if self.fail:
            return False
        self.sent.append((name, args))
        return True

    def send_routing(self, job_id: int) -> bool:
        return self.send_task("tipline.route_job", job_id)

    def send_delivery(self, delivery_id: int, countdown: float = 0) -> bool:
        return self.send_task("tipline.deliver_alert", delivery_id, countdown=countdown)
