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


# -- whose escalation an acknowledgement stops (security issue 10, item 5) -----------------
#
# A police liaison's acknowledgement stops the alerts of their own agency's contacts only; the
# school's own people keep being alerted unless the district's policy says
# ``police_ack_stops_school_alerts: true``. No acknowledgement touches another agency's or
# another district's dispatches.

COUNTY_WEAPON = [
    StepSpec(("cty-northview-counselor", "cty-northview-principal", "stlco-liaison"),
             channels=("voice", "sms"), repeat_every=timedelta(minutes=2)),
    StepSpec(("cty-oncall",), delay=timedelta(minutes=5)),
]


def _by_key(db_session, tip_id: int) -> dict[str, Any]:
    from tests.routing.delivery_support import contact_key

    return {contact_key(db_session, d): d for d in dispatches(db_session, tip_id)}


def _contact(db_session, key: str, **fields: Any) -> Any:
    """A further contact of the demo directory (e.g. a colleague of the county liaison)."""
    from tipline.directory.models import Contact, PoliceAgency

    agency = fields.pop("agency", None)
    c = Contact(key=key, name=key, **fields)
    if agency:
        c.agency = db_session.execute(
            select(PoliceAgency).where(PoliceAgency.code == agency)).scalar_one()
    db_session.add(c)
    db_session.commit()
    return c


def _county_route(db_session, vault, queue, steps=None):
    from tipline.tips.models import Category, Severity

    return route(db_session, vault, queue, steps or COUNTY_WEAPON, school_code="cty-northview",
                 category=Category.WEAPON, severity=Severity.LIFE_SAFETY)


def _liaison_acknowledges(db_session, tip_id: int, via: str) -> dict[str, str]:
    """The county liaison's dispatch acknowledged; every dispatch's status after it, by key."""
    liaison = _by_key(db_session, tip_id)["stlco-liaison"]
    assert acknowledge_dispatch(db_session, liaison.id, via=via, now=utcnow())
    db_session.commit()
    return {k: d.status for k, d in _by_key(db_session, tip_id).items()}


def _ack_as_liaison(via: str, client, db_session, vault, queue, r) -> None:
    liaison = _by_key(db_session, r.tip_id)["stlco-liaison"]
    if via == "sms":
        reply = handle_staff_sms(db_session, "+13145550160", f"ACK {liaison.ack_code}",
                                 utcnow())
        assert reply is not None and "acknowledged tip" in reply
    elif via == "voice":
        dl = next(d for d in db_session.execute(
            select(AlertDelivery).where(AlertDelivery.dispatch_id == liaison.id,
                                        AlertDelivery.channel == "voice")).scalars())
        deliver_alert(db_session, dl.id, {"voice": RecordingSender(name="twilio")}, utcnow())
        db_session.refresh(dl)
        resp = signed_post(client, f"/twilio/alerts/call/{dl.id}/gather",
                           {"CallSid": dl.provider_ref, "Digits": "1"})
        assert "Acknowledged" in resp.get_data(as_text=True)
    else:
        from tipline.triage.services import acknowledge

        user, _, _ = make_staff(db_session, vault, "police_liaison", contact="stlco-liaison")
        tip = db_session.get(Tip, r.tip_id)
        assert acknowledge(db_session, user, tip, utcnow()) == 1
    db_session.commit()


@pytest.mark.parametrize("via", ["sms", "voice", "dashboard"])
def test_a_police_acknowledgement_does_not_stop_the_schools_alerts(
        via, client, db_session, vault, queue, demo_directory):
    from tipline.routing.escalation import escalate_due

    r = _county_route(db_session, vault, queue)
    _ack_as_liaison(via, client, db_session, vault, queue, r)
    by_key = _by_key(db_session, r.tip_id)
    assert by_key["stlco-liaison"].status == "acknowledged"
    assert by_key["stlco-liaison"].ack_via == via
    assert by_key["cty-northview-counselor"].status == "active"
    assert by_key["cty-northview-principal"].status == "active"
    assert by_key["cty-oncall"].status == "scheduled"
    tip = _tip(db_session, r.tip_id)
    assert tip.acknowledged_at is None and tip.status == "new"
    # The school's escalation goes on: repeats at 2 minutes, the on-call at the deadline.
    res = escalate_due(db_session, queue, r.now + timedelta(minutes=2, seconds=1))
    assert res.repeated == 2 and res.cancelled == 0
    escalate_due(db_session, queue, r.now + timedelta(minutes=5, seconds=1))
    by_key = _by_key(db_session, r.tip_id)
    assert by_key["cty-oncall"].status == "active"
    assert by_key["stlco-liaison"].status == "acknowledged"


