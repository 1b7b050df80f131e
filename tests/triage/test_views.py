"""The dashboard pages through the Flask test client: queue, tip page, every action, and
every boundary (scope, role, CSRF)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests.staffsupport import csrf_from, sign_in
from tests.triage.conftest import Account, World, age
from tipline.audit.models import AuditEvent
from tipline.audit.services import verify_chain
from tipline.jobs import RecordingQueue
from tipline.routing.models import Dispatch, RoutingJob
from tipline.tips.models import Message, Note, Severity, Tip
from tipline.triage.models import MandatedReport, TipEvent

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
ACTIONS = ("acknowledge", "reply", "note", "status", "assign", "retriage", "mandated-report")


def login(client: Any, who: Account) -> Any:
    sign_in(client, who.user.email, who.password, who.secret)
    return client


def tip_page(client: Any, tip: Tip) -> str:
    resp = client.get(f"/staff/tips/{tip.uid}")
    assert resp.status_code == 200
    return str(resp.get_data(as_text=True))


def post(client: Any, tip: Tip, action: str, **data: str) -> Any:
    token = csrf_from(tip_page(client, tip))
    return client.post(f"/staff/tips/{tip.uid}/{action}", data={"csrf_token": token, **data})


def refs_in_order(html: str) -> list[str]:
    return re.findall(r'<th scope="row"><a href="/staff/tips/\w+">([^<]+)</a>', html)


# -- queue ------------------------------------------------------------------------------

def test_queue_sorted_by_severity_then_unacknowledged_then_age(
        client: Any, world: World, db_session: Session) -> None:
    t = world.tips
    t["soldan"].severity = Severity.MEDIUM
    t["roosevelt"].severity = Severity.LIFE_SAFETY
    t["abuse"].severity = Severity.HIGH
    t["sms"].severity = Severity.HIGH
    t["picture"].severity = Severity.HIGH
    from tipline.db import utcnow

    t["sms"].acknowledged_at = utcnow()
    db_session.flush()
    age(db_session, t["abuse"], 5)
    age(db_session, t["picture"], 50)
    age(db_session, t["sms"], 500)
    html = login(client, world.admin).get("/staff/").get_data(as_text=True)
    order = refs_in_order(html)
    expected = [t["roosevelt"], t["picture"], t["abuse"], t["sms"], t["soldan"]]
    assert [r for r in order if r in {x.reference for x in expected}] == \
        [x.reference for x in expected]


def test_queue_filters(client: Any, world: World) -> None:
    login(client, world.admin)
    t = world.tips
    by_school = refs_in_order(client.get("/staff/?school=slps-soldan").get_data(as_text=True))
    assert by_school == [t["soldan"].reference]
    by_cat = refs_in_order(client.get("/staff/?category=abuse").get_data(as_text=True))
    assert by_cat == [t["abuse"].reference]
    by_channel = refs_in_order(client.get("/staff/?channel=sms").get_data(as_text=True))
    assert by_channel == [t["sms"].reference]
    assert refs_in_order(client.get("/staff/?status=closed").get_data(as_text=True)) == []
    assert refs_in_order(client.get("/staff/?from=2000-01-01&to=2000-01-02")
                         .get_data(as_text=True)) == []
    assert len(refs_in_order(client.get("/staff/?from=2000-01-01").get_data(as_text=True))) >= 5


def test_queue_shows_no_tip_content(client: Any, world: World) -> None:
    html = login(client, world.admin).get("/staff/").get_data(as_text=True)
    assert "Roosevelt tip about a fight" not in html


def test_lifesafety_banner_on_every_staff_page_until_acknowledged(
        client: Any, world: World, db_session: Session) -> None:
    t = world.tips["roosevelt"]
    t.severity = Severity.LIFE_SAFETY
    db_session.flush()
    login(client, world.staff)
    for path in ("/staff/", "/staff/account", f"/staff/tips/{world.tips['sms'].uid}"):
        html = client.get(path).get_data(as_text=True)
        assert 'class="lifesafety" role="alert"' in html, path
        assert t.reference in html
    assert post(client, t, "acknowledge").status_code == 303
    assert 'class="lifesafety"' not in client.get("/staff/").get_data(as_text=True)


def test_a_tip_routed_to_nobody_is_on_every_page_until_handled(
        client: Any, world: World, db_session: Session) -> None:
    """A failed routing job (no contact matched) alerted nobody: staff must see that."""
    from sqlalchemy import delete, update

    from tipline.routing.models import Dispatch, RoutingJob

    t = world.tips["roosevelt"]
    other = world.tips["county"]  # failed too, but out of this account's scope
    db_session.execute(update(RoutingJob).where(RoutingJob.tip_id.in_([t.id, other.id]))
                       .values(status="failed", last_error="no contact matched"))
    db_session.execute(delete(Dispatch).where(Dispatch.tip_id == other.id))
    db_session.flush()
    login(client, world.staff)
    for path in ("/staff/", "/staff/account"):
        html = client.get(path).get_data(as_text=True)
        assert "Routed to nobody" in html and t.reference in html, path
    assert "Routed to nobody" in client.get("/staff/banner").get_json()["banner_html"]
    assert other.reference not in client.get("/staff/").get_data(as_text=True)
    t.status = "closed"
    db_session.flush()
    assert "Routed to nobody" not in client.get("/staff/").get_data(as_text=True)


def test_state_endpoint_reports_new_tips(client: Any, world: World, db_session: Session,
                                         vault: Any, queue: RecordingQueue) -> None:
    from tests.factories import make_tip

    login(client, world.staff)
    before = client.get("/staff/queue/state", headers={"Accept": "application/json"}).get_json()
    make_tip(db_session, vault, queue, school_code="slps-roosevelt", body="new one")
    db_session.flush()
    after = client.get("/staff/queue/state").get_json()
    assert after["latest"] > before["latest"]
    assert after["total"] == before["total"] + 1
    partial = client.get("/staff/?partial=1").get_data(as_text=True)
    assert "<html" not in partial and "<table" in partial


def test_state_without_session_is_401_json(client: Any) -> None:
    resp = client.get("/staff/queue/state")
    assert resp.status_code == 401
    assert resp.get_json() == {"signed_in": False}


# -- reading ------------------------------------------------------------------------------

def test_tip_page_shows_content_and_audits_every_read(client: Any, world: World,
                                                      db_session: Session) -> None:
    t = world.tips["roosevelt"]
    login(client, world.staff)
    for _ in range(2):
        assert "Roosevelt tip about a fight" in tip_page(client, t)
    views = db_session.execute(select(AuditEvent).where(
        AuditEvent.action == "tip.view", AuditEvent.tip_id == t.id)).scalars().all()
    assert len(views) == 2
    assert {v.actor_user_id for v in views} == {world.staff.user.id}
    assert verify_chain(db_session).ok


def test_audit_chain_detects_a_tampered_read(client: Any, world: World,
                                             db_session: Session) -> None:
    login(client, world.staff)
    tip_page(client, world.tips["roosevelt"])
    ev = db_session.execute(select(AuditEvent).where(AuditEvent.action == "tip.view")).scalar_one()
    # Someone with database rights switches the append-only trigger off and rewrites who read.
    db_session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    ev.actor_user_id = world.admin.user.id
    db_session.flush()
    report = verify_chain(db_session)
    assert not report.ok and report.first_bad_id == ev.id


def test_attachment_served_through_the_app_no_store_and_audited(
        client: Any, world: World, db_session: Session) -> None:
    t = world.tips["picture"]
    login(client, world.staff)
    html = tip_page(client, t)
    src = re.search(r'<img src="(/staff/tips/\w+/attachments/\w+)"', html)
    assert src
    resp = client.get(src.group(1))
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.mimetype == "image/png" and resp.data.startswith(b"\x89PNG")
    assert db_session.execute(select(AuditEvent).where(
        AuditEvent.action == "tip.view_attachment", AuditEvent.tip_id == t.id)).scalar_one()


# -- scope boundaries ---------------------------------------------------------------------

def test_school_staff_cannot_open_another_schools_tip(client: Any, world: World) -> None:
    login(client, world.staff)
    other = world.tips["soldan"]
    assert client.get(f"/staff/tips/{other.uid}").status_code == 404
    own = csrf_from(tip_page(client, world.tips["roosevelt"]))
    for action in ACTIONS:
        resp = client.post(f"/staff/tips/{other.uid}/{action}",
                           data={"csrf_token": own, "body": "x", "status": "closed"})
        assert resp.status_code == 404, action


def test_school_staff_cannot_fetch_another_schools_attachment(
        client: Any, world: World, db_session: Session) -> None:
    from tipline.tips.models import Attachment

    att = db_session.execute(select(Attachment).where(
        Attachment.tip_id == world.tips["picture"].id)).scalar_one()
    login(client, world.admin)  # sanity: in scope for the district admin
    assert client.get(f"/staff/tips/{world.tips['picture'].uid}/attachments/{att.uid}"
                      ).status_code == 200
    other = client.application.test_client()
    sign_in(other, world.county_admin.user.email, world.county_admin.password,
            world.county_admin.secret)
    assert other.get(f"/staff/tips/{world.tips['picture'].uid}/attachments/{att.uid}"
                     ).status_code == 404
    # the uid of another tip's attachment under a tip in scope is not found either
    assert client.get(f"/staff/tips/{world.tips['roosevelt'].uid}/attachments/{att.uid}"
                      ).status_code == 404


def test_liaison_cannot_open_a_tip_not_routed_to_them(client: Any, world: World) -> None:
    login(client, world.liaison)
    assert client.get(f"/staff/tips/{world.tips['county_other'].uid}").status_code == 404
    assert client.get(f"/staff/tips/{world.tips['roosevelt'].uid}").status_code == 404
    html = tip_page(client, world.tips["county"])
    assert "Northview weapon tip" in html
    queue_refs = refs_in_order(client.get("/staff/").get_data(as_text=True))
    assert queue_refs == [world.tips["county"].reference]


def test_liaison_cannot_open_what_was_sent_to_a_colleague_of_their_agency(
        client: Any, world: World, db_session: Session) -> None:
    """Same agency, another contact: the tip page, its attachment and the acknowledge button
    are all "not found", and the colleague's alert keeps going."""
    from tests.triage.conftest import dispatch_to
    from tipline.directory.models import Contact, PoliceAgency
    from tipline.tips.models import Attachment

    agency = db_session.execute(select(PoliceAgency).where(PoliceAgency.code == "stlco-pd")
                                ).scalar_one()
    db_session.add(Contact(key="stlco-liaison-2", name="Colleague", role="police_liaison",
                           agency=agency))
    t = world.tips["picture"]
    d = dispatch_to(db_session, t, t.__dict__["_job_id"], "stlco-liaison-2")
    att = db_session.execute(select(Attachment).where(Attachment.tip_id == t.id)).scalar_one()
    db_session.commit()
    login(client, world.liaison)
    assert client.get(f"/staff/tips/{t.uid}").status_code == 404
    assert client.get(f"/staff/tips/{t.uid}/attachments/{att.uid}").status_code == 404
    own = csrf_from(tip_page(client, world.tips["county"]))
    assert client.post(f"/staff/tips/{t.uid}/acknowledge",
                       data={"csrf_token": own}).status_code == 404
    assert t.reference not in client.get("/staff/").get_data(as_text=True)
    db_session.refresh(d)
    assert d.status == "active"


