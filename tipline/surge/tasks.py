"""The periodic "N more tips about this" task (``workers.tasks`` registers it)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from tipline.context import Services
from tipline.db import utcnow
from tipline.surge.services import notify_groups

NOTICE_TASK = "tipline.surge_notices"
# How often the scheduler looks for groups due a notice: the lateness bound of a notice on
# top of its interval (``services.NOTICE_EVERY``).
NOTICE_CHECK_SECONDS = 60.0


def _svc() -> Services:
    from flask import current_app

    svc: Services = current_app.extensions["tipline"]
    return svc


def run_surge_notices() -> int:
    svc = _svc()
    with svc.db.sessions() as session:
        return notify_groups(session, svc.queue, utcnow())


def register_tasks(celery: Celery) -> None:
    opts: dict[str, Any] = {"acks_late": True, "ignore_result": True}

    @celery.task(name=NOTICE_TASK, **opts)
    def surge_notices() -> None:
        run_surge_notices()

    schedule = dict(celery.conf.beat_schedule or {})
    schedule.setdefault("surge-notices", {"task": NOTICE_TASK,
                                          "schedule": NOTICE_CHECK_SECONDS})
    celery.conf.beat_schedule = schedule
