"""Dashboard services called directly: acknowledgement through the routing package's
acknowledge_tip, role checks, and the status rules."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.triage.conftest import World
from tipline.audit.models import AuditEvent
from tipline.db import utcnow
from tipline.jobs import RecordingQueue
from tipline.routing.models import Dispatch
from tipline.triage import services as triage


def test_acknowledge_button(db_session: Session, world: World) -> None:
    tip = world.tips["county"]
    n = triage.acknowledge(db_session, world.liaison.user, tip, utcnow())
    assert n == 1
    d = db_session.execute(select(Dispatch).where(Dispatch.tip_id == tip.id)).scalar_one()
    db_session.refresh(d)
    assert d.status == "acknowledged" and d.ack_via == "dashboard"
    assert tip.acknowledged_at is not None and tip.status == "acknowledged"
    assert db_session.execute(select(AuditEvent).where(
        AuditEvent.action == "tip.acknowledge_button", AuditEvent.tip_id == tip.id)).scalar_one()


@pytest.mark.parametrize("action", ["note", "reply", "status", "ack", "report"])
def test_auditor_may_change_nothing(db_session: Session, world: World, queue: RecordingQueue,
                                    action: str) -> None:
    tip = world.tips["abuse"]
    user = world.auditor.user
    now = utcnow()
    calls = {
        "note": lambda: triage.add_note(db_session, user, tip, "x", now),
        "reply": lambda: triage.add_reply(db_session, queue, user, tip, "x", now),
        "status": lambda: triage.change_status(db_session, user, tip, "closed", reason="x",
                                               outcome="resolved", now=now),
        "ack": lambda: triage.acknowledge(db_session, user, tip, now),
        "report": lambda: triage.record_mandated_report(db_session, user, tip, now),
    }
    with pytest.raises(triage.NotPermitted):
        calls[action]()


def test_status_rules(db_session: Session, world: World) -> None:
    tip = world.tips["roosevelt"]
    user = world.staff.user
    now = utcnow()
    with pytest.raises(triage.ActionRefused):
        triage.change_status(db_session, user, tip, "referred", reason="", outcome=None, now=now)
    with pytest.raises(triage.ActionRefused):
        triage.change_status(db_session, user, tip, "bogus", reason="x", outcome=None, now=now)
    triage.change_status(db_session, user, tip, "closed", reason="done", outcome="unfounded",
                         now=now)
    assert tip.closed_at == now and tip.acknowledged_at == now
    with pytest.raises(triage.ActionRefused):
        triage.change_status(db_session, user, tip, "new", reason="", outcome=None, now=now)
    # reopening clears the outcome
    triage.change_status(db_session, user, tip, "in_progress", reason="new information",
                         outcome=None, now=now)
    assert tip.outcome is None and tip.closed_at is None


def test_mandated_report_only_on_abuse_and_once_per_person(db_session: Session,
                                                           world: World) -> None:
    now = utcnow()
    with pytest.raises(triage.ActionRefused):
        triage.record_mandated_report(db_session, world.staff.user, world.tips["roosevelt"], now)
    first = triage.record_mandated_report(db_session, world.staff.user, world.tips["abuse"], now)
    again = triage.record_mandated_report(db_session, world.staff.user, world.tips["abuse"], now)
    assert first.id == again.id
    other = triage.record_mandated_report(db_session, world.admin.user, world.tips["abuse"], now)
    assert other.id != first.id


@pytest.mark.parametrize("action", ["reply", "status", "assign", "retriage"])
def test_liaison_may_not_run_the_case(db_session: Session, world: World, queue: RecordingQueue,
                                      action: str) -> None:
    """A liaison acknowledges and reads what police were sent; writing to the reporter,
    closing, assigning and re-routing the school's tip stay with school and district staff."""
    tip = world.tips["county"]
    user = world.liaison.user
    now = utcnow()
    calls = {
        "reply": lambda: triage.add_reply(db_session, queue, user, tip, "x", now),
        "status": lambda: triage.change_status(db_session, user, tip, "closed", reason="x",
                                               outcome="police_action", now=now),
        "assign": lambda: triage.assign(db_session, user, tip, None, now),
        "retriage": lambda: triage.retriage(db_session, queue, user, tip, category="bullying",
                                            severity=1, reason="x", now=now),
    }
    with pytest.raises(triage.NotPermitted):
        calls[action]()
    assert tip.status == "new" and tip.category == "weapon"
    assert queue.sent == []


def test_liaison_may_acknowledge_and_add_a_note(db_session: Session, world: World) -> None:
    tip = world.tips["county"]
    note = triage.add_note(db_session, world.liaison.user, tip, "Officer on the way", utcnow())
    assert note.body == "Officer on the way"


def test_liaison_reads_the_tip_but_not_the_schools_case_file(db_session: Session,
                                                             world: World) -> None:
    """Police see what they were alerted to and their own agency's notes; the school's
    internal notes and status reasons stay with the school."""
    tip = world.tips["county"]
    now = utcnow()
    triage.add_note(db_session, world.county_admin.user, tip, "Counselor: family history", now)
    triage.change_status(db_session, world.county_admin.user, tip, "in_progress",
                         reason="Talked to the student's counselor", outcome=None, now=now)
    triage.add_note(db_session, world.liaison.user, tip, "Officer on the way", now)
    db_session.flush()
    liaison_view = triage.read_tip(db_session, world.liaison.user, tip.uid, now)
    assert [n.body for n in liaison_view.notes] == ["Officer on the way"]
    assert liaison_view.events == []
    admin_view = triage.read_tip(db_session, world.county_admin.user, tip.uid, now)
    assert {n.body for n in admin_view.notes} == {"Counselor: family history",
                                                   "Officer on the way"}
    assert admin_view.events