def test_district_admin_cannot_open_another_districts_tip(client: Any, world: World) -> None:
    login(client, world.admin)
    assert client.get(f"/staff/tips/{world.tips['county'].uid}").status_code == 404


def test_auditor_gets_no_tip_and_cannot_post(client: Any, world: World,
                                             db_session: Session) -> None:
    login(client, world.auditor)
    t = world.tips["roosevelt"]
    assert client.get("/staff/").status_code == 404
    assert client.get(f"/staff/tips/{t.uid}").status_code == 404
    token = csrf_from(client.get("/staff/account").get_data(as_text=True))
    for action in ACTIONS:
        resp = client.post(f"/staff/tips/{t.uid}/{action}",
                           data={"csrf_token": token, "body": "x", "status": "closed",
                                 "outcome": "resolved", "reason": "r"})
        assert resp.status_code == 404, action
    db_session.refresh(t)
    assert t.status == "new" and not db_session.execute(
        select(Note).where(Note.tip_id == t.id)).first()


def test_every_post_needs_a_csrf_token(client: Any, world: World, db_session: Session) -> None:
    t = world.tips["abuse"]
    login(client, world.admin)
    for action in ACTIONS:
        resp = client.post(f"/staff/tips/{t.uid}/{action}",
                           data={"body": "x", "status": "closed", "outcome": "resolved",
                                 "reason": "r", "confirm": "yes"})
        assert resp.status_code == 400, action
    for path in ("/staff/logout", "/staff/logout/everywhere"):
        assert client.post(path).status_code == 400
    db_session.refresh(t)
    assert t.status == "new" and t.acknowledged_at is None
    assert not db_session.execute(select(Message).where(
        Message.tip_id == t.id, Message.author == "staff")).first()


