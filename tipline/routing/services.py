"""Routing a tip, delivering its alerts, and the sweep that re-sends what an outage left behind.

Every function here takes a session and explicit collaborators, and is what the Celery tasks in
``workers.tasks`` call. Each step is idempotent:

* ``route_job`` claims the job with a compare-and-set (``pending -> done``) in the same
  transaction that writes the dispatches, so a job routed twice routes once, and a worker that
  dies mid-way leaves the job ``pending`` for the sweep.
* ``deliver_alert`` records the delivery before sending (``pending -> sending``) and sets
  ``sent`` afterwards only if it is still ``sending`` (waiting for a database that went away,
  since the alert is out). A delivery left ``sending`` (worker killed mid-send, database lost,
  provider not answering) is settled by ``resolve_sending``, which asks the provider before
  sending anything again: never zero alerts, and a repeat only when the provider has no
  record of the first.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from tipline.db import rowcount
from tipline.directory.models import Contact, contact_schools
from tipline.jobs import JobQueue, after_commit
from tipline.routing import statements as sql
from tipline.routing.models import (
    AlertDelivery,
    DeliveryStatus,
    Dispatch,
    DispatchStatus,
    JobStatus,
    RoutingJob,
)
from tipline.routing.senders import (
    Alert,
    AlertSender,
    Found,
    PermanentSendError,
    SendHeld,
    TransientSendError,
)
from tipline.surge import services as surge
from tipline.tips.models import Severity, Tip

log = logging.getLogger(__name__)

SEVERITY_LABELS = {1: "low", 2: "medium", 3: "high", 4: "LIFE-SAFETY"}
# A delivery still ``sending`` this long after its claim is being sent by nobody: longer than
# a Twilio request may take (10 s to connect plus 10 s for the answer) and the commit after it.
# ``resolve_sending`` then asks the provider what became of it.
STALE_SENDING = timedelta(seconds=25)
# Where the provider's record of an alert claimed at T can lie: from T minus clock skew to
# T plus the longest request.
LOOKUP_BEFORE = timedelta(seconds=10)
LOOKUP_AFTER = timedelta(seconds=35)
# How long a worker keeps trying to record ``sent`` when the database is away, after the
# provider accepted the alert (beyond that, ``resolve_sending`` finds it at the provider).
RECORD_RETRY_SECONDS = 20.0


# -- plans ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanEntry:
    contact_id: int
    channels: tuple[str, ...]
    reason: str
    include_content: bool = False


@dataclass(frozen=True)
class PlanStep:
    entries: tuple[PlanEntry, ...]
    ack_within: timedelta | None
    delay: timedelta = timedelta(0)
    # Life-safety: re-alert this step's contacts at this interval until someone acknowledges.
    repeat_every: timedelta | None = None


@dataclass(frozen=True)
class Plan:
    rule: str
    steps: tuple[PlanStep, ...]
    explanation: dict[str, Any] = field(default_factory=dict)


class Planner(Protocol):
    def plan(self, session: Session, tip: Tip, now: datetime) -> Plan: ...


class DirectoryPlanner:
    """Fallback planner: the school's student-support and safety contacts, then district on-call.

    The policy engine replaces this when a routing policy is loaded; it is kept so a directory
    without a policy still routes every tip to someone and never to police.
    """

    SUPPORT_ROLES = ("counselor", "social_worker", "safety_team", "principal")
    LIFE_SAFETY_REPEAT = timedelta(minutes=5)

    def plan(self, session: Session, tip: Tip, now: datetime) -> Plan:
        explanation: dict[str, Any] = {"rule": "directory-default", "contacts": []}
        first: list[PlanEntry] = []
        if tip.school_id is not None:
            rows = session.execute(
                select(Contact)
                .join(contact_schools, contact_schools.c.contact_id == Contact.id)
                .where(contact_schools.c.school_id == tip.school_id, Contact.active.is_(True))
                .order_by(Contact.priority, Contact.id)
            ).scalars()
            for c in rows:
                if c.role in self.SUPPORT_ROLES and not contact_channels(c):
                    explanation["contacts"].append(
                        {"contact": c.key, "alerted": False, "why": "no sms, voice or email"}
                    )
                elif c.role in self.SUPPORT_ROLES:
                    first.append(PlanEntry(c.id, contact_channels(c),
                                           f"{c.role} for the tip's school"))
                else:
                    explanation["contacts"].append(
                        {"contact": c.key, "alerted": False, "why": f"role {c.role} not in default"}
                    )
        oncall_q = select(Contact).where(
            Contact.role == "district_oncall", Contact.active.is_(True)
        )
        if tip.district_id is not None:
            oncall_q = oncall_q.where(Contact.district_id == tip.district_id)
        oncall = [
            PlanEntry(c.id, contact_channels(c), "district on-call")
            for c in session.execute(oncall_q.order_by(Contact.priority, Contact.id)).scalars()
            if contact_channels(c)
        ]
        steps: list[PlanStep] = []
        urgent = tip.severity >= Severity.HIGH
        ack = timedelta(minutes=5 if urgent else 60)
        # Life-safety keeps alerting until someone acknowledges, with or without a policy.
        rep = self.LIFE_SAFETY_REPEAT if tip.severity >= Severity.LIFE_SAFETY else None
        if first:
            steps.append(PlanStep(tuple(first), ack, repeat_every=rep))
            if oncall:
                steps.append(PlanStep(tuple(oncall), ack, delay=ack, repeat_every=rep))
        elif oncall:
            steps.append(PlanStep(tuple(oncall), ack, repeat_every=rep))
        for step_no, step in enumerate(steps):
            for e in step.entries:
                explanation["contacts"].append(
                    {"contact_id": e.contact_id, "alerted": True, "step": step_no, "why": e.reason}
                )
        return Plan("directory-default", tuple(steps), explanation)


class ContactFacts(Protocol):
    """What planning reads of a contact: an ORM ``Contact`` or a plain row of its table."""

    @property
    def id(self) -> int: ...
    @property
    def key(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def sms_number(self) -> str | None: ...
    @property
    def voice_number(self) -> str | None: ...
    @property
    def email(self) -> str | None: ...
    @property
    def on_call(self) -> dict[str, Any] | None: ...
    @property
    def active(self) -> bool: ...


def contact_channels(c: ContactFacts) -> tuple[str, ...]:
    """Every channel the contact can be reached on, in the default order."""
    out = []
    if c.sms_number:
        out.append("sms")
    if c.voice_number:
        out.append("voice")
    if c.email:
        out.append("email")
    return tuple(out)


# -- routing -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RouteResult:
    job_id: int
    routed: bool  # False: someone else routed it already
    dispatches: int = 0
    deliveries: int = 0


def route_job(
    session: Session, job_id: int, planner: Planner, queue: JobQueue, now: datetime
) -> RouteResult:
    """Plan the tip, claim the job and write its dispatches and deliveries; commits.

    This runs for every tip of a surge, so it is a handful of statements: one load of the
    pending job's tip with its school and district, the planner's reads (the policy engine
    reads the directory once), the claim with the explanation, and one multi-row INSERT each
    for dispatches and deliveries.
    """
    found = session.execute(sql.PENDING_TIP, {"b_job": job_id}).first()
    if found is None:  # routed already, or deleted while queued (tip shredded)
        session.rollback()
        return RouteResult(job_id, routed=False)
    tip, reason = found
    # Surge grouping (tipline.surge): a later tip about a threat whose alert is being worked
    # adds to that chain instead of starting one; a more severe one routes as below.
    folded = surge.on_route(session, tip, reason, now)
    if folded is not None:
        return RouteResult(job_id, routed=surge.fold_job(session, job_id, folded, now))
    plan = planner.plan(session, tip, now)
    rows: list[dict[str, Any]] = []
    for idx, step in enumerate(plan.steps):
        due = now + step.delay
        active = step.delay <= timedelta(0)
        repeat = int(step.repeat_every.total_seconds()) if step.repeat_every else None
        for entry in step.entries:
            if not entry.channels:  # a dispatch no alert can ever go out for
                log.error("routing job %s: contact %s has no channel; not alerted", job_id,
                          entry.contact_id)
                continue
            rows.append({
                "job_id": job_id, "tip_id": tip.id, "contact_id": entry.contact_id,
                "rule": plan.rule[:80], "step_index": idx, "channels": list(entry.channels),
                "include_content": entry.include_content,
                "status": (DispatchStatus.ACTIVE if active else DispatchStatus.SCHEDULED).value,
                "due_at": due,
                "ack_deadline": (due + step.ack_within) if step.ack_within else None,
                "acknowledged_at": None, "ack_via": None, "ack_code": _ack_code(),
                "created_at": now, "activated_at": now if active else None,
                "repeat_every_seconds": repeat,
                "next_alert_at": (due + timedelta(seconds=repeat)) if repeat else None,
                "alert_round": 0,
            })
    status, error = JobStatus.DONE.value, None
    if not rows:  # an empty plan, or one whose steps alert nobody
        status = JobStatus.FAILED.value
        error = "no contact matched; check the directory and policy"
    # The claim: compare-and-set in the transaction that writes the dispatches, so a job
    # routed twice at once is written once (the second waits for the row, then finds it done).
    claimed = session.connection().execute(sql.CLAIM_JOB, {
        "b_job": job_id, "b_status": status, "b_now": now, "b_error": error,
        "b_explanation": plan.explanation | {"rule": plan.rule},
    }).rowcount
    if not claimed:
        session.rollback()
        return RouteResult(job_id, routed=False)
    if not rows:
        log.error("tip %s routed to nobody: no contact matched", tip.reference)
    if reason == "retriage":
        _cancel_open_dispatches(session, tip.id)
    sends: list[tuple[int, bool]] = []
    if rows:
        ids = session.execute(sql.INSERT_DISPATCHES, rows).scalars().all()
        life_safety = tip.severity >= Severity.LIFE_SAFETY
        first: list[dict[str, Any]] = []
        urgent: list[bool] = []
        for dispatch_id, row in zip(ids, rows, strict=True):
            if row["status"] != DispatchStatus.ACTIVE.value:
                continue
            for channel in round_channels(row["channels"], row["repeat_every_seconds"]):
                first.append({
                    "dispatch_id": dispatch_id, "channel": channel,
                    "idempotency_key": delivery_key(dispatch_id, channel, 0),
                    "status": DeliveryStatus.PENDING.value, "attempts": 0,
                    "provider": "outbox", "created_at": now, "updated_at": now,
                    "alert_round": 0,
                })
                urgent.append(life_safety or bool(row["repeat_every_seconds"]))
        if first:
            dl_ids = session.execute(sql.INSERT_DELIVERIES, first).scalars().all()
            sends = list(zip(dl_ids, urgent, strict=True))
    for dl_id, is_urgent in sends:
        after_commit(session, send_delivery, queue, dl_id, is_urgent)
    session.commit()
    return RouteResult(job_id, True, len(rows), len(sends))


def round_channels(channels: Sequence[str], repeat_every_seconds: int | None) -> list[str]:
    """The channels one alert round of a dispatch opens at once.

    Normally only the first; the next ones are opened if it fails. A life-safety dispatch (one
    that repeats) calls and texts at once: every voice and SMS channel it has.
    """
    if not channels:
        return []
    if repeat_every_seconds:
        return [c for c in channels if c in ("voice", "sms")] or [channels[0]]
    return [channels[0]]


def open_deliveries(session: Session, dispatch: Dispatch, round_no: int, flush: bool = True
                    ) -> list[AlertDelivery]:
    """Create the delivery rows for one alert round of a dispatch (``round_channels``)."""
    if not dispatch.channels:
        return []
    if dispatch.id is None:
        session.flush()
    out = []
    for channel in round_channels(dispatch.channels, dispatch.repeat_every_seconds):
        dl = AlertDelivery(
            dispatch=dispatch,
            channel=channel,
            idempotency_key=delivery_key(dispatch.id, channel, round_no),
            status=DeliveryStatus.PENDING.value,
            alert_round=round_no,
        )
        session.add(dl)
        out.append(dl)
    if flush:
        session.flush()
    return out


def delivery_key(dispatch_id: int, channel: str, round_no: int) -> str:
    """One delivery per dispatch, channel and alert round: the unique key that stops a second
    fallback or repeat for the same thing from being created twice."""
    return f"d{dispatch_id}-{channel}-r{round_no}"


def _cancel_open_dispatches(session: Session, tip_id: int) -> None:
    session.execute(
        update(Dispatch)
        .where(
            Dispatch.tip_id == tip_id,
            Dispatch.status.in_([DispatchStatus.ACTIVE.value, DispatchStatus.SCHEDULED.value,
                                 DispatchStatus.EXPIRED.value]),
        )
        .values(status=DispatchStatus.CANCELLED.value, next_alert_at=None)
        .execution_options(synchronize_session=False)
    )


def _ack_code() -> str:
    return f"{secrets.randbelow(10000):04d}"


# -- delivery ------------------------------------------------------------------------------
# A delivery that failed transiently this many times is given up and the next channel tried.
MAX_SEND_ATTEMPTS = 4
# Dispatch states in which alerts still go out: waiting for an answer, or escalated past its
# deadline but still unanswered (its fallbacks and life-safety repeats continue).
SENDABLE = (DispatchStatus.ACTIVE.value, DispatchStatus.EXPIRED.value,
            DispatchStatus.NOTICE.value)
# The same delivery task on the urgent queue (see tipline.celeryconf.URGENT_QUEUE): used for
# life-safety alerts and for alerts opened by escalation, so a surge does not delay them.
URGENT_DELIVERY_TASK = "tipline.deliver_urgent"


def send_delivery(queue: JobQueue, delivery_id: int, urgent: bool = False) -> bool:
    """Publish one delivery task, on the urgent queue when asked (called after commit, so it
    must be given plain values, not rows to load)."""
    if urgent:
        return queue.send_task(URGENT_DELIVERY_TASK, delivery_id)
    return queue.send_delivery(delivery_id)
CONTENT_LIMIT = {"sms": 300, "email": 4000}
# The reporter's language as an alert names it (``tips.language``).
LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "bs": "Bosnian"}


def alert_text(reference: str, category: str, severity: int, school_name: str | None,
               ack_code: str | None, language: str | None = None) -> tuple[str, str]:
    """Subject and text of an alert: category, severity, school, reference, how to ack, and
    the reporter's language when it is not English (so a speaker of it can answer).

    Tip content is added only when the matched rule allows it (``include_content``), and
    never to a voice call, which may be heard by anyone near the phone.
    """
    sev = SEVERITY_LABELS.get(severity, str(severity))
    where = school_name or "school not given"
    subject = f"[tipline] {sev} tip {reference}"
    said = LANGUAGE_NAMES.get(language or "en", language or "")
    lang = f" The reporter wrote in {said}." if language and language != "en" else ""
    text = (
        f"tipline alert {reference}: {category.replace('_', ' ')}, severity {sev}, "
        f"{where}.{lang} Reply ACK {ack_code} to acknowledge, or open the dashboard."
    )
    return subject, text


def _content(tip: Tip | None, channel: str) -> str:
    """The tip text an include_content alert carries: composed at intake, before the tip's
    key was sealed (``routing.audience.seal_alert_content``); nothing else of the tip is read."""
    limit = CONTENT_LIMIT.get(channel)
    if tip is None or not limit:
        return ""
    from tipline import crypto
    from tipline.routing.audience import open_alert_content

    body = open_alert_content(crypto.current(), tip)
    return body if len(body) <= limit else body[: limit - 1] + "…"


def voice_script(tip: Tip, school_name: str | None) -> str:
    """What the alert call says: category, severity, school and reference; never content."""
    sev = SEVERITY_LABELS.get(tip.severity, str(tip.severity)).lower().replace("-", " ")
    ref = " ".join(tip.reference.replace("-", ""))  # spelled out, character by character
    return (
        f"This is the tip line. A {sev} severity tip about "
        f"{tip.category.replace('_', ' ')}, for {school_name or 'no named school'}. "
        f"Reference {ref}. Press 1 to acknowledge."
    )


@dataclass(frozen=True)
class DeliveryResult:
    """What became of a delivery; the channel and tip when the delivery's row was read, so
    the metrics after it (``tipline.ops.hooks.delivery_done``) need not read them again."""

    delivery_id: int
    outcome: str  # sent | skipped | retry | failed
    channel: str | None = None
    tip_id: int | None = None
    sent_at: datetime | None = None  # when recorded as sent (outcome "sent")


def deliver_alert(
    session: Session,
    delivery_id: int,
    senders: Mapping[str, AlertSender],
    now: datetime,
    queue: JobQueue | None = None,
) -> DeliveryResult:
    """Send one delivery at most once per claim; commits. Raises TransientSendError to retry.

    Recorded before sending (``pending -> sending``), compare-and-set after
    (``sending -> sent``). A permanent failure, a missing route, or ``MAX_SEND_ATTEMPTS``
    transient failures mark it failed and open the contact's next channel (``queue`` sends it
    at once; without one the sweep does). It runs for every alert of a surge, so the claim
    with the read (one statement on PostgreSQL, two on SQLite) and the result are plain
    statements in two transactions.
    """
    conn = session.connection()
    params: dict[str, Any] = {"b_delivery": delivery_id, "b_now": now}
    if conn.dialect.name == "postgresql":
        row = conn.execute(sql.CLAIM_AND_READ, params).first()
    elif conn.execute(sql.CLAIM_DELIVERY, params).rowcount:
        row = conn.execute(sql.ALERT_FACTS, params).one()
    else:
        row = None
    if row is None:  # not pending: sent, being sent, or failed already
        session.rollback()
        return DeliveryResult(delivery_id, "skipped")
    session.commit()  # recorded as sending before anything goes out
    if row.dispatch_status not in SENDABLE:
        fail_delivery(session, delivery_id, now, f"dispatch {row.dispatch_status}", queue,
                      fallback=False)
        return DeliveryResult(delivery_id, "skipped")
    sender = senders.get(row.channel)
    alert = _alert_for(session, delivery_id, row, now)
    if alert is None or sender is None or not row.active:
        fail_delivery(session, delivery_id, now, f"no {row.channel} route for contact", queue)
        return DeliveryResult(delivery_id, "failed", row.channel, row.tip_id)
    try:
        ref = sender.send(session, alert)
    except TransientSendError as exc:
        session.rollback()
        if exc.unknown_outcome:
            # The provider may have accepted it: not sent again from here. It stays
            # ``sending``; resolve_sending asks the provider before any re-send.
            _note_unknown(session, delivery_id, f"outcome unknown: {str(exc)[:140]}")
            return DeliveryResult(delivery_id, "unknown")
        why = f"transient: {str(exc)[:150]}"
        if row.attempts >= MAX_SEND_ATTEMPTS and _has_next_channel(row.channels, row.channel):
            fail_delivery(session, delivery_id, now, why, queue, expect=DeliveryStatus.SENDING)
            return DeliveryResult(delivery_id, "failed", row.channel, row.tip_id)
        # The last channel is never given up on a transient error: it stays pending and the
        # sweep keeps re-sending it while the dispatch is open.
        _reset(session, delivery_id, now, why)
        raise
    except PermanentSendError as exc:
        session.rollback()
        fail_delivery(session, delivery_id, now, f"permanent: {str(exc)[:150]}", queue,
                      expect=DeliveryStatus.SENDING)
        return DeliveryResult(delivery_id, "failed", row.channel, row.tip_id)
    except SendHeld as held:
        # Paced (routing.pacing): back to pending, not counted as an attempt; the task
        # tries again at its turn, the wait the exception carries.
        session.rollback()
        _hold(session, delivery_id, now, held.wait)
        raise
    params |= {"b_provider": sender.name, "b_ref": ref[:64]}
    done = _record_sent(session, params)
    if not done:
        return DeliveryResult(delivery_id, "skipped")
    return DeliveryResult(delivery_id, "sent", row.channel, row.tip_id, now)


def _alert_for(session: Session, delivery_id: int, row: Any, now: datetime | None = None
               ) -> Alert | None:
    """The alert a delivery sends, from its facts (``sql.ALERT_FACTS``); None: no address."""
    recipient = {"sms": row.sms_number, "voice": row.voice_number,
                 "email": row.email}.get(row.channel)
    if not recipient:
        return None
    if row.dispatch_status == DispatchStatus.NOTICE.value:  # routing.notices: no content
        from tipline.routing.notices import notice_text

        more = surge.notice_more(session, delivery_id)  # "N more tips" (tipline.surge)
        if more is not None:
            return Alert(row.channel, recipient, *surge.notice_text(row.reference, more),
                         delivery_id, None, None)
        return Alert(row.channel, recipient, *notice_text(row.reference), delivery_id, None,
                     None)
    from tipline.directory.partners import content_allowed, school_shown

    school = school_shown(row.contact_kind, row.contact_agreement, row.school_name)
    subject, text = alert_text(row.reference, row.category, row.severity, school,
                               row.ack_code, row.language)
    stored: str | None = None
    if row.include_content and content_allowed(row.contact_kind, row.contact_agreement):
        extra = _content(session.get(Tip, row.tip_id), row.channel)
        if extra:
            stored = f"{text}\n\n(Tip text included in the alert; not stored here.)"
            text = f"{text}\n\nTip: {extra}"
    urgent = bool(getattr(row, "repeat_every_seconds", None)) \
        or row.severity >= Severity.LIFE_SAFETY
    created = getattr(row, "delivery_created", None)
    age = _age_seconds(created, now) if created is not None and now is not None else 0.0
    return Alert(row.channel, recipient, subject, text, delivery_id, row.ack_code, stored,
                 urgent=urgent, age_seconds=age,
                 last_channel=not _has_next_channel(row.channels or (), row.channel),
                 tip_id=int(getattr(row, "tip_id", 0) or 0))


def _age_seconds(created: datetime, now: datetime) -> float:
    """Seconds since ``created`` (SQLite hands back naive UTC datetimes)."""
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (now - created).total_seconds())


def _hold(session: Session, delivery_id: int, now: datetime, wait: float) -> None:
    """A paced delivery goes back to ``pending`` without counting the claim as an attempt;
    stamped with its turn, so the sweep does not take it for lost while its task waits."""
    session.execute(
        update(AlertDelivery)
        .where(AlertDelivery.id == delivery_id,
               AlertDelivery.status == DeliveryStatus.SENDING.value)
        .values(status=DeliveryStatus.PENDING.value, attempts=AlertDelivery.attempts - 1,
                last_error="held: senders' queue full",
                updated_at=now + timedelta(seconds=wait))
        .execution_options(synchronize_session=False)
    )
    session.commit()


def _record_sent(session: Session, params: dict[str, Any]) -> bool:
    """``sending -> sent`` after the provider accepted the alert; commits.

    The alert is out, so a database that went away is waited for (``RECORD_RETRY_SECONDS``)
    rather than the delivery being left for a re-send; past that, the delivery stays
    ``sending`` and ``resolve_sending`` finds it at the provider.
    """
    deadline = time.monotonic() + RECORD_RETRY_SECONDS
    pause = 0.5
    while True:
        try:
            conn = session.connection()
            done = conn.execute(sql.MARK_SENT, params).rowcount
            if not done:  # a status callback got here first: keep its status, record the ref
                conn.execute(sql.RECORD_REFERENCE, params)
            session.commit()
            return bool(done)
        except DBAPIError as exc:
            with contextlib.suppress(DBAPIError):
                session.rollback()
            if time.monotonic() + pause > deadline:
                log.warning("delivery %s accepted by the provider but not recorded (%s); left "
                            "to resolve_sending", params["b_delivery"], type(exc).__name__)
                raise
            time.sleep(pause)
            pause = min(pause * 2, 4.0)


def _note_unknown(session: Session, delivery_id: int, why: str) -> None:
    """Say why a delivery stays ``sending``; its claim time (``updated_at``) is kept, since
    ``resolve_sending`` looks for the provider's record around it."""
    session.execute(
        update(AlertDelivery)
        .where(AlertDelivery.id == delivery_id,
               AlertDelivery.status == DeliveryStatus.SENDING.value)
        .values(last_error=why[:200], updated_at=AlertDelivery.updated_at)
        .execution_options(synchronize_session=False)
    )
    session.commit()


