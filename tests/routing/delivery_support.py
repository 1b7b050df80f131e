"""Helpers for the delivery, acknowledgement and escalation tests.

``StaticPlanner`` is a hand-written planner that returns a fixed plan over demo contacts
(by key), so these tests do not depend on the policy engine. ``route`` makes a tip and routes
it with such a plan; ``RecordingSender`` and ``FailingSender`` stand in for providers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.factories import make_tip
from tipline.db import utcnow
from tipline.directory.models import Contact
from tipline.jobs import RecordingQueue
from tipline.routing.audience import seal_alert_content
from tipline.routing.models import AlertDelivery, Dispatch
from tipline.routing.senders import Alert, PermanentSendError, TransientSendError
from tipline.routing.services import Plan, PlanEntry, PlanStep, route_job
from tipline.tips.models import Category, Severity, Tip


@dataclass(frozen=True)
class StepSpec:
    contacts: tuple[str, ...]
    channels: tuple[str, ...] = ("sms", "voice", "email")
    ack_within: timedelta | None = timedelta(minutes=5)
    delay: timedelta = timedelta(0)
    repeat_every: timedelta | None = None
    include_content: bool = False


@dataclass
class StaticPlanner:
    steps: list[StepSpec]
    rule: str = "test-rule"

    def plan(self, session: Session, tip: Tip, now: datetime) -> Plan:
        out = []
        for spec in self.steps:
            entries = []
            for key in spec.contacts:
                c = session.execute(select(Contact).where(Contact.key == key)).scalar_one()
                entries.append(PlanEntry(c.id, spec.channels, f"test: {key}",
                                         spec.include_content))
            out.append(PlanStep(tuple(entries), spec.ack_within, spec.delay, spec.repeat_every))
        return Plan(self.rule, tuple(out), {"rule": self.rule})


@dataclass
class Routed:
    tip_id: int
    job_id: int
    reference: str
    now: datetime


def route(session: Session, vault: Any, queue: RecordingQueue, steps: list[StepSpec],
          now: datetime | None = None, body: str = "Someone said they will bring a knife",
          school_code: str = "slps-roosevelt", category: Category = Category.THREAT,
          severity: Severity = Severity.HIGH) -> Routed:
    r = make_tip(session, vault, queue, body=body, school_code=school_code, category=category,
                 severity=severity)
    if any(spec.include_content for spec in steps):
        # What intake stores when the policy's rule for the tip says include_content (these
        # tests plan with a static planner, which intake does not consult).
        tip = session.get(Tip, r.tip_id)
        assert tip is not None
        tip.alert_content_ct = seal_alert_content(vault, tip.uid, body)
    session.commit()
    now = now or utcnow()
    result = route_job(session, r.job_id, StaticPlanner(steps), queue, now)
    assert result.routed
    return Routed(r.tip_id, r.job_id, r.reference, now)


def dispatches(session: Session, tip_id: int) -> list[Dispatch]:
    rows = session.execute(
        select(Dispatch).where(Dispatch.tip_id == tip_id).order_by(Dispatch.step_index,
                                                                   Dispatch.id)
    ).scalars().all()
    for d in rows:
        session.refresh(d)
    return list(rows)


def deliveries(session: Session, tip_id: int) -> list[AlertDelivery]:
    rows = session.execute(
        select(AlertDelivery).join(Dispatch).where(Dispatch.tip_id == tip_id)
        .order_by(AlertDelivery.id)
    ).scalars().all()
    for d in rows:
        session.refresh(d)
    return list(rows)


def contact_key(session: Session, dispatch: Dispatch) -> str:
    c = session.get(Contact, dispatch.contact_id)
    assert c is not None
    return c.key


def queued_deliveries(queue: RecordingQueue, urgent: bool | None = None) -> list[int]:
    """Delivery ids published, in order (``urgent``: only those on one queue or the other)."""
    names = {None: ("tipline.deliver_alert", "tipline.deliver_urgent"),
             True: ("tipline.deliver_urgent",), False: ("tipline.deliver_alert",)}[urgent]
    return [args[0] for name, args in queue.sent if name in names]


@dataclass
class RecordingSender:
    name: str = "recording"
    sent: list[Alert] = field(default_factory=list)

    def send(self, session: Session, alert: Alert) -> str:
        self.sent.append(alert)
        return f"ref-{alert.delivery_id}"


@dataclass
class FailingSender:
    """Fails every send, transiently or permanently; counts the attempts."""

    transient: bool = True
    name: str = "failing"
    attempts: int = 0

    def send(self, session: Session, alert: Alert) -> str:
        self.attempts += 1
        if self.transient:
            raise TransientSendError("timed out")
        raise PermanentSendError("invalid number")


class SmtpSink:
    """A real local SMTP server (aiosmtpd) that keeps what it receives.

    ``rcpt_reply`` makes it answer RCPT with that line (e.g. ``550 5.1.1 no such user``).
    """

    def __init__(self, port: int = 0) -> None:
        from aiosmtpd.controller import Controller

        from tests.livesupport import free_port

        self.messages: list[dict[str, Any]] = []
        self.rcpt_reply: str | None = None
        sink = self

        class Handler:
            async def handle_RCPT(self, server: Any, session: Any, envelope: Any,
                                  address: str, rcpt_options: list[str]) -> str:
                if sink.rcpt_reply:
                    return sink.rcpt_reply
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                      "data": envelope.content.decode("utf-8", "replace")})
                return "250 Message accepted"

        self.port = port or free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
