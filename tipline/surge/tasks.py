"""The periodic surge task (``workers.tasks`` registers it): "N more tips about this"
notices, and erasing the signatures that have left the grouping window."""

from __future__ import annotations

from typing import Any

from celery import Celery

from tipline.context import Services
from tipline.db import utcnow
from tipline.surge.services import forget_signatures, notify_groups

NOTICE_TASK = "tipline.surge_notices"
# How often the scheduler looks for groups due a notice: the lateness bound of a notice on
# top of its interval (``services.NOTICE_EVERY``).
NOTICE_CHECK_SECONDS = 60.0


def _svc() -> Services:
    from flask import current_app

    svc: Services = current_app.extensions["tipline"]
    return svc


def run_surge_notices() -> int:
    """Send the notices that are due, then forget old signatures; returns notices sent."""
    svc = _svc()
    now = utcnow()
    with svc.db.sessions() as session:
        noticed = notify_groups(session, svc.queue, now)
        forget_signatures(session, now)
    return noticed


def register_tasks(celery: Celery) -> None:
    opts: dict[str, Any] = {"acks_late": True, "ignore_result": True}

    @celery.task(name=NOTICE_TASK, **opts)
    def surge_notices() -> None:
        run_surge_notices()

    schedule = dict(celery.conf.beat_schedule or {})
    schedule.setdefault("surge-notices", {"task": NOTICE_TASK,
                                          "schedule": NOTICE_CHECK_SECONDS})
    celery.conf.beat_schedule = schedule