def _has_next_channel(channels: Sequence[str], channel: str) -> bool:
    channels = list(channels)
    return channel in channels and channels.index(channel) < len(channels) - 1


def fail_delivery(
    session: Session,
    delivery_id: int,
    now: datetime,
    why: str,
    queue: JobQueue | None,
    *,
    fallback: bool = True,
    expect: DeliveryStatus | tuple[DeliveryStatus, ...] | None = None,
) -> AlertDelivery | None:
    """Mark a delivery failed and open the next channel; commits. Returns the fallback.

    With ``expect``, only a delivery still in that status is failed (compare-and-set), so a
    worker and a status callback failing the same delivery open one fallback, not two.
    """
    cond = [AlertDelivery.id == delivery_id]
    if expect is not None:
        wanted = (expect,) if isinstance(expect, DeliveryStatus) else expect
        cond.append(AlertDelivery.status.in_([w.value for w in wanted]))
    changed = rowcount(session.execute(
        update(AlertDelivery)
        .where(*cond)
        .values(status=DeliveryStatus.FAILED.value, last_error=why[:200], updated_at=now)
        .execution_options(synchronize_session=False)
    ))
    nxt = None
    if changed and fallback:
        dl = session.get(AlertDelivery, delivery_id)
        assert dl is not None  # noqa: S101
        nxt = open_fallback(session, dl, now)
        if nxt is not None and queue is not None:
            urgent = bool(dl.dispatch.repeat_every_seconds)
            after_commit(session, send_delivery, queue, nxt.id, urgent)
    session.commit()
    return nxt


