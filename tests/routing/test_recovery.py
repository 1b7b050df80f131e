"""Recovery after faults, in-process: what the sweep re-sends, and how a delivery whose
outcome is unknown is resolved by asking the provider before anything is sent again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import event, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tests.factories import make_tip
from tests.routing.delivery_support import StepSpec, queued_deliveries, route
from tipline.db import utcnow
from tipline.jobs import RecordingQueue
from tipline.routing.models import AlertDelivery, RoutingJob
from tipline.routing.senders import TwilioSmsSender, TwilioVoiceSender
from tipline.routing.services import (
    STALE_SENDING,
    ResolveResult,
    deliver_alert,
    record_provider_status,
    resolve_sending,
    sweep,
)
from tipline.telephony.client import FakeTwilioGateway, SentRecord, TwilioTransientError


def test_jobs_that_never_reached_the_broker_are_sent_at_once_backlog_or_not(
        db_session, vault, queue):
    lost = make_tip(db_session, vault, queue)  # publish failed: flagged by the queue
    queued = make_tip(db_session, vault, queue)  # published: most likely waiting in line
    db_session.execute(update(RoutingJob).where(RoutingJob.id == lost.job_id)
                       .values(publish_failed=True))
    db_session.commit()
    queue.sent.clear()
    now = db_session.get(RoutingJob, lost.job_id).created_at + timedelta(seconds=1)
    res = sweep(db_session, queue, now, timedelta(seconds=20), backlog=2_000)
    assert res.jobs_resent == 1
    assert queue.sent == [("tipline.route_job", (lost.job_id,))]
    db_session.expire_all()
    assert db_session.get(RoutingJob, lost.job_id).publish_failed is False
    assert db_session.get(RoutingJob, queued.job_id).publish_failed is False
    # The broker is down again for the next send: still flagged by nobody, still pending.
    queue.sent.clear()
    assert sweep(db_session, queue, now + timedelta(seconds=2), timedelta(seconds=20),
                 backlog=2_000).jobs_resent == 0


# -- deliveries whose outcome is unknown ----------------------------------------------------
class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing after it runs in the worker (not an Exception)."""


@dataclass
class DyingGateway(FakeTwilioGateway):
    """A Twilio stand-in around which the worker dies: ``accept`` says whether Twilio got the
    request first; ``silent`` makes it accept and then not answer (a timeout)."""

    die: str = ""  # "" | "before" | "after" | "silent" | "silent-lost"
    lookups: int = 0
    lookup_error: Exception | None = None

    def send_sms(self, to: str, body: str, *, status_callback: str | None = None,
                 validity_period: int | None = None) -> str:
        mode, self.die = self.die, ""
        if mode == "before":
            raise WorkerKilled
        if mode == "silent-lost":  # no answer, and Twilio never got it
            raise TwilioTransientError("send_sms: ReadTimeout", unknown_outcome=True)
        sid = super().send_sms(to, body, status_callback=status_callback)
        if mode == "after":
            raise WorkerKilled
        if mode == "silent":
            raise TwilioTransientError("send_sms: ReadTimeout", unknown_outcome=True)
        return sid

    def start_call(self, to: str, *, url: str | None = None, twiml: str | None = None,
                   status_callback: str | None = None) -> str:
        mode, self.die = self.die, ""
        if mode == "before":
            raise WorkerKilled
        sid = super().start_call(to, url=url, twiml=twiml, status_callback=status_callback)
        if mode == "after":
            raise WorkerKilled
        return sid

    def find_messages(self, to: str) -> list[SentRecord]:
        self.lookups += 1
        if self.lookup_error is not None:
            raise self.lookup_error
        return super().find_messages(to)

    def find_calls(self, to: str) -> list[SentRecord]:
        self.lookups += 1
        return super().find_calls(to)


def _twilio(gw: DyingGateway) -> dict[str, Any]:
    url = "https://tips.example.org"
    return {"sms": TwilioSmsSender(gw, url), "voice": TwilioVoiceSender(gw, url)}


def _one_sms(db_session: Session, vault: Any, queue: RecordingQueue) -> int:
    route(db_session, vault, queue, [StepSpec(("slps-roosevelt-counselor",), ("sms",))])
    [dl_id] = queued_deliveries(queue)
    queue.sent.clear()
    return dl_id


