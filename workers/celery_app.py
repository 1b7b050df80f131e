"""The worker's Celery app: ``celery -A workers.celery_app worker``.

It builds the Flask app from the same settings as the web (so the vault, database and
senders are the same) and runs every task inside its app context.
"""

from __future__ import annotations

import sys
from typing import Any

from celery import Celery, Task
from flask import Flask

from tipline.app import create_app
from tipline.ops.metrics import remove_dead_files
from tipline.settings import load_settings


def make_celery(app: Flask) -> Celery:
    celery: Celery = app.extensions["tipline"].celery

    class AppContextTask(Task):
        abstract = True

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return super().__call__(*args, **kwargs)

    celery.Task = AppContextTask  # type: ignore[misc]
    if str(celery.conf.broker_url).startswith("redis://"):  # rediss: kombu's own (TLS)
        # A worker must survive Redis going away mid-task: see workers/brokerfix.py.
        from workers.brokerfix import TRANSPORT

        celery.conf.broker_transport = TRANSPORT
    # Back on the broker within ~2 s of its return, not up to 30 s: see workers/reconnect.py.
    from workers.reconnect import CONSUMER

    celery.conf.worker_consumer = CONSUMER
    celery.set_default()
    remove_dead_files()  # metrics files of this container's finished processes
    import workers.tasks

    workers.tasks.register(celery)
    app.extensions["celery"] = celery
    return celery


# How long a worker thread may hold the interpreter before another is let in (Python's default
# is 5 ms). A task thread spends its life in short waits on PostgreSQL, Redis and Twilio;
# coming back from each it waits for the interpreter, up to this long, behind threads that
# are computing. Measured in the routing benchmark: docs/alerts.md, "Benchmark".
THREAD_SWITCH_INTERVAL = 0.001


def _bootstrap() -> Celery:
    from tipline.cli import check_database, fail_cleanly

    sys.setswitchinterval(THREAD_SWITCH_INTERVAL)
    with fail_cleanly():
        settings = load_settings()
        check_database(settings)
        return make_celery(create_app(settings))


celery = _bootstrap()
app = celery