def open_fallback(session: Session, failed: AlertDelivery, now: datetime) -> AlertDelivery | None:
    """The delivery for the contact's next channel after ``failed``'s (same round), or None."""
    session.refresh(failed)
    dispatch = failed.dispatch
    session.refresh(dispatch)
    if dispatch.status not in SENDABLE:
        return None
    channels = list(dispatch.channels)
    pos = channels.index(failed.channel) if failed.channel in channels else len(channels)
    for channel in channels[pos + 1:]:
        key = delivery_key(dispatch.id, channel, failed.alert_round)
        exists = session.execute(
            select(AlertDelivery.id).where(AlertDelivery.idempotency_key == key)
        ).scalar_one_or_none()
        if exists is not None:  # already opened (in parallel, or by an earlier failure)
            continue
        nxt = AlertDelivery(dispatch_id=dispatch.id, channel=channel, idempotency_key=key,
                            status=DeliveryStatus.PENDING.value, alert_round=failed.alert_round,
                            created_at=now, updated_at=now)
        try:
            with session.begin_nested():
                session.add(nxt)
        except IntegrityError:  # opened concurrently by another worker
            return None
        log.warning("delivery %s over %s failed; falling back to %s", failed.id,
                    failed.channel, channel)
        return nxt
    log.error("no further channel for dispatch %s after %s failed (round %s)", dispatch.id,
              failed.channel, failed.alert_round)
    return None