def _status(db_session: Session, dl_id: int) -> AlertDelivery:
    db_session.expire_all()
    dl = db_session.get(AlertDelivery, dl_id)
    assert dl is not None
    return dl


def _deliver(db_session: Session, dl_id: int, senders: dict[str, Any],
             queue: RecordingQueue) -> str | None:
    try:
        return deliver_alert(db_session, dl_id, senders, utcnow(), queue).outcome
    except WorkerKilled:
        db_session.rollback()
        return None


LATER = STALE_SENDING + timedelta(seconds=5)


def test_worker_lost_after_twilio_accepted_is_found_not_resent(db_session, vault, queue,
                                                               demo_directory):
    gw = DyingGateway(die="after")
    senders = _twilio(gw)
    dl_id = _one_sms(db_session, vault, queue)
    assert _deliver(db_session, dl_id, senders, queue) is None
    assert _status(db_session, dl_id).status == "sending" and len(gw.sent) == 1
    # Not stale yet: a live worker may still be sending it.
    assert resolve_sending(db_session, senders, queue, utcnow()) == ResolveResult(0, 0, 0)
    res = resolve_sending(db_session, senders, queue, utcnow() + LATER)
    assert res == ResolveResult(found=1, resent=0, waiting=0)
    dl = _status(db_session, dl_id)
    assert (dl.status, dl.provider_ref) == ("sent", gw.sent[0]["sid"])
    assert queue.sent == [] and len(gw.sent) == 1


def test_worker_lost_before_twilio_got_it_is_sent_again_once(db_session, vault, queue,
                                                             demo_directory):
    gw = DyingGateway(die="before")
    senders = _twilio(gw)
    dl_id = _one_sms(db_session, vault, queue)
    assert _deliver(db_session, dl_id, senders, queue) is None
    res = resolve_sending(db_session, senders, queue, utcnow() + LATER)
    assert res == ResolveResult(found=0, resent=1, waiting=0)
    assert queued_deliveries(queue) == [dl_id]
    assert _deliver(db_session, dl_id, senders, queue) == "sent"
    assert len(gw.sent) == 1


def test_a_twilio_timeout_is_not_retried_blindly(db_session, vault, queue, demo_directory):
    gw = DyingGateway(die="silent")  # Twilio took it and did not answer in time
    senders = _twilio(gw)
    dl_id = _one_sms(db_session, vault, queue)
    assert _deliver(db_session, dl_id, senders, queue) == "unknown"
    dl = _status(db_session, dl_id)
    assert dl.status == "sending" and dl.last_error.startswith("outcome unknown")
    assert queue.sent == []
    res = resolve_sending(db_session, senders, queue, utcnow() + LATER)
    assert res.found == 1 and len(gw.sent) == 1
    assert _status(db_session, dl_id).provider_ref == gw.sent[0]["sid"]


def test_a_twilio_timeout_without_a_record_is_sent_again(db_session, vault, queue,
                                                         demo_directory):
    gw = DyingGateway(die="silent-lost")
    senders = _twilio(gw)
    dl_id = _one_sms(db_session, vault, queue)
    assert _deliver(db_session, dl_id, senders, queue) == "unknown"
    assert resolve_sending(db_session, senders, queue, utcnow() + LATER).resent == 1
    assert _deliver(db_session, dl_id, senders, queue) == "sent"
    assert len(gw.sent) == 1


def test_twilio_that_cannot_be_asked_means_wait_not_resend(db_session, vault, queue,
                                                           demo_directory):
    gw = DyingGateway(die="after", lookup_error=TwilioTransientError("find_messages: 503"))
    senders = _twilio(gw)
    dl_id = _one_sms(db_session, vault, queue)
    _deliver(db_session, dl_id, senders, queue)
    assert resolve_sending(db_session, senders, queue, utcnow() + LATER).waiting == 1
    assert _status(db_session, dl_id).status == "sending" and queue.sent == []
    gw.lookup_error = None
    assert resolve_sending(db_session, senders, queue, utcnow() + LATER).found == 1