def test_a_school_acknowledgement_still_stops_every_alert_of_its_district(
        db_session, vault, queue, demo_directory):
    r = _county_route(db_session, vault, queue)
    counselor = _by_key(db_session, r.tip_id)["cty-northview-counselor"]
    assert acknowledge_dispatch(db_session, counselor.id, via="sms", now=utcnow())
    db_session.commit()
    statuses = {k: d.status for k, d in _by_key(db_session, r.tip_id).items()}
    assert statuses == {"cty-northview-counselor": "acknowledged",
                        "cty-northview-principal": "cancelled",
                        "stlco-liaison": "cancelled", "cty-oncall": "cancelled"}
    assert _tip(db_session, r.tip_id).status == "acknowledged"


def test_a_police_acknowledgement_never_stops_another_agency(db_session, vault, queue,
                                                           demo_directory):
    _contact(db_session, "stlco-liaison-2", role="police_liaison", sms_number="+13145550161",
             agency="stlco-pd")
    r = _county_route(db_session, vault, queue, [
        StepSpec(("cty-northview-counselor", "stlco-liaison", "stlco-liaison-2",
                  "slpd-liaison"))])
    statuses = _liaison_acknowledges(db_session, r.tip_id, "sms")
    assert statuses == {"stlco-liaison": "acknowledged", "stlco-liaison-2": "cancelled",
                        "slpd-liaison": "active", "cty-northview-counselor": "active"}
    # and the other agency's acknowledgement leaves the county's and the school's alone too
    slpd = _by_key(db_session, r.tip_id)["slpd-liaison"]
    assert acknowledge_dispatch(db_session, slpd.id, via="sms", now=utcnow())
    assert _by_key(db_session, r.tip_id)["cty-northview-counselor"].status == "active"


def test_a_district_may_let_a_police_acknowledgement_stop_the_school_alerts(
        db_session, vault, queue, demo_directory):
    from pathlib import Path

    from tipline.routing.policy import load_policy

    text = (Path(__file__).resolve().parents[2] / "config" / "policy.demo.yaml").read_text()
    anchor = "  stlco-demo:\n"
    assert anchor in text
    text = text.replace(anchor, anchor + "    police_ack_stops_school_alerts: true\n")
    load_policy(db_session, text, "policy.yaml", "test")
    db_session.commit()
    r = _county_route(db_session, vault, queue)
    statuses = _liaison_acknowledges(db_session, r.tip_id, "voice")
    assert statuses == {"stlco-liaison": "acknowledged", "cty-northview-counselor": "cancelled",
                        "cty-northview-principal": "cancelled", "cty-oncall": "cancelled"}
    assert _tip(db_session, r.tip_id).status == "acknowledged"


def test_an_acknowledgement_never_stops_another_districts_alerts(db_session, vault, queue,
                                                                demo_directory):
    """A tip that names no school alerts every district's fallback; one district's answer
    leaves the other district's alerts (and their repeats) running."""
    from tipline.routing.escalation import escalate_due

    r = route(db_session, vault, queue, [
        StepSpec(("slps-oncall", "cty-oncall"), repeat_every=timedelta(minutes=2))],
        school_code=None)  # type: ignore[arg-type]
    slps = _by_key(db_session, r.tip_id)["slps-oncall"]
    reply = handle_staff_sms(db_session, "+13145550120", f"ACK {slps.ack_code}", utcnow())
    db_session.commit()
    assert reply is not None and "acknowledged tip" in reply
    by_key = _by_key(db_session, r.tip_id)
    assert by_key["slps-oncall"].status == "acknowledged"
    assert by_key["cty-oncall"].status == "active"
    assert _tip(db_session, r.tip_id).acknowledged_at is None
    res = escalate_due(db_session, queue, r.now + timedelta(minutes=2, seconds=1))
    assert res.repeated == 1 and res.cancelled == 0
    # The dashboard button of an SLPS admin takes SLPS's part only, too.
    r2 = route(db_session, vault, queue, [StepSpec(("cty-oncall", "slps-oncall"))],
               school_code=None)  # type: ignore[arg-type]
    slps_admin, _, _ = make_staff(db_session, vault, "district_admin", district="slps")
    assert acknowledge_tip(db_session, r2.tip_id, user_id=slps_admin.id, now=utcnow()) == 1
    db_session.commit()
    by_key = _by_key(db_session, r2.tip_id)
    assert by_key["slps-oncall"].status == "acknowledged"
    assert by_key["cty-oncall"].status == "active"


def test_a_liaison_without_an_open_alert_of_their_own_stops_nothing(
        db_session, vault, queue, demo_directory):
    """Clicking "acknowledge" again (their alert already taken) must not mark the school's tip
    acknowledged: the escalation sweep would then cancel the school's alerts."""
    from tipline.routing.escalation import escalate_due
    from tipline.triage.services import acknowledge

    r = _county_route(db_session, vault, queue)
    user, _, _ = make_staff(db_session, vault, "police_liaison", contact="stlco-liaison")
    tip = db_session.get(Tip, r.tip_id)
    assert acknowledge(db_session, user, tip, utcnow()) == 1
    assert acknowledge(db_session, user, tip, utcnow()) == 0
    db_session.commit()
    assert _tip(db_session, r.tip_id).acknowledged_at is None
    res = escalate_due(db_session, queue, r.now + timedelta(minutes=2, seconds=1))
    assert res.cancelled == 0
    assert _by_key(db_session, r.tip_id)["cty-northview-counselor"].status == "active"


