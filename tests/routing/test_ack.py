"""Acknowledgement by the three paths: dashboard, SMS reply, keypress on the alert call."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.routing.delivery_support import (
    RecordingSender,
    StepSpec,
    dispatches,
    queued_deliveries,
    route,
)
from tests.staffsupport import make_staff
from tests.twilio_support import TEST_AUTH_TOKEN, signed_post
from tipline.audit.models import AuditEvent
from tipline.db import utcnow
from tipline.routing.ack import acknowledge_dispatch, acknowledge_tip, handle_staff_sms
from tipline.routing.models import AlertDelivery
from tipline.routing.services import deliver_alert
from tipline.tips.models import Tip

TWO_STEPS = [
    StepSpec(("slps-roosevelt-counselor", "slps-roosevelt-social")),
    StepSpec(("slps-oncall",), delay=timedelta(minutes=5)),
]


@pytest.fixture
def settings(settings: Any) -> Any:
    return settings.with_overrides(twilio_auth_token=TEST_AUTH_TOKEN)


def _tip(db_session, tip_id: int) -> Tip:
    tip = db_session.get(Tip, tip_id)
    db_session.refresh(tip)
    return tip


def test_acknowledging_a_dispatch_cancels_the_rest_and_marks_the_tip(
        db_session, vault, queue, demo_directory):
    r = route(db_session, vault, queue, TWO_STEPS)
    counselor, social, oncall = dispatches(db_session, r.tip_id)
    now = utcnow()
    assert acknowledge_dispatch(db_session, counselor.id, via="dashboard", now=now)
    assert not acknowledge_dispatch(db_session, counselor.id, via="sms", now=now)
    assert not acknowledge_dispatch(db_session, social.id, via="sms", now=now)
    db_session.commit()
    counselor, social, oncall = dispatches(db_session, r.tip_id)
    assert (counselor.status, counselor.ack_via) == ("acknowledged", "dashboard")
    assert {social.status, oncall.status} == {"cancelled"}
    tip = _tip(db_session, r.tip_id)
    assert tip.status == "acknowledged" and tip.acknowledged_at is not None
    events = db_session.execute(
        select(AuditEvent).where(AuditEvent.tip_id == r.tip_id,
                                 AuditEvent.action == "tip.acknowledged")).scalars().all()
    assert len(events) == 1 and events[0].detail["via"] == "dashboard"
    assert events[0].actor == "contact:slps-roosevelt-counselor"


def test_dashboard_button_acknowledges_what_the_user_can_see(db_session, vault, queue,
                                                             demo_directory):
    r = route(db_session, vault, queue, TWO_STEPS)
    outsider, _, _ = make_staff(db_session, vault, "school_staff", ["slps-soldan"])
    staff, _, _ = make_staff(db_session, vault, "school_staff", ["slps-roosevelt"],
                             contact="slps-roosevelt-social")
    assert acknowledge_tip(db_session, r.tip_id, user_id=outsider.id, now=utcnow()) == 0
    assert _tip(db_session, r.tip_id).acknowledged_at is None
    n = acknowledge_tip(db_session, r.tip_id, user_id=staff.id, now=utcnow())
    db_session.commit()
    assert n == 3
    by_contact = {d.contact_id: d for d in dispatches(db_session, r.tip_id)}
    own = by_contact[staff.contact_id]
    assert own.status == "acknowledged" and own.ack_via == "dashboard"
    assert {d.status for d in by_contact.values()} == {"acknowledged"}
    assert _tip(db_session, r.tip_id).status == "acknowledged"
    assert acknowledge_tip(db_session, r.tip_id, user_id=staff.id, now=utcnow()) == 0


def test_police_liaison_cannot_acknowledge_a_tip_not_routed_to_police(
        db_session, vault, queue, demo_directory):
    r = route(db_session, vault, queue, TWO_STEPS)
    liaison, _, _ = make_staff(db_session, vault, "police_liaison", contact="slpd-liaison")
    assert acknowledge_tip(db_session, r.tip_id, user_id=liaison.id, now=utcnow()) == 0
    assert {d.status for d in dispatches(db_session, r.tip_id)} == {"active", "scheduled"}


def test_sms_reply_acknowledges_from_the_registered_number(db_session, vault, queue,
                                                           demo_directory):
    r = route(db_session, vault, queue, TWO_STEPS)
    counselor = dispatches(db_session, r.tip_id)[0]
    reply = handle_staff_sms(db_session, "+13145550101", f"ack {counselor.ack_code}",
                             utcnow())
    db_session.commit()
    assert reply is not None and "acknowledged" in reply and r.reference in reply
    counselor = dispatches(db_session, r.tip_id)[0]
    assert counselor.status == "acknowledged" and counselor.ack_via == "sms"
    again = handle_staff_sms(db_session, "+13145550101", f"ACK {counselor.ack_code}", utcnow())
    assert again is not None and "already acknowledged" in again


def test_sms_with_a_wrong_code_or_no_code_explains_how(db_session, vault, queue, demo_directory):
    r = route(db_session, vault, queue, TWO_STEPS)
    code = dispatches(db_session, r.tip_id)[0].ack_code
    wrong = f"{(int(code) + 1) % 10000:04d}"
    reply = handle_staff_sms(db_session, "+13145550101", f"ACK {wrong}", utcnow())
    assert reply is not None and "no open alert" in reply
    reply = handle_staff_sms(db_session, "+13145550101", "on my way", utcnow())
    assert reply is not None and "ACK" in reply
    assert dispatches(db_session, r.tip_id)[0].status == "active"


def test_sms_from_anyone_else_is_not_a_staff_message(db_session, vault, queue, demo_directory):
    r = route(db_session, vault, queue, TWO_STEPS)
    code = dispatches(db_session, r.tip_id)[0].ack_code
    assert handle_staff_sms(db_session, "+13145559999", f"ACK {code}", utcnow()) is None
    assert handle_staff_sms(db_session, "", "ACK", utcnow()) is None
    assert dispatches(db_session, r.tip_id)[0].status == "active"


def test_a_contact_cannot_acknowledge_someone_elses_alert_by_sms(db_session, vault, queue,
                                                                  demo_directory):
    r = route(db_session, vault, queue, TWO_STEPS)
    counselor_code = dispatches(db_session, r.tip_id)[0].ack_code
    # The Soldan counselor is a registered contact, but this alert is not theirs.
    reply = handle_staff_sms(db_session, "+13145550103", f"ACK {counselor_code}", utcnow())
    assert reply is not None and "no open alert" in reply
    assert dispatches(db_session, r.tip_id)[0].status == "active"


def test_pressing_1_on_the_alert_call_acknowledges(client, db_session, vault, queue,
                                                   demo_directory):
    r = route(db_session, vault, queue, [StepSpec(("slps-roosevelt-counselor",),
                                                  channels=("voice",))])
    [dl_id] = queued_deliveries(queue)
    deliver_alert(db_session, dl_id, {"voice": RecordingSender(name="twilio")}, utcnow())
    dl = db_session.get(AlertDelivery, dl_id)
    path = f"/twilio/alerts/call/{dl_id}/gather"
    other = signed_post(client, path, {"CallSid": dl.provider_ref, "Digits": "5"})
    assert "press 1" in other.get_data(as_text=True)
    assert dispatches(db_session, r.tip_id)[0].status == "active"
    resp = signed_post(client, path, {"CallSid": dl.provider_ref, "Digits": "1"})
    assert resp.status_code == 200 and "Acknowledged" in resp.get_data(as_text=True)
    [d] = dispatches(db_session, r.tip_id)
    assert d.status == "acknowledged" and d.ack_via == "voice"
    assert _tip(db_session, r.tip_id).status == "acknowledged"
    again = signed_post(client, path, {"CallSid": dl.provider_ref, "Digits": "1"})
    assert "already acknowledged" in again.get_data(as_text=True)
    twiml = signed_post(client, f"/twilio/alerts/call/{dl_id}", {"CallSid": dl.provider_ref})
    assert "<Gather" not in twiml.get_data(as_text=True)


def test_sms_ack_forms(db_session, vault, queue, demo_directory):
    r = route(db_session, vault, queue, [StepSpec(("slps-roosevelt-counselor",))])
    code = dispatches(db_session, r.tip_id)[0].ack_code
    for body in ("acknowledged", f"ack {code}5", "please ACK"):
        reply = handle_staff_sms(db_session, "+13145550101", body, utcnow())
        assert reply is not None and "ACK" in reply, body
        assert dispatches(db_session, r.tip_id)[0].status == "active", body
    # Without spaces, and a bare ACK when the contact has exactly one open alert.
    reply = handle_staff_sms(db_session, "(314) 555-0101", "Ack", utcnow())
    assert reply is not None and "acknowledged tip" in reply
    r2 = route(db_session, vault, queue, [StepSpec(("slps-roosevelt-counselor",))])
    code2 = dispatches(db_session, r2.tip_id)[0].ack_code
    reply = handle_staff_sms(db_session, "+13145550101", f"ack{code2}", utcnow())
    assert reply is not None and r2.reference in reply
    assert dispatches(db_session, r2.tip_id)[0].ack_via == "sms"