# Twilio's status values: what each means for a delivery.
# A call's "in-progress" is the answer (status callback event "answered"): the phone was reached.
_DELIVERED = {"delivered", "read", "completed", "in-progress"}
_FAILED = {"undelivered", "failed", "busy", "no-answer", "canceled"}


def record_provider_status(
    session: Session,
    delivery_id: int,
    provider_ref: str | None,
    status: str,
    queue: JobQueue | None,
    now: datetime,
) -> bool:
    """Apply a provider status callback; ``undelivered``/``failed`` (a call: ``busy``,
    ``no-answer``...) fail the delivery and open the next channel. Commits.

    Returns False if the delivery is unknown or the reference is not this delivery's.
    """
    dl = session.get(AlertDelivery, delivery_id)
    if dl is None:
        return False
    if provider_ref and dl.provider_ref and dl.provider_ref != provider_ref:
        return False
    status = (status or "").strip().lower()[:20]
    values: dict[str, Any] = {"provider_status": status, "updated_at": now}
    if provider_ref and not dl.provider_ref:
        values["provider_ref"] = provider_ref[:64]
    session.execute(
        update(AlertDelivery).where(AlertDelivery.id == delivery_id).values(**values)
        .execution_options(synchronize_session=False)
    )
    if status in _DELIVERED:
        session.execute(
            update(AlertDelivery)
            .where(AlertDelivery.id == delivery_id,
                   AlertDelivery.status.in_([DeliveryStatus.SENDING.value,
                                             DeliveryStatus.SENT.value]))
            .values(status=DeliveryStatus.DELIVERED.value)
            .execution_options(synchronize_session=False)
        )
        # The first callback that says it reached the phone is when it did; a later
        # "completed" after "in-progress" keeps the answer's time.
        session.execute(
            update(AlertDelivery)
            .where(AlertDelivery.id == delivery_id, AlertDelivery.delivered_at.is_(None),
                   AlertDelivery.status == DeliveryStatus.DELIVERED.value)
            .values(delivered_at=now)
            .execution_options(synchronize_session=False)
        )
        session.commit()
    elif status in _FAILED:
        fail_delivery(session, delivery_id, now, f"provider: {status}", queue,
                      expect=(DeliveryStatus.SENDING, DeliveryStatus.SENT,
                              DeliveryStatus.DELIVERED))
    else:
        session.commit()
    return True


