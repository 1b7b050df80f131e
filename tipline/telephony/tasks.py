"""Celery tasks for telephony: thin wrappers that reload by id and call ``tipline.telephony.media``.

``tipline.telephony_task`` (fetch/strip/seal/store media and recordings, delete Twilio's
copies), ``tipline.relay_sms`` (a staff reply to an SMS reporter) and ``tipline.telephony_sweep``
(re-send what an outage left, erase numbers of finished conversations). All are ``acks_late``
and idempotent; transient Twilio failures retry with backoff, and the sweep is the backstop.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Celery

from tipline.context import Services
from tipline.db import utcnow
from tipline.telephony import media
from tipline.telephony.client import TwilioGateway, build_gateway
from tipline.telephony.store import TASK_NAME

log = logging.getLogger(__name__)

SWEEP_TASK = "tipline.telephony_sweep"
GATEWAY_KEY = "twilio_gateway"
SWEEP_SECONDS = 30.0


def _svc() -> Services:
    from flask import current_app

    svc: Services = current_app.extensions["tipline"]
    return svc


def gateway_for(svc: Services) -> TwilioGateway:
    """The process's Twilio gateway (tests put a fake or a mock-backed one in ``extra``)."""
    gateway: TwilioGateway | None = svc.extra.get(GATEWAY_KEY)
    if gateway is None:
        gateway = build_gateway(svc.settings)
        svc.extra[GATEWAY_KEY] = gateway
    return gateway


def status_callback_url(svc: Services) -> str:
    return svc.settings.public_url.rstrip("/") + "/twilio/sms/status"


def run_telephony_task(task_id: int) -> str:
    svc = _svc()
    with svc.db.sessions() as session:
        return media.run_task(session, svc.vault, gateway_for(svc), svc.queue, task_id,
                              utcnow())


def run_relay_sms(message_id: int, job_key: str | None = None) -> str:
    svc = _svc()
    with svc.db.sessions() as session:
        return media.relay_sms(session, gateway_for(svc), message_id, utcnow(),
                               status_callback=status_callback_url(svc), job_key=job_key)


def run_held_sms(sid: str, sealed: str) -> str:
    """Take in a text the webhook held while the database was down (``spool``)."""
    from tipline.telephony.sms import staff_handler
    from tipline.telephony.spool import take_in_held

    svc = _svc()
    with svc.db.sessions() as session:
        return take_in_held(session, svc.vault, svc.queue, gateway_for(svc), sid, sealed,
                            utcnow(), conversation_days=svc.settings.sms_conversation_days,
                            staff=staff_handler(), status_callback=status_callback_url(svc)).kind


def run_telephony_sweep() -> media.SweepResult:
    svc = _svc()
    with svc.db.sessions() as session:
        return media.sweep(session, svc.queue, utcnow(),
                           timedelta(seconds=svc.settings.sweep_grace_seconds),
                           conversation_days=svc.settings.sms_conversation_days)


def register_tasks(celery: Celery) -> None:
    opts: dict[str, Any] = {"acks_late": True, "ignore_result": True}
    retry: dict[str, Any] = {"autoretry_for": (media.RetryLater,), "retry_backoff": 5,
                             "retry_backoff_max": 600, "retry_jitter": True,
                             "max_retries": media.MAX_ATTEMPTS}

    @celery.task(name=TASK_NAME, **retry, **opts)
    def telephony_task(task_id: int) -> None:
        run_telephony_task(task_id)

    @celery.task(name=media.RELAY_TASK, **retry, **opts)
    def relay_sms(message_id: int, job_key: str | None = None) -> None:
        run_relay_sms(message_id, job_key)

    # A text held while the database was down: retried until the database is back (up to
    # about 100 minutes, at most 30 s apart), so a restart loses no text.
    from sqlalchemy.exc import SQLAlchemyError

    from tipline.telephony.client import TwilioTransientError
    from tipline.telephony.spool import SPOOL_TASK

    @celery.task(name=SPOOL_TASK, autoretry_for=(SQLAlchemyError, TwilioTransientError),
                 retry_backoff=2, retry_backoff_max=30, retry_jitter=True, max_retries=200,
                 **opts)
    def held_sms(sid: str, sealed: str) -> None:
        run_held_sms(sid, sealed)

    @celery.task(name=SWEEP_TASK, **opts)
    def telephony_sweep() -> None:
        run_telephony_sweep()

    schedule = dict(celery.conf.beat_schedule or {})
    schedule.setdefault("telephony-sweep", {"task": SWEEP_TASK, "schedule": SWEEP_SECONDS})
    celery.conf.beat_schedule = schedule
