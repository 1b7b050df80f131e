"""The tip page as a story: unread reporter messages, who did what, the reporter's status line,
the language, voicemail without a transcript, the routing sentence, returning to the form."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.staffsupport import csrf_from
from tests.triage.conftest import World, dispatch_to
from tests.triage.test_views import login, post, tip_page
from tipline.audit.models import AuditEvent
from tipline.db import utcnow
from tipline.intake import followup as fu
from tipline.routing.models import RoutingJob
from tipline.tips.models import Attachment, Tip
from tipline.triage import conversation, replies
from tipline.triage.models import TipEvent, TipRead


def _reporter_writes(db_session: Session, vault: Any, tip: Tip, words: str) -> None:
    fu.add_reply(db_session, vault, tip, words, [], utcnow())
    db_session.commit()


def test_a_reporter_message_is_marked_counted_and_sorted_up_until_read(
        client: Any, world: World, db_session: Session, vault: Any) -> None:
    login(client, world.staff)
    roosevelt = world.tips["roosevelt"]
    tip_page(client, roosevelt)  # visited before the reporter wrote
    queue_html = client.get("/staff/").get_data(as_text=True)
    assert "New message from the reporter" not in queue_html
    # The abuse tip (same severity, created later) sorts after roosevelt; a message moves it up.
    _reporter_writes(db_session, vault, world.tips["abuse"], "more about home")
    html = client.get("/staff/").get_data(as_text=True)
    refs = re.findall(r'<a href="/staff/tips/\w+">(T-[^<]+)</a>', html)
    assert refs.index(world.tips["abuse"].reference) < refs.index(roosevelt.reference)
    assert "New message from the reporter" in html
    assert "1 tip with a new message from the reporter" in html  # the banner
    page = tip_page(client, world.tips["abuse"])
    assert "message from the reporter" in page and "more about home" in page
    html = client.get("/staff/").get_data(as_text=True)
    assert "New message from the reporter" not in html
    assert "with a new message from the reporter" not in html
    # Another account has not read it.
    other = client.application.test_client()
    login(other, world.admin)
    assert "1 tip with a new message from the reporter" in \
        other.get("/staff/").get_data(as_text=True)


def test_new_since_your_last_visit_marks_what_others_did_not_what_i_did(
        client: Any, world: World, db_session: Session, vault: Any) -> None:
    t = world.tips["roosevelt"]
    login(client, world.staff)
    first = tip_page(client, t)
    assert "new since your last visit" not in first
    assert post(client, t, "note", body="My own note").status_code == 303
    assert db_session.execute(select(TipRead).where(
        TipRead.user_id == world.staff.user.id, TipRead.tip_id == t.id)).scalar_one()
    _reporter_writes(db_session, vault, t, "It is in hallway B")
    page = tip_page(client, t)
    assert "1 new since your last visit" in page
    new_items = re.findall(r'<li class="feed-(\w+) is-new">', page)
    assert new_items == ["message"]


def test_every_history_entry_names_who_and_the_history_is_complete(
        client: Any, world: World, db_session: Session) -> None:
    t = world.tips["roosevelt"]
    login(client, world.staff)
    name = world.staff.user.display_name or world.staff.user.email
    assert post(client, t, "acknowledge").status_code == 303
    assert post(client, t, "reply", body="Which hallway?").status_code == 303
    assert post(client, t, "note", body="Called the dean").status_code == 303
    assert post(client, t, "status", status="in_progress").status_code == 303
    page = tip_page(client, t)
    feed = page.split('<ol class="feed">', 1)[1].split("</ol>", 1)[0]
    items = re.findall(r"<li class=\"feed-(\w+)[^\"]*\">\s*<p class=\"meta\">(.*?)</p>", feed,
                       re.S)
    kinds = [k for k, _ in items]
    for kind in ("tip", "ack", "reply", "note", "status", "routing"):
        assert kind in kinds, kind
    for kind, meta in items:
        who = re.search(r"<strong>(.*?)</strong>", meta)
        assert who and who.group(1).strip(), (kind, meta)
        if kind in ("ack", "reply", "note", "status"):
            assert who.group(1) == name, (kind, meta)
    assert "Changed the status from acknowledged to in progress" in feed


def test_staff_set_the_reporter_status_line_which_the_reporter_sees_and_is_audited(
        client: Any, world: World, db_session: Session, vault: Any, queue: Any) -> None:
    from tests.factories import make_tip

    receipt = make_tip(db_session, vault, queue, body="a tip with a code",
                       school_code="slps-roosevelt")
    db_session.commit()
    t = db_session.get(Tip, receipt.tip_id)
    login(client, world.staff)
    resp = post(client, t, "reporter-status", preset="We are looking into this.",
                back="reporter-status-form")
    assert resp.status_code == 303 and resp.headers["Location"].endswith(
        "#reporter-status-form")
    db_session.expire_all()
    from tests.keysupport import staff_chain
    from tipline.crypto import using

    with using(staff_chain(db_session, world.staff.user)):
        assert db_session.get(Tip, t.id).reporter_status == "We are looking into this."
        audit = db_session.execute(select(AuditEvent).where(
            AuditEvent.action == "tip.reporter_status")).scalar_one()
        assert audit.actor_user_id == world.staff.user.id and "looking" not in repr(audit.detail)
        ev = db_session.execute(select(TipEvent).where(TipEvent.kind == "reporter_status")
                                ).scalar_one()
        assert ev.reason == "We are looking into this." and ev.reason_ct is not None
    # Own words win over the preset; too long is refused with a message.
    assert post(client, t, "reporter-status", status_line="Resolved: thank you",
                preset="We are looking into this.").status_code == 303
    long = post(client, t, "reporter-status", status_line="x" * 201)
    assert long.status_code == 303
    assert "too long" in client.get(long.headers["Location"]).get_data(as_text=True)
    # The reporter sees it on the follow-up page.
    reporter = client.application.test_client()
    token = csrf_from(reporter.get("/followup").get_data(as_text=True))
    reporter.post("/followup", data={"csrf_token": token, "code": receipt.receipt_code})
    assert "Resolved: thank you" in reporter.get("/followup/tip").get_data(as_text=True)


def test_a_liaison_cannot_set_the_reporter_status(client: Any, world: World) -> None:
    login(client, world.liaison)
    t = world.tips["county"]
    assert post(client, t, "reporter-status", preset="Resolved: thank you").status_code == 404


def test_a_spanish_tip_names_the_language_and_offers_spanish_replies(
        client: Any, world: World, db_session: Session) -> None:
    t = world.tips["roosevelt"]
    t.language = "es"
    db_session.commit()
    login(client, world.staff)
    page = tip_page(client, t)
    assert "Spanish (español)" in page and "language es" not in page
    assert replies.DEFAULTS["es"][1] in page.replace("&#39;", "'").replace("&#34;", '"')
    prefilled = client.get(f"/staff/tips/{t.uid}?use=1").get_data(as_text=True)
    box = prefilled.split('id="reply-body"', 1)[1].split("</textarea>", 1)[0]
    assert replies.DEFAULTS["es"][1] in box
    assert "Estamos revisando esto." in page  # the status line presets


def test_a_district_admin_edits_reply_wording_for_their_district_only(
        client: Any, world: World, db_session: Session) -> None:
    login(client, world.admin)
    form = client.get("/staff/replies").get_data(as_text=True)
    assert replies.DEFAULTS["bs"][0] in form
    resp = client.post("/staff/replies", data={
        "csrf_token": csrf_from(form), "en": "Hello from SLPS\n\nSecond line",
        "es": "Hola de SLPS", "bs": ""})
    assert resp.status_code == 303
    district = world.admin.user.district_id
    assert replies.templates_for(db_session, district, "en") == ["Hello from SLPS",
                                                                 "Second line"]
    assert replies.templates_for(db_session, district, "bs") == list(replies.DEFAULTS["bs"])
    assert replies.templates_for(db_session, world.county_admin.user.district_id, "en") == \
        list(replies.DEFAULTS["en"])
    t = world.tips["roosevelt"]
    t.language = "es"
    db_session.commit()
    staff = client.application.test_client()
    login(staff, world.staff)
    assert "Hola de SLPS" in tip_page(staff, t)
    assert staff.get("/staff/replies").status_code == 404  # school staff may not edit


def test_spanish_voicemail_without_transcript_says_so_plainly(
        client: Any, world: World, db_session: Session, vault: Any, queue: Any) -> None:
    from tipline.telephony.voice import ensure_voice_tip

    vt = ensure_voice_tip(db_session, vault, queue, call_sid="CA" + "1" * 32,
                          recording_sid="RE" + "1" * 32, recording_url=None, language="es")
    tip = db_session.get(Tip, vt.tip_id)
    tip.school_id = world.tips["roosevelt"].school_id
    tip.district_id = world.tips["roosevelt"].district_id
    db_session.commit()
    login(client, world.staff)
    page = tip_page(client, tip)
    assert "Spanish voicemail: listen to the recording." in page
    assert "transcript pending" not in page.lower()
    # An English recording whose transcript never came says that, not "Spanish".
    tip.language = "en"
    db_session.commit()
    assert "No transcript (it failed or has not arrived yet)" in tip_page(client, tip)
    att = db_session.execute(select(Attachment).where(Attachment.tip_id == tip.id)).scalar_one()
    from tipline.routing.audience import give_item_key

    give_item_key(db_session, vault, tip, att, "transcript_key_uid")  # as the webhook does
    att.transcript = "there is a gun in the locker"
    db_session.commit()
    assert "there is a gun in the locker" in tip_page(client, tip)


def test_routing_is_one_plain_sentence_first_and_roles_are_not_repeated(
        client: Any, world: World, db_session: Session) -> None:
    t = world.tips["roosevelt"]
    job = db_session.execute(select(RoutingJob).where(RoutingJob.tip_id == t.id)).scalar_one()
    job.status = "done"
    job.explanation = {"rule": "slps-violence", "policy_sha256": "abc", "contacts": [
        {"contact": "slps-roosevelt-counselor", "name": "Dana Reyes (counselor)",
         "role": "counselor", "alerted": True, "step": 1},
        {"contact": "slpd-liaison", "name": "SLPD liaison", "role": "police_liaison",
         "alerted": False, "why": "rule slps-violence does not alert police"}]}
    d = dispatch_to(db_session, t, job.id, "slps-roosevelt-counselor")
    d.activated_at = utcnow()
    db_session.commit()
    login(client, world.staff)
    page = tip_page(client, t)
    sentence = page.split('<p class="routing-sentence">', 1)[1].split("</p>", 1)[0]
    assert sentence.replace("&#39;", "'") == (
        "Sent to Dana Reyes (counselor) by rule 'slps-violence'; police were not alerted "
        "because rule slps-violence does not alert police.")
    assert page.index("routing-sentence") < page.index("policy sha256")
    assert "(counselor) (counselor)" not in page
    assert "Alerted: Dana Reyes (counselor)." in page


def test_an_action_returns_to_its_own_form_and_rejects_other_anchors(
        client: Any, world: World) -> None:
    t = world.tips["roosevelt"]
    login(client, world.staff)
    resp = post(client, t, "note", body="x", back="note-form")
    assert resp.headers["Location"].endswith(f"/staff/tips/{t.uid}#note-form")
    resp = post(client, t, "note", body="y", back="https://evil.example/")
    assert resp.headers["Location"].endswith(f"/staff/tips/{t.uid}")


def test_summary_comes_before_the_conversation_and_the_actions(client: Any,
                                                                world: World) -> None:
    login(client, world.staff)
    page = tip_page(client, world.tips["roosevelt"])
    order = [page.index(x) for x in ('id="summary"', 'id="conversation"', 'id="actions"',
                                     'id="routing"')]
    assert order == sorted(order)


def test_contact_label_names_the_role_once() -> None:
    class C:
        name, role = "Dana Reyes (counselor)", "counselor"

    class D:
        name, role = "Marcus Hill", "social_worker"

    assert conversation.contact_label(C()) == "Dana Reyes (counselor)"  # type: ignore[arg-type]
    assert conversation.contact_label(D()) == "Marcus Hill (social worker)"  # type: ignore[arg-type]


def test_contacts_are_named_with_their_role_in_words_once() -> None:
    from tipline.directory.models import Contact
    from tipline.triage.conversation import contact_label

    assert contact_label(Contact(name="SLPS district on-call", role="district_oncall")) == \
        "SLPS district on-call"
    assert contact_label(Contact(name="Pat Lee", role="district_oncall")) == \
        "Pat Lee (district on-call)"
    assert contact_label(Contact(name="Dana Reyes (counselor)", role="counselor")) == \
        "Dana Reyes (counselor)"
    assert contact_label(Contact(name="Desk", role="district_admin_desk")) == \
        "Desk (district office)"