# -- actions ------------------------------------------------------------------------------

def test_reply_to_a_web_reporter(client: Any, world: World, db_session: Session,
                                 queue: RecordingQueue) -> None:
    t = world.tips["roosevelt"]
    login(client, world.staff)
    assert post(client, t, "reply", body="Can you tell us which hallway?").status_code == 303
    msg = db_session.execute(select(Message).where(
        Message.tip_id == t.id, Message.author == "staff")).scalar_one()
    assert msg.channel == "web" and msg.relay_status == "n/a"
    assert msg.author_user_id == world.staff.user.id
    assert b"hallway" not in msg.body_ct
    assert msg.body == "Can you tell us which hallway?"
    assert not [s for s in queue.sent if s[0] == "tipline.relay_sms"]


def test_reply_to_an_sms_reporter_is_relayed_after_commit(
        client: Any, world: World, db_session: Session, queue: RecordingQueue) -> None:
    t = world.tips["sms"]
    login(client, world.staff)
    assert post(client, t, "reply", body="Are you safe right now?").status_code == 303
    msg = db_session.execute(select(Message).where(
        Message.tip_id == t.id, Message.author == "staff")).scalar_one()
    assert msg.channel == "sms" and msg.relay_status == "pending"
    [(message_id, job_key)] = [args for name, args in queue.sent if name == "tipline.relay_sms"]
    # The worker gets the number and text only under the job's key, carried by the task.
    from tipline.telephony.relay import open_payload

    assert message_id == msg.id and msg.relay_payload_ct is not None
    number, text = open_payload(msg.uid, msg.relay_payload_ct, job_key)
    assert text == "Are you safe right now?" and number.startswith("+")