def test_a_status_callback_settles_it_without_asking(db_session, vault, queue,
                                                     demo_directory):
    gw = DyingGateway(die="after")
    senders = _twilio(gw)
    dl_id = _one_sms(db_session, vault, queue)
    _deliver(db_session, dl_id, senders, queue)
    sid = gw.sent[0]["sid"]
    assert record_provider_status(db_session, dl_id, sid, "sent", queue, utcnow())
    res = resolve_sending(db_session, senders, queue, utcnow() + LATER)
    assert res.found == 1 and gw.lookups == 0
    assert _status(db_session, dl_id).status == "sent"


def test_another_tips_text_to_the_same_number_is_not_taken_for_this_one(
        db_session, vault, queue, demo_directory):
    gw = DyingGateway()
    senders = _twilio(gw)
    first = _one_sms(db_session, vault, queue)
    assert _deliver(db_session, first, senders, queue) == "sent"  # tip 1's text went out
    gw.die = "before"
    second = _one_sms(db_session, vault, queue)  # tip 2's never reached Twilio
    _deliver(db_session, second, senders, queue)
    assert resolve_sending(db_session, senders, queue, utcnow() + LATER).resent == 1
    assert queued_deliveries(queue) == [second]


def test_ambiguous_calls_to_one_number_are_all_sent_again(db_session, vault, queue,
                                                          demo_directory):
    gw = DyingGateway()
    senders = _twilio(gw)
    ids = []
    for die in ("after", "before"):  # two tips' calls to one contact: one reached Twilio
        route(db_session, vault, queue, [StepSpec(("slps-roosevelt-counselor",), ("voice",))])
        [dl_id] = queued_deliveries(queue)
        queue.sent.clear()
        gw.die = die
        _deliver(db_session, dl_id, senders, queue)
        ids.append(dl_id)
    assert len(gw.calls) == 1
    res = resolve_sending(db_session, senders, queue, utcnow() + LATER)
    # Which of the two went out cannot be told: both again, never neither.
    assert res.resent == 2 and sorted(queued_deliveries(queue)) == sorted(ids)


def test_sent_is_recorded_once_the_database_is_back(db_session, vault, queue, demo_directory,
                                                    monkeypatch):
    from tipline.routing import services

    gw = DyingGateway()
    senders = _twilio(gw)
    dl_id = _one_sms(db_session, vault, queue)
    failures = [OperationalError("UPDATE", {}, Exception("server closed the connection"))] * 2
    conn = db_session.connection()

    def flaky(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("UPDATE alert_deliveries SET status") and "sent_at" in \
                statement and failures:
            raise failures.pop()

    event.listen(conn, "before_cursor_execute", flaky)
    monkeypatch.setattr(services.time, "sleep", lambda s: None)
    try:
        assert _deliver(db_session, dl_id, senders, queue) == "sent"
    finally:
        event.remove(conn, "before_cursor_execute", flaky)
    assert failures == [] and len(gw.sent) == 1
    assert _status(db_session, dl_id).status == "sent"


def test_jobs_lost_from_the_broker_are_re_sent_after_the_grace_period_backlog_or_not(
        db_session, vault, queue):
    """A Redis restart loses what was queued, a killed worker holds what it reserved until
    the visibility timeout: such a job is not in the broker's queues and is re-sent after the
    grace period even in a surge; one still waiting in the queue is not re-sent."""
    from tipline.routing.services import Waiting

    lost = make_tip(db_session, vault, queue)
    queued = make_tip(db_session, vault, queue)
    db_session.commit()  # both published after commit
    queue.sent.clear()
    grace = timedelta(seconds=20)
    created = db_session.get(RoutingJob, lost.job_id).created_at
    waiting = Waiting(jobs=frozenset({queued.job_id}), deliveries=frozenset())
    # Within the grace period nothing; after it, the lost job only, though 2,000 tasks wait.
    assert sweep(db_session, queue, created + timedelta(seconds=10), grace, backlog=2_000,
                 waiting=waiting).jobs_resent == 0
    res = sweep(db_session, queue, created + timedelta(seconds=21), grace, backlog=2_000,
                waiting=waiting)
    assert queue.sent == [("tipline.route_job", (lost.job_id,))], (queue.sent, queued.job_id)
    assert res.jobs_resent == 1
    # Without knowing what waits, a backlog holds both back (MAX_RESEND_SPACING).
    queue.sent.clear()
    assert sweep(db_session, queue, created + timedelta(seconds=60), grace,
                 backlog=2_000).jobs_resent == 0
