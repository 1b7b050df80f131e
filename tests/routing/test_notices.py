"""A reporter's later message alerts the people working the tip, without content."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.routing.delivery_support import (
    RecordingSender,
    StepSpec,
    deliveries,
    dispatches,
    queued_deliveries,
    route,
)
from tests.staffsupport import make_staff
from tipline.db import utcnow
from tipline.directory.models import Contact
from tipline.routing import notices
from tipline.routing.ack import acknowledge_dispatch
from tipline.routing.models import Dispatch
from tipline.routing.policy import PolicyError, parse_policy
from tipline.routing.services import deliver_alert
from tipline.tips.models import Tip
from tipline.triage.scope import can_see

ONE_STEP = [StepSpec(("slps-roosevelt-counselor", "slps-roosevelt-social"))]


def _contact(db_session, key: str) -> Contact:
    return db_session.execute(select(Contact).where(Contact.key == key)).scalar_one()


def _notices(db_session, tip_id: int) -> list[Dispatch]:
    return [d for d in dispatches(db_session, tip_id) if d.status == "notice"]


def test_nobody_working_the_tip_means_no_notice_but_the_tip_is_stamped(
        db_session, vault, queue, demo_directory):
    r = route(db_session, vault, queue, ONE_STEP)
    tip = db_session.get(Tip, r.tip_id)
    now = utcnow()
    assert notices.reporter_wrote(db_session, queue, tip, now) == 0
    db_session.commit()
    assert tip.reporter_message_at == now
    assert _notices(db_session, r.tip_id) == []


def test_the_contact_who_acknowledged_by_sms_gets_a_no_content_text(
        db_session, vault, queue, demo_directory):
    r = route(db_session, vault, queue, ONE_STEP, body="SECRET-CONTENT about a knife")
    counselor = _contact(db_session, "slps-roosevelt-counselor")
    first = next(d for d in dispatches(db_session, r.tip_id) if d.contact_id == counselor.id)
    assert acknowledge_dispatch(db_session, first.id, via="sms", now=utcnow())
    db_session.commit()
    before = set(queued_deliveries(queue))
    tip = db_session.get(Tip, r.tip_id)
    assert notices.reporter_wrote(db_session, queue, tip, utcnow()) == 1
    db_session.commit()
    (notice,) = _notices(db_session, r.tip_id)
    assert notice.contact_id == counselor.id and notice.channels == ["sms", "email"]
    assert notice.ack_deadline is None and not notice.include_content
    (dl_id,) = [d for d in queued_deliveries(queue) if d not in before]
    sender = RecordingSender()
    assert deliver_alert(db_session, dl_id, {"sms": sender}, utcnow(), queue).outcome == "sent"
    (alert,) = sender.sent
    assert alert.text == (f"tipline: New message from the reporter on {r.reference}. "
                          "Open the dashboard to read it.")
    assert "SECRET" not in alert.text and alert.ack_code is None


def test_the_assignee_is_told_through_their_linked_contact_once_per_quiet_period(
        db_session, vault, queue, demo_directory):
    r = route(db_session, vault, queue, ONE_STEP)
    staff, _, _ = make_staff(db_session, vault, "school_staff", ["slps-roosevelt"],
                             contact="slps-roosevelt-social")
    tip = db_session.get(Tip, r.tip_id)
    tip.assigned_to_id = staff.id
    db_session.commit()
    now = utcnow()
    assert notices.reporter_wrote(db_session, queue, tip, now) == 1
    assert notices.reporter_wrote(db_session, queue, tip, now + timedelta(minutes=5)) == 0
    assert notices.reporter_wrote(db_session, queue, tip, now + timedelta(minutes=16)) == 1
    db_session.commit()
    got = _notices(db_session, r.tip_id)
    assert [d.contact_id for d in got] == [staff.contact_id] * 2


def test_a_notice_is_not_open_not_acknowledgeable_and_routes_the_tip_to_nobody(
        db_session, vault, queue, demo_directory):
    r = route(db_session, vault, queue, [StepSpec(("slps-roosevelt-counselor",))])
    liaison, _, _ = make_staff(db_session, vault, "police_liaison", [],
                               contact="slpd-liaison")
    tip = db_session.get(Tip, r.tip_id)
    tip.assigned_to_id = None
    # Even a notice written to a police contact (by hand here) gives the liaison no tip.
    job_id = dispatches(db_session, r.tip_id)[0].job_id
    db_session.add(Dispatch(job_id=job_id, tip_id=tip.id, contact_id=liaison.contact_id,
                            rule=notices.NOTICE_RULE, channels=["sms"], status="notice",
                            activated_at=utcnow()))
    db_session.commit()
    assert not can_see(db_session, liaison, tip.id)


def test_policy_can_turn_reporter_message_alerts_off_and_refuses_nonsense():
    base = """
policy: t
districts:
  d1:
    school_hours: [{days: mon-fri, start: "07:00", end: "17:00"}]
    fallback: [c1]
    {extra}
    rules:
      - name: r
        default: true
        steps: [{alert: [{contact: c1}], channels: [sms], ack_within: 5m}]
"""
    assert parse_policy(base.replace("{extra}", ""), "p.yaml").districts["d1"] \
        .reporter_message_alerts == "working"
    off = parse_policy(base.replace("{extra}", "reporter_message_alerts: 'off'"), "p.yaml")
    assert off.districts["d1"].reporter_message_alerts == "off"
    bare = parse_policy(base.replace("{extra}", "reporter_message_alerts: off"), "p.yaml")
    assert bare.districts["d1"].reporter_message_alerts == "off"
    try:
        parse_policy(base.replace("{extra}", "reporter_message_alerts: everyone"), "p.yaml")
    except PolicyError as exc:
        assert "reporter_message_alerts" in str(exc)
    else:
        raise AssertionError("accepted an unknown value")


def test_notice_deliveries_go_through_the_ordinary_rows(db_session, vault, queue,
                                                       demo_directory):
    r = route(db_session, vault, queue, ONE_STEP)
    counselor = _contact(db_session, "slps-roosevelt-counselor")
    first = next(d for d in dispatches(db_session, r.tip_id) if d.contact_id == counselor.id)
    acknowledge_dispatch(db_session, first.id, via="voice", now=utcnow())
    db_session.commit()
    tip = db_session.get(Tip, r.tip_id)
    notices.reporter_wrote(db_session, None, tip, utcnow())  # no queue: left for the sweep
    db_session.commit()
    (notice,) = _notices(db_session, r.tip_id)
    rows = [d for d in deliveries(db_session, r.tip_id) if d.dispatch_id == notice.id]
    assert [(d.channel, d.status, d.publish_failed) for d in rows] == [("sms", "pending", True)]