def test_empty_reply_refused(client: Any, world: World, db_session: Session) -> None:
    t = world.tips["roosevelt"]
    login(client, world.staff)
    resp = post(client, t, "reply", body="   ")
    assert resp.status_code == 303
    assert "The reply is empty" in client.get(resp.headers["Location"]).get_data(as_text=True)


def test_note_is_sealed_and_shown_to_staff(client: Any, world: World,
                                           db_session: Session) -> None:
    t = world.tips["roosevelt"]
    login(client, world.staff)
    post(client, t, "note", body="Called the assistant principal")
    note = db_session.execute(select(Note).where(Note.tip_id == t.id)).scalar_one()
    assert b"assistant principal" not in note.body_ct
    assert "Called the assistant principal" in tip_page(client, t)


def test_xss_in_tip_text_notes_and_replies_is_escaped(
        client: Any, world: World, db_session: Session, vault: Any,
        queue: RecordingQueue) -> None:
    from tests.factories import make_tip

    receipt = make_tip(db_session, vault, queue, school_code="slps-roosevelt", body=XSS,
                       details={"where": XSS})
    t = db_session.get(Tip, receipt.tip_id)
    assert t is not None
    login(client, world.staff)
    post(client, t, "note", body=XSS)
    post(client, t, "reply", body=XSS)
    post(client, t, "status", status="in_progress", reason=XSS)
    html = tip_page(client, t)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert html.count("&lt;script&gt;alert(") >= 4


