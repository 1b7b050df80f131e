"""Celery configuration shared by the web app (producer) and the workers (consumer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery
from kombu import Queue

from tipline.settings import Settings

# How often the scheduler runs tipline.escalate: the bound on escalation lateness.
ESCALATE_INTERVAL = 2.0
# A second queue that every worker also consumes, so that escalation, the sweep and
# life-safety/escalation alerts do not wait behind a backlog of ordinary alerts in a surge.
URGENT_QUEUE = "tipline.urgent"
# How often tipline.resolve settles deliveries left ``sending`` (a worker lost mid-send, the
# database lost before ``sent`` was recorded, Twilio not answering): with
# ``routing.services.STALE_SENDING`` (25 s) it bounds how long such a delivery waits.
RESOLVE_INTERVAL = 5.0
# How often the embedded worker looks at the filesystem broker's folder for a message.
FILESYSTEM_POLL_SECONDS = 0.1


def celery_config(settings: Settings) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "task_ignore_result": True,
        # A task is acknowledged after it ran, so a killed worker's task is delivered again;
        # every task is idempotent, so that is safe.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": "tipline",
        # Each queue bound under its own routing key: with one key for both, every task
        # would be delivered to both queues.
        "task_queues": (Queue("tipline", routing_key="tipline"),
                        Queue(URGENT_QUEUE, routing_key=URGENT_QUEUE)),
        "task_routes": {
            "tipline.escalate": {"queue": URGENT_QUEUE},
            "tipline.sweep": {"queue": URGENT_QUEUE},
            "tipline.resolve": {"queue": URGENT_QUEUE},
            "tipline.deliver_urgent": {"queue": URGENT_QUEUE},
        },
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": settings.publish_timeout_seconds,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "beat_schedule": {
            "sweep": {"task": "tipline.sweep", "schedule": settings.sweep_interval_seconds,
                      "options": {"expires": max(settings.sweep_interval_seconds, 5.0)}},
            # Escalation deadlines are checked every ESCALATE_INTERVAL seconds; all state is
            # in the database, so a stale run queued during an outage can simply expire.
            "escalate": {"task": "tipline.escalate", "schedule": ESCALATE_INTERVAL,
                         "options": {"expires": 10.0}},
            "resolve": {"task": "tipline.resolve", "schedule": RESOLVE_INTERVAL,
                        "options": {"expires": 10.0}},
            "purge": {"task": "tipline.purge", "schedule": 3600.0},
        },
        "timezone": "UTC",
    }
    if settings.broker_url.startswith("filesystem://"):
        root = Path(settings.broker_url[len("filesystem://") :])
        queue_dir, done_dir = root / "queue", root / "processed"
        queue_dir.mkdir(parents=True, exist_ok=True)
        done_dir.mkdir(parents=True, exist_ok=True)
        conf["broker_url"] = "filesystem://"
        conf["broker_transport_options"] = {
            "data_folder_in": str(queue_dir),
            "data_folder_out": str(queue_dir),
            "processed_folder": str(done_dir),
            "control_folder": str(root / "control"),
            "store_processed": False,
            # kombu sleeps this long whenever it cannot take a message, including while every
            # worker thread is busy (its default, 1 s, left a freed thread idle for up to a
            # second: the embedded worker ran ~4 tasks/s). Polling two folders is cheap.
            "polling_interval": FILESYSTEM_POLL_SECONDS,
        }
    elif settings.broker_url.startswith(("redis://", "rediss://")):
        conf["broker_transport_options"] = {
            "socket_connect_timeout": settings.publish_timeout_seconds,
            "socket_timeout": max(settings.publish_timeout_seconds, 5.0),
            # Longer than any task runs; a task of a killed worker comes back after this.
            "visibility_timeout": 600,
        }
    return conf


def build_celery(settings: Settings) -> Celery:
    celery = Celery("tipline")
    celery.conf.update(celery_config(settings))
    return celery