def _reset(session: Session, delivery_id: int, now: datetime, why: str) -> None:
    session.execute(
        update(AlertDelivery)
        .where(
            AlertDelivery.id == delivery_id,
            AlertDelivery.status == DeliveryStatus.SENDING.value,
        )
        .values(status=DeliveryStatus.PENDING.value, last_error=why[:200], updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()


# -- sweep ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepResult:
    jobs_resent: int
    deliveries_resent: int


# The sweep re-sends a pending item again only after a wait that doubles with its age (but at
# most this long): in a surge, tasks wait in the broker longer than the grace period, and
# re-sending every queued item on every run would multiply the backlog it is waiting behind.
MAX_RESEND_SPACING = timedelta(minutes=5)


def _due_again(now: datetime, created: datetime, last_sent: datetime, grace: timedelta) -> bool:
    spacing = min(max(grace, (now - created) / 2), MAX_RESEND_SPACING)
    return now - last_sent >= spacing


@dataclass(frozen=True)
class Waiting:
    """The routing jobs and deliveries whose tasks wait in the broker's queues right now."""

    jobs: frozenset[int]
    deliveries: frozenset[int]


def sweep(session: Session, queue: JobQueue, now: datetime, grace: timedelta,
          backlog: int | None = None, waiting: Waiting | None = None) -> SweepResult:
    """Re-send routing jobs and deliveries that should have run by now.

    Items flagged ``publish_failed`` (their publish after commit failed: not in the broker)
    are re-sent at once, backlog or not. Other jobs still ``pending`` after ``grace`` were
    never taken (broker down at intake, or a
    worker died before committing). Deliveries stuck in ``sending`` are not the sweep's:
    ``resolve_sending`` asks the provider about them first. What was re-sent is stamped
    (``RoutingJob.enqueued_at``, ``AlertDelivery.updated_at``) and re-sent again only after a
    wait that doubles with the item's age (``_due_again``), so a backlog is not multiplied.
    ``backlog``: tasks waiting in the broker, when the caller can tell; while there are some,
    pending items are most likely among them and are re-sent only after ``MAX_RESEND_SPACING``.
    ``waiting``: what exactly waits in the broker, when the caller could read it (then
    ``backlog`` is not needed): what waits there is not re-sent, and what does not (a message
    lost with a Redis restart, or held by a killed worker until the visibility timeout) is
    re-sent after ``grace``, backlog or not.
    """
    if backlog and waiting is None:
        grace = max(grace, MAX_RESEND_SPACING)
    cutoff = now - grace
    # Items whose publish failed are not in the broker: re-sent now, backlog or not.
    job_ids = list(session.execute(
        select(RoutingJob.id)
        .where(RoutingJob.status == JobStatus.PENDING.value, RoutingJob.publish_failed)
        .order_by(RoutingJob.id)
        .limit(1000)
    ).scalars())
    job_rows = session.execute(
        select(RoutingJob.id, RoutingJob.created_at, RoutingJob.enqueued_at)
        .where(RoutingJob.status == JobStatus.PENDING.value, RoutingJob.created_at < cutoff,
               (RoutingJob.enqueued_at.is_(None)) | (RoutingJob.enqueued_at < cutoff),
               RoutingJob.publish_failed.is_(False))
        .order_by(RoutingJob.id)
        .limit(1000)
    ).all()
    queued_jobs = waiting.jobs if waiting else frozenset()
    job_ids += [j for j, created, sent in job_rows
                if j not in queued_jobs and _due_again(now, created, sent or created, grace)]
    delivery_ids = list(session.execute(
        select(AlertDelivery.id)
        .where(AlertDelivery.status == DeliveryStatus.PENDING.value,
               AlertDelivery.publish_failed)
        .order_by(AlertDelivery.id)
        .limit(5000)
    ).scalars())
    dl_rows = session.execute(
        select(AlertDelivery.id, AlertDelivery.created_at, AlertDelivery.updated_at)
        .where(
            AlertDelivery.status == DeliveryStatus.PENDING.value,
            AlertDelivery.updated_at < cutoff,
            AlertDelivery.publish_failed.is_(False),
        )
        .order_by(AlertDelivery.id)
        .limit(5000)
    ).all()
    queued_dls = waiting.deliveries if waiting else frozenset()
    delivery_ids += [d for d, created, last in dl_rows
                     if d not in queued_dls and _due_again(now, created, last, grace)]
    urgent = _urgent(session, delivery_ids)
    sent_jobs = [j for j in job_ids if queue.send_routing(j)]
    sent_dls = [d for d in delivery_ids if send_delivery(queue, d, d in urgent)]
    # Stamp only what the broker took: after an outage, the rest is re-sent on the next run.
    if sent_jobs:
        session.execute(
            update(RoutingJob)
            .where(RoutingJob.id.in_(sent_jobs), RoutingJob.status == JobStatus.PENDING.value)
            .values(enqueued_at=now, publish_failed=False)
            .execution_options(synchronize_session=False)
        )
    if sent_dls:
        session.execute(
            update(AlertDelivery)
            .where(AlertDelivery.id.in_(sent_dls),
                   AlertDelivery.status == DeliveryStatus.PENDING.value)
            .values(updated_at=now, publish_failed=False)
            .execution_options(synchronize_session=False)
        )
    session.commit()
    jobs, dels = len(sent_jobs), len(sent_dls)
    if jobs or dels:
        log.info("sweep re-sent %d routing jobs, %d deliveries", jobs, dels)
    return SweepResult(jobs, dels)


def _urgent(session: Session, delivery_ids: Sequence[int]) -> set[int]:
    """Which of these deliveries go on the urgent queue (life-safety), as when first sent."""
    if not delivery_ids:
        return set()
    return set(session.execute(
        select(AlertDelivery.id)
        .join(Dispatch, Dispatch.id == AlertDelivery.dispatch_id)
        .join(Tip, Tip.id == Dispatch.tip_id)
        .where(AlertDelivery.id.in_(delivery_ids),
               Dispatch.repeat_every_seconds.is_not(None)
               | (Tip.severity >= Severity.LIFE_SAFETY))
    ).scalars())



# -- deliveries whose outcome is unknown ----------------------------------------------------
@dataclass(frozen=True)
class ResolveResult:
    found: int  # the provider had it: recorded as sent, not sent again
    resent: int  # the provider has no record of it (or cannot have one): sent again
    waiting: int  # the provider could not be asked: asked again at the next run


def resolve_sending(session: Session, senders: Mapping[str, AlertSender], queue: JobQueue,
                    now: datetime, stale: timedelta = STALE_SENDING) -> ResolveResult:
    """Settle deliveries left ``sending`` (worker killed mid-send, database lost before
    ``sent`` was recorded, provider timed out) by asking the provider first; commits.

    Each Twilio alert carries its delivery id in its status-callback URL, so a callback may
    already have recorded the provider's reference: then it was accepted. Otherwise the
    provider's records for the same number (a text: with the same words) created around the
    claim and not recorded for any other delivery are looked up. Found: ``sent``, nothing is
    sent again. None: back to ``pending`` and sent again. When several deliveries to one
    number are unresolved and fewer records than deliveries are found, which ones went out
    is unknown: all of them are sent again (a repeated alert rather than a missed one).
    The outbox records an alert in the same transaction as ``sent``, so for it ``sending``
    means not sent; an SMTP server cannot be asked, so an email is sent again.
    """
    rows = session.execute(
        select(AlertDelivery.id, AlertDelivery.updated_at, AlertDelivery.provider_ref,
               AlertDelivery.provider_status, AlertDelivery.dispatch_id, Dispatch.contact_id)
        .join(Dispatch, Dispatch.id == AlertDelivery.dispatch_id)
        .where(AlertDelivery.status == DeliveryStatus.SENDING.value,
               AlertDelivery.updated_at < now - stale)
        .order_by(AlertDelivery.id)
        .limit(200)
    ).all()
    session.rollback()
    found = waiting = 0
    resend: list[int] = []
    for row in rows:
        if row.id in resend:
            continue
        if row.provider_ref:  # a status callback reported it: the provider has it
            found += _settle_sent(session, row.id, None, row.provider_status, now)
            continue
        facts = session.execute(sql.ALERT_FACTS, {"b_delivery": row.id}).one()
        sender = senders.get(facts.channel)
        alert = _alert_for(session, row.id, facts)
        lookup = getattr(sender, "lookup", None)
        if alert is None or lookup is None:
            resend.append(row.id)
            continue
        try:
            records: list[Found] = lookup(alert)
        except TransientSendError as exc:
            log.warning("delivery %s: provider cannot be asked (%s); next run", row.id, exc)
            waiting += 1
            continue
        lo, hi = row.updated_at - LOOKUP_BEFORE, row.updated_at + LOOKUP_AFTER
        refs = [r.ref for r in records]
        taken = set(session.execute(
            select(AlertDelivery.provider_ref).where(AlertDelivery.provider_ref.in_(refs))
        ).scalars()) if refs else set()
        candidates = [r for r in records if r.ref not in taken
                      and (r.created is None or lo <= r.created <= hi)]
        # Other unresolved deliveries the same records could belong to: the same contact
        # and channel (a text: the same dispatch, since its words name the tip) nearby.
        same = (AlertDelivery.dispatch_id == row.dispatch_id) if facts.channel == "sms" \
            else (Dispatch.contact_id == row.contact_id)
        peers = list(session.execute(
            select(AlertDelivery.id, AlertDelivery.updated_at)
            .join(Dispatch, Dispatch.id == AlertDelivery.dispatch_id)
            .where(same, AlertDelivery.channel == facts.channel,
                   AlertDelivery.status == DeliveryStatus.SENDING.value,
                   AlertDelivery.provider_ref.is_(None),
                   AlertDelivery.updated_at > lo - LOOKUP_AFTER,
                   AlertDelivery.updated_at < hi + LOOKUP_BEFORE)
        ).all())
        session.rollback()
        if not candidates:
            resend.append(row.id)
        elif len(candidates) >= len(peers):
            oldest = candidates[-1]  # newest first: the earliest record in the window
            found += _settle_sent(session, row.id, oldest.ref, oldest.status, now)
        else:
            log.warning("delivery %s: %d records for %d unresolved alerts to one number; "
                        "sending the stale ones again", row.id, len(candidates), len(peers))
            resend += [p.id for p in peers if p.updated_at < now - stale and p.id not in resend]
    requeued = _requeue(session, resend, now, queue)
    if found or requeued or waiting:
        log.info("resolved deliveries left sending: %d found at the provider, %d sent again, "
                 "%d waiting", found, requeued, waiting)
    return ResolveResult(found, requeued, waiting)


def _settle_sent(session: Session, delivery_id: int, ref: str | None, status: str | None,
                 now: datetime) -> int:
    values: dict[str, Any] = {"status": DeliveryStatus.SENT.value, "sent_at": now,
                              "updated_at": now,
                              "last_error": "outcome was unknown; found at the provider"}
    if ref is not None:
        values |= {"provider": "twilio", "provider_ref": ref[:64],
                   "provider_status": (status or "")[:20] or None}
    n = rowcount(session.execute(
        update(AlertDelivery)
        .where(AlertDelivery.id == delivery_id,
               AlertDelivery.status == DeliveryStatus.SENDING.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    ))
    session.commit()
    return n


def _requeue(session: Session, ids: list[int], now: datetime, queue: JobQueue) -> int:
    """``sending -> pending`` for deliveries the provider does not have; sent after commit."""
    if not ids:
        return 0
    changed = [i for i in ids if rowcount(session.execute(
        update(AlertDelivery)
        .where(AlertDelivery.id == i, AlertDelivery.status == DeliveryStatus.SENDING.value)
        .values(status=DeliveryStatus.PENDING.value, updated_at=now,
                last_error="not at the provider after the sender was lost; sent again")
        .execution_options(synchronize_session=False)
    ))]
    urgent = _urgent(session, changed)
    for i in changed:
        after_commit(session, send_delivery, queue, i, i in urgent)
    session.commit()
    return len(changed)