def test_status_workflow_with_reasons_and_outcome(client: Any, world: World,
                                                  db_session: Session) -> None:
    t = world.tips["roosevelt"]
    login(client, world.staff)
    post(client, t, "status", status="in_progress", reason="talking to the student")
    db_session.refresh(t)
    assert t.status == "in_progress" and t.acknowledged_at is not None
    post(client, t, "status", status="closed", reason="done")  # no outcome: refused
    db_session.refresh(t)
    assert t.status == "in_progress"
    post(client, t, "status", status="closed", reason="", outcome="resolved")  # no reason
    db_session.refresh(t)
    assert t.status == "in_progress"
    post(client, t, "status", status="closed", reason="spoke with family", outcome="resolved")
    db_session.refresh(t)
    assert t.status == "closed" and t.outcome == "resolved" and t.closed_at is not None
    events = db_session.execute(select(TipEvent).where(TipEvent.tip_id == t.id)
                                .order_by(TipEvent.id)).scalars().all()
    assert [(e.from_value, e.to_value) for e in events] == [
        ("new", "in_progress"), ("in_progress", "closed")]
    assert events[1].reason == "spoke with family" and b"family" not in (events[1].reason_ct or b"")
    audited = db_session.execute(select(AuditEvent.detail).where(
        AuditEvent.action == "tip.status", AuditEvent.tip_id == t.id)).scalars().all()
    assert {"from": "in_progress", "to": "closed", "outcome": "resolved"} in audited
    assert all("family" not in str(d) for d in audited)


def test_assignment_only_to_someone_who_can_see_the_tip(client: Any, world: World,
                                                        db_session: Session) -> None:
    t = world.tips["roosevelt"]
    login(client, world.admin)
    post(client, t, "assign", assignee=str(world.county_admin.user.id))
    db_session.refresh(t)
    assert t.assigned_to_id is None
    post(client, t, "assign", assignee=str(world.staff.user.id))
    db_session.refresh(t)
    assert t.assigned_to_id == world.staff.user.id


def test_retriage_reroutes(client: Any, world: World, db_session: Session,
                           queue: RecordingQueue) -> None:
    t = world.tips["soldan"]
    login(client, world.admin)
    post(client, t, "retriage", category="threat", severity="4", reason="student named a date")
    db_session.refresh(t)
    assert (t.category, t.severity) == ("threat", 4)
    job = db_session.execute(select(RoutingJob).where(
        RoutingJob.tip_id == t.id, RoutingJob.reason == "retriage")).scalar_one()
    assert ("tipline.route_job", (job.id,)) in queue.sent


def test_acknowledge_stops_the_alerts(client: Any, world: World, db_session: Session) -> None:
    t = world.tips["county"]
    login(client, world.liaison)
    assert post(client, t, "acknowledge").status_code == 303
    db_session.refresh(t)
    assert t.acknowledged_at is not None and t.status == "acknowledged"
    d = db_session.execute(select(Dispatch).where(Dispatch.tip_id == t.id)).scalar_one()
    db_session.refresh(d)
    assert d.status == "acknowledged"


def test_a_liaisons_acknowledgement_leaves_the_school_alerted(
        client: Any, world: World, db_session: Session) -> None:
    """The county tip also alerted the school's counselor: the liaison's click stops the
    liaison's alert only; the tip stays new for the school, and the liaison's button goes."""
    from tests.triage.conftest import dispatch_to

    t = world.tips["county"]
    school = dispatch_to(db_session, t, t.__dict__["_job_id"], "cty-northview-counselor")
    db_session.commit()
    login(client, world.liaison)
    assert post(client, t, "acknowledge").status_code == 303
    assert "Acknowledge this tip" not in tip_page(client, t)
    db_session.refresh(t)
    db_session.refresh(school)
    assert t.acknowledged_at is None and t.status == "new" and school.status == "active"
    county = client.application.test_client()
    login(county, world.county_admin)
    assert "Acknowledge this tip" in tip_page(county, t)


