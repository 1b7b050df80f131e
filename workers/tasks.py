"""Celery tasks: thin wrappers that reload by id and call the plain service functions.

Tasks are registered by name (``tipline.*``) so the web app can send them without importing
this module. Every task is idempotent and ``acks_late``; transient failures retry with
exponential backoff.
"""

from __future__ import annotations

import json
import logging
import os
import re
from contextlib import suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy.exc import DBAPIError

from tipline.celeryconf import URGENT_QUEUE
from tipline.context import Services
from tipline.db import utcnow
from tipline.ops import hooks, metrics
from tipline.routing import services as routing
from tipline.routing.escalation import EscalationResult, escalate_due
from tipline.routing.senders import SendHeld, TransientSendError

log = logging.getLogger(__name__)


def _svc() -> Services:
    from flask import current_app

    svc: Services = current_app.extensions["tipline"]
    return svc


def run_route_job(job_id: int) -> routing.RouteResult:
    svc = _svc()
    with svc.db.held_session() as session:
        result = routing.route_job(session, job_id, svc.planner(session), svc.queue, utcnow())
    metrics.routing_result(result.routed, result.dispatches)
    return result


def run_deliver_alert(delivery_id: int) -> routing.DeliveryResult:
    svc = _svc()
    with svc.db.held_session() as session:
        result = routing.deliver_alert(session, delivery_id, svc.senders(), utcnow(), svc.queue)
        hooks.delivery_done(session, result)
    return result


def run_sweep() -> routing.SweepResult:
    svc = _svc()
    waiting = broker_waiting(svc)
    backlog = None if waiting is not None else broker_backlog(svc)
    with svc.db.sessions() as session:
        result = routing.sweep(
            session, svc.queue, utcnow(), timedelta(seconds=svc.settings.sweep_grace_seconds),
            backlog=backlog, waiting=waiting,
        )
    metrics.sweep_resent(result.jobs_resent, result.deliveries_resent)
    return result


# Reading more queued messages than this per sweep is not worth it: the sweep falls back to
# holding back while the broker has a backlog (``routing.sweep``'s ``backlog``).
WAITING_READ_LIMIT = 20_000
_FIRST_ID = re.compile(r"^[\[(]\s*(\d+)")


def broker_waiting(svc: Services) -> routing.Waiting | None:
    """Which routing jobs and deliveries wait in the broker's queues (Redis or the embedded
    filesystem broker; else None).

    A job lost with a Redis restart, reserved by a worker killed with ``-9`` (back only after
    Redis's visibility timeout), or taken from the filesystem broker's folder by a worker then
    killed (kombu deletes the message file when a worker takes it: never back), is then
    re-sent by the sweep after its grace period even in a surge, instead of after the whole
    backlog. None (not read): the queues are longer than ``WAITING_READ_LIMIT``, or the
    broker cannot be asked.
    """
    if svc.celery is None:
        return None
    queues = (svc.celery.conf.task_default_queue, URGENT_QUEUE)
    try:
        if svc.settings.broker_url.startswith(("redis://", "rediss://")):
            messages = _redis_messages(svc.celery, queues)
        elif svc.settings.broker_url.startswith("filesystem://"):
            messages = _folder_messages(svc.celery, queues)
        else:
            return None
    except Exception as exc:  # broker down: the sweep's publishes will fail and retry later
        log.info("could not read the broker's queues (%s)", type(exc).__name__)
        return None
    if messages is None:
        return None
    jobs: set[int] = set()
    deliveries: set[int] = set()
    for raw in messages:
        task, first = _task_and_first_arg(raw)
        if first is None:
            continue
        if task == "tipline.route_job":
            jobs.add(first)
        elif task in ("tipline.deliver_alert", routing.URGENT_DELIVERY_TASK):
            deliveries.add(first)
    return routing.Waiting(frozenset(jobs), frozenset(deliveries))


def _redis_messages(celery: Celery, queues: tuple[str, ...]) -> list[bytes] | None:
    """The queued messages of ``queues`` (Redis lists), or None if there are too many."""
    found: list[bytes] = []
    with celery.connection_for_read() as conn:
        channel: Any = conn.default_channel  # kombu's Redis channel
        client = channel.client
        for name in queues:
            if client.llen(name) > WAITING_READ_LIMIT:
                return None
            found += client.lrange(name, 0, WAITING_READ_LIMIT)
    return found


def _folder_messages(celery: Celery, queues: tuple[str, ...]) -> list[bytes] | None:
    """The queued messages of ``queues`` in the filesystem broker's folder, or None if there
    are too many.

    kombu names each message file ``<ms>_<uuid>.<queue>.msg`` and holds the same JSON
    envelope as Redis does. A file a worker takes meanwhile is gone (skipped); one still
    being written does not parse (skipped, and at worst re-sent once: tasks are idempotent).
    """
    folder = Path(celery.conf.broker_transport_options["data_folder_in"])
    wanted = {f"{name}.msg" for name in queues}  # how kombu's ``_get`` tells queues apart
    names = [n for n in os.listdir(folder) if n.partition(".")[2] in wanted]
    if len(names) > WAITING_READ_LIMIT:
        return None
    found: list[bytes] = []
    for name in names:
        with suppress(FileNotFoundError):
            found.append((folder / name).read_bytes())
    return found