def _no_school_route(db_session, vault, queue, keys=("slps-oncall", "cty-oncall")):
    return route(db_session, vault, queue, [StepSpec(keys, repeat_every=timedelta(minutes=2))],
                 school_code=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", ["acknowledged", "in_progress", "referred", "closed"])
def test_a_status_change_stops_only_the_changers_district(status, db_session, vault, queue,
                                                          demo_directory):
    """A district admin moving a tip that names no school (every district's fallback was
    alerted) answers for their own district: the other district's alerts keep repeating."""
    from tipline.routing.escalation import escalate_due
    from tipline.triage.services import change_status

    r = _no_school_route(db_session, vault, queue)
    slps_admin, _, _ = make_staff(db_session, vault, "district_admin", district="slps")
    change_status(db_session, slps_admin, _tip(db_session, r.tip_id), status, reason="on it",
                  outcome="resolved" if status == "closed" else None, now=utcnow())
    db_session.commit()
    by_key = _by_key(db_session, r.tip_id)
    assert by_key["slps-oncall"].status == "acknowledged"
    assert by_key["cty-oncall"].status == "active"
    tip = _tip(db_session, r.tip_id)
    assert tip.status == status and tip.acknowledged_at is None
    res = escalate_due(db_session, queue, r.now + timedelta(minutes=2, seconds=1))
    assert res.repeated == 1 and res.cancelled == 0
    assert _by_key(db_session, r.tip_id)["cty-oncall"].status == "active"
    # The county's own admin answers for the county; then the tip is taken everywhere.
    cty_admin, _, _ = make_staff(db_session, vault, "district_admin", district="stlco-demo")
    change_status(db_session, cty_admin, _tip(db_session, r.tip_id), "closed", reason="done",
                  outcome="resolved", now=utcnow())
    db_session.commit()
    assert {d.status for d in dispatches(db_session, r.tip_id)} == {"acknowledged"}
    assert _tip(db_session, r.tip_id).acknowledged_at is not None


def test_escalation_never_cancels_a_chain_nobody_in_its_audience_acknowledged(
        db_session, vault, queue, demo_directory):
    """A tip marked acknowledged (an older status change, a race) stops only the chains an
    acknowledgement reached: another district's and the school's after a police answer run."""
    from tipline.routing.escalation import escalate_due

    r = _no_school_route(db_session, vault, queue)
    slps = _by_key(db_session, r.tip_id)["slps-oncall"]
    assert acknowledge_dispatch(db_session, slps.id, via="sms", now=r.now)
    r2 = _county_route(db_session, vault, queue)
    liaison = _by_key(db_session, r2.tip_id)["stlco-liaison"]
    assert acknowledge_dispatch(db_session, liaison.id, via="sms", now=r2.now)
    for tip_id in (r.tip_id, r2.tip_id):
        _tip(db_session, tip_id).acknowledged_at = r2.now + timedelta(seconds=1)
    db_session.commit()
    res = escalate_due(db_session, queue, r2.now + timedelta(minutes=5, seconds=1))
    assert res.cancelled == 0
    assert _by_key(db_session, r.tip_id)["cty-oncall"].status == "expired"  # still repeating
    county = {k: d.status for k, d in _by_key(db_session, r2.tip_id).items()}
    assert county == {"stlco-liaison": "acknowledged", "cty-northview-counselor": "expired",
                      "cty-northview-principal": "expired", "cty-oncall": "active"}


def test_the_button_shows_only_while_an_alert_of_ones_own_audience_is_open(
        db_session, vault, queue, demo_directory):
    """A district admin whose district's part of a no-school tip is answered gets no button
    (it would do nothing); the other district's admin still does."""
    from tipline.triage.services import read_tip

    r = _no_school_route(db_session, vault, queue)
    slps_admin, _, _ = make_staff(db_session, vault, "district_admin", district="slps")
    cty_admin, _, _ = make_staff(db_session, vault, "district_admin", district="stlco-demo")
    uid = _tip(db_session, r.tip_id).uid

    def shown(user: Any) -> bool:
        return read_tip(db_session, user, uid, utcnow()).can_acknowledge

    assert shown(slps_admin) and shown(cty_admin)
    slps = _by_key(db_session, r.tip_id)["slps-oncall"]
    assert acknowledge_dispatch(db_session, slps.id, via="sms", now=utcnow())
    db_session.commit()
    assert not shown(slps_admin)
    assert shown(cty_admin)
    assert acknowledge_tip(db_session, r.tip_id, user_id=cty_admin.id, now=utcnow()) == 1
    db_session.commit()
    assert not shown(cty_admin) and not shown(slps_admin)