@pytest.mark.parametrize("name, shown", [("abuse", True), ("roosevelt", False)])
def test_mandated_reporter_prompt_only_on_abuse(client: Any, world: World, name: str,
                                                shown: bool) -> None:
    login(client, world.staff)
    html = tip_page(client, world.tips[name])
    assert ("1-800-392-3738" in html) is shown
    assert ("RSMo 210.115" in html) is shown


def test_recording_my_mandated_report(client: Any, world: World, db_session: Session) -> None:
    t = world.tips["abuse"]
    login(client, world.staff)
    post(client, t, "mandated-report")  # box not ticked: refused
    assert not db_session.execute(select(MandatedReport)).first()
    post(client, t, "mandated-report", confirm="yes")
    rep = db_session.execute(select(MandatedReport)).scalar_one()
    assert rep.user_id == world.staff.user.id and rep.tip_id == t.id
    assert db_session.execute(select(AuditEvent).where(
        AuditEvent.action == "tip.mandated_report", AuditEvent.tip_id == t.id)).scalar_one()
    html = tip_page(client, t)
    assert "You recorded that you made the report" in html
    # another staff member still has their own duty: the button is still there for them
    other = client.application.test_client()
    login(other, world.admin)
    assert "Record that I made the report" in tip_page(other, t)


def test_voice_recording_playback_and_transcript(client: Any, world: World,
                                                 db_session: Session, vault: Any,
                                                 queue: RecordingQueue) -> None:
    from tests.factories import make_tip
    from tipline.intake.services import AttachmentIn
    from tipline.tips.models import Attachment, Channel

    receipt = make_tip(db_session, vault, queue, school_code="slps-roosevelt",
                       body="(voice message)", channel=Channel.VOICE,
                       attachments=[AttachmentIn("audio", "audio/mpeg", b"ID3fake-mp3")])
    att = db_session.execute(select(Attachment).where(
        Attachment.tip_id == receipt.tip_id)).scalar_one()
    from tipline.routing.audience import give_item_key

    give_item_key(db_session, vault, att.tip, att, "transcript_key_uid")  # as the webhook does
    att.transcript = "there is a gun in locker 12"
    db_session.flush()
    t = db_session.get(Tip, receipt.tip_id)
    assert t is not None
    login(client, world.staff)
    html = tip_page(client, t)
    assert f'<audio controls preload="none" src="/staff/tips/{t.uid}/attachments/{att.uid}"' \
        in html
    assert "there is a gun in locker 12" in html
    resp = client.get(f"/staff/tips/{t.uid}/attachments/{att.uid}")
    assert resp.mimetype == "audio/mpeg" and resp.headers["Cache-Control"] == "no-store"


def test_routing_explanation_and_delivery_timeline(client: Any, world: World,
                                                   db_session: Session) -> None:
    from tipline.routing.models import AlertDelivery

    t = world.tips["county"]
    job = db_session.execute(select(RoutingJob).where(RoutingJob.tip_id == t.id)).scalar_one()
    job.explanation = {"rule": "county-weapons", "contacts": [
        {"contact": "stlco-liaison", "alerted": True, "why": "weapons go to county police"},
        {"contact": "cty-northview-counselor", "alerted": False, "why": "off duty"}]}
    d = db_session.execute(select(Dispatch).where(Dispatch.tip_id == t.id)).scalar_one()
    db_session.add(AlertDelivery(dispatch_id=d.id, channel="sms", idempotency_key="k-1",
                                 status="sent", attempts=1, provider="outbox"))
    db_session.flush()
    login(client, world.county_admin)
    html = tip_page(client, t)
    assert "county-weapons" in html and "weapons go to county police" in html
    assert "off duty" in html
    assert "County police school liaison (demo)" in html and "sms: sent" in html
    # the liaison sees their own alert but not the explanation naming other people
    liaison = client.application.test_client()
    login(liaison, world.liaison)
    html = tip_page(liaison, t)
    assert "sms: sent" in html and "off duty" not in html