def _task_and_first_arg(raw: bytes | str) -> tuple[str | None, int | None]:
    """A queued Celery message (kombu's JSON envelope): its task name and first argument."""
    try:
        headers = json.loads(raw).get("headers") or {}
        found = _FIRST_ID.match(str(headers.get("argsrepr", "")))
        return headers.get("task"), int(found.group(1)) if found else None
    except (ValueError, AttributeError):
        return None, None


def run_resolve() -> routing.ResolveResult:
    """Settle deliveries left ``sending`` by asking the provider before any re-send."""
    svc = _svc()
    with svc.db.sessions() as session:
        return routing.resolve_sending(session, svc.senders(), svc.queue, utcnow())


def broker_backlog(svc: Services) -> int | None:
    """How many tasks wait in the main queue, when the broker is Redis (else None).

    In a surge the sweep must not re-send what is merely waiting in line (see
    ``routing.sweep``); a broker that cannot be asked is treated as having no backlog.
    """
    if svc.celery is None or not svc.settings.broker_url.startswith(("redis://", "rediss://")):
        return None
    try:
        with svc.celery.connection_for_read() as conn:
            return int(conn.default_channel.client.llen(svc.celery.conf.task_default_queue))
    except Exception as exc:  # broker down: the sweep's publishes will fail and retry later
        log.info("could not read the broker's queue length (%s)", type(exc).__name__)
        return None


def run_purge() -> Any:
    from tipline.tips.retention import purge_expired

    svc = _svc()
    with svc.db.sessions() as session:
        return purge_expired(session, utcnow(), svc.settings.retention_days)


def run_escalate() -> EscalationResult:
    """Advance escalation plans whose deadlines passed; repeat unanswered life-safety alerts."""
    svc = _svc()
    with svc.db.sessions() as session:
        result = escalate_due(session, svc.queue, utcnow())
    metrics.escalation(result.expired, result.activated, result.repeated)
    return result


# Packages that add tasks expose ``register_tasks(celery)`` in one of these modules.
TASK_MODULES = ("tipline.routing.tasks", "tipline.telephony.tasks", "tipline.triage.tasks",
                "tipline.surge.tasks")


def _deliver_paced(task: Any, delivery_id: int) -> None:
    """Deliver; a text held by the pacer (its senders' queue is full) is tried again after
    the wait it names, however often: its validity period ends the holding, not a count."""
    try:
        run_deliver_alert(delivery_id)
    except SendHeld as exc:
        raise task.retry(countdown=exc.wait, max_retries=None) from None


def register(celery: Celery) -> None:
    opts: dict[str, Any] = {"acks_late": True, "ignore_result": True}

    @celery.task(name="tipline.route_job", bind=True, max_retries=10, **opts)
    def route_job(self: Any, job_id: int) -> None:
        try:
            run_route_job(job_id)
        except Exception as exc:  # database blip: retry; the sweep is the backstop
            log.warning("routing job %s failed (%s); retrying", job_id, type(exc).__name__)
            raise self.retry(exc=exc, countdown=min(2 ** self.request.retries, 60)) from exc

    # One task per delivery. A transient failure (Twilio 5xx/429/timeout, SMTP down) is
    # retried with exponential backoff (a random wait of up to 2, 4, 8, 16 s); after
    # routing.MAX_SEND_ATTEMPTS the service fails the delivery and opens the next channel.
    # Anything left pending (retries exhausted, broker lost) is re-sent by the sweep.
    delivery_opts: dict[str, Any] = {
        "bind": True,
        # A database error (a restart) is retried like a provider's: nothing was sent yet,
        # or, after sending, deliver_alert already waited for it (then resolve_sending).
        "autoretry_for": (TransientSendError, DBAPIError),
        "retry_backoff": 2,
        "retry_backoff_max": 60,
        "retry_jitter": True,
        "max_retries": routing.MAX_SEND_ATTEMPTS,
        **opts,
    }

    @celery.task(name="tipline.deliver_alert", **delivery_opts)
    def deliver_alert(self: Any, delivery_id: int) -> None:
        _deliver_paced(self, delivery_id)

    # The same, on the urgent queue: life-safety alerts and alerts opened by escalation.
    @celery.task(name=routing.URGENT_DELIVERY_TASK, **delivery_opts)
    def deliver_urgent(self: Any, delivery_id: int) -> None:
        _deliver_paced(self, delivery_id)

    @celery.task(name="tipline.sweep", **opts)
    def sweep() -> None:
        run_sweep()

    @celery.task(name="tipline.resolve", **opts)
    def resolve() -> None:
        run_resolve()

    @celery.task(name="tipline.purge", **opts)
    def purge() -> None:
        run_purge()

    @celery.task(name="tipline.escalate", **opts)
    def escalate() -> None:
        run_escalate()

    import importlib

    for module in TASK_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if not exc.name or not module.startswith(exc.name):
                raise
            continue
        mod.register_tasks(celery)