def test_web_reporter_reads_the_staff_reply_on_the_follow_up_page(
        app: Any, client: Any, world: World, db_session: Session, vault: Any,
        queue: RecordingQueue) -> None:
    from tests.factories import make_tip

    receipt = make_tip(db_session, vault, queue, school_code="slps-roosevelt",
                       body="someone is selling vapes in the bathroom")
    t = db_session.get(Tip, receipt.tip_id)
    assert t is not None
    login(client, world.staff)
    post(client, t, "reply", body="Which bathroom, and what time of day?")
    reporter = app.test_client()
    page = reporter.get("/followup").get_data(as_text=True)
    resp = reporter.post("/followup", data={"code": receipt.receipt_code,
                                            "csrf_token": csrf_from(page)})
    assert resp.status_code == 303
    convo = reporter.get("/followup/tip").get_data(as_text=True)
    assert "Which bathroom, and what time of day?" in convo


@pytest.mark.parametrize("action, data", [
    ("reply", {"body": "police here"}),
    ("status", {"status": "closed", "outcome": "police_action", "reason": "done"}),
    ("assign", {"assignee": ""}),
    ("retriage", {"category": "bullying", "severity": "1", "reason": "not a weapon"}),
])
def test_liaison_cannot_reply_close_assign_or_retriage(
        client: Any, world: World, db_session: Session, queue: RecordingQueue, action: str,
        data: dict[str, str]) -> None:
    t = world.tips["county"]
    login(client, world.liaison)
    html = tip_page(client, t)
    assert f"/staff/tips/{t.uid}/{action}" not in html  # no form offered
    assert f"/staff/tips/{t.uid}/acknowledge" in html and f"/staff/tips/{t.uid}/note" in html
    assert post(client, t, action, **data).status_code == 404
    db_session.refresh(t)
    assert (t.status, t.category, t.severity) == ("new", "weapon", 3)
    assert db_session.execute(select(Message).where(
        Message.tip_id == t.id, Message.author == "staff")).first() is None
    assert not [name for name, _args in queue.sent
                if name in ("tipline.route_job", "tipline.relay_sms")]


@pytest.mark.parametrize("stored, served, disposition", [
    ("image/png", "image/png", "inline"),
    ("audio/x-wav", "audio/x-wav", "inline"),
    ("image/svg+xml", "application/octet-stream", "attachment"),  # an image that runs script
    ("text/html", "application/octet-stream", "attachment"),
    ("audio/mpeg; x=<b>", "application/octet-stream", "attachment"),
])
def test_attachment_content_type_is_an_allowlist(
        client: Any, world: World, db_session: Session, stored: str, served: str,
        disposition: str) -> None:
    """The stored type comes from Twilio for recordings: only known image and audio types are
    shown inline; anything else is a download the browser never renders."""
    from tipline.tips.models import Attachment

    t = world.tips["picture"]
    att = db_session.execute(select(Attachment).where(Attachment.tip_id == t.id)).scalar_one()
    att.content_type = stored
    db_session.flush()
    login(client, world.staff)
    resp = client.get(f"/staff/tips/{t.uid}/attachments/{att.uid}")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == served
    assert resp.headers["Content-Disposition"].startswith(disposition)
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"] == "no-store"
    assert "sandbox" in resp.headers["Content-Security-Policy"]


def test_queue_links_carry_only_the_known_filters(client: Any, world: World) -> None:
    """The filters are echoed into the pager and polling URLs through url_for: a query key
    such as _external or _scheme must not become one of url_for's own arguments."""
    login(client, world.admin)
    resp = client.get("/staff/?_external=1&_scheme=javascript&_anchor=%0Aalert(1)"
                      "&category=abuse&bogus=1")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "javascript:" not in html and "alert(1)" not in html and "bogus" not in html
    state = re.search(r'data-state-url="([^"]+)"', html)
    assert state and state.group(1) == "/staff/queue/state?category=abuse"
    assert client.get("/staff/?_scheme=https").status_code == 200
