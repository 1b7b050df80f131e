"""Coming back with a code: generic refusals, rate limits, the conversation, and replies."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any

import pytest
from markupsafe import escape
from PIL import Image
from sqlalchemy import select, text

from tests.conftest import recorded_statements
from tests.factories import make_tip
from tests.intake.helpers import csrf_from, jpeg_with_gps
from tipline.audit.models import AuditEvent
from tipline.db import utcnow
from tipline.intake import followup as fu
from tipline.intake import handle
from tipline.intake.views import SESSION_HANDLE
from tipline.tips.models import Attachment, Message, Tip

GENERIC = "That code did not open a tip. Check it and try again."


@pytest.fixture
def tip_code(db_session, vault, queue, demo_directory) -> tuple[int, str]:
    """A committed web tip with a staff question and a status for the reporter."""
    receipt = make_tip(db_session, vault, queue, body="First words from the reporter",
                       school_code="slps-roosevelt", details={"where": "Library"})
    db_session.flush()
    tip = db_session.get(Tip, receipt.tip_id)
    tip.reporter_status = "A counselor is looking into this."
    question = Message(tip=tip, author="staff", channel="web")
    question.body = "Which class period did this happen in?"
    db_session.add(question)
    note = Message(tip=tip, author="system", channel="web")
    note.body = "internal system note"
    db_session.add(note)
    db_session.commit()
    return receipt.tip_id, receipt.receipt_code


def _token(client: Any) -> str:
    return csrf_from(client.get("/followup").get_data(as_text=True))


def _open(client: Any, code: str, token: str | None = None) -> Any:
    return client.post("/followup", data={"csrf_token": token or _token(client), "code": code})


@pytest.mark.parametrize("code", ["", "abc", "0000-0000-0000-0000", "1234-5678-9012-3456-7890",
                                  "'; DROP TABLE tips; --"])
def test_a_wrong_code_gets_one_generic_answer(app, client, tip_code, code) -> None:
    resp = _open(client, code)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    if code:
        assert GENERIC in html
    assert "First words" not in html
    cookie = client.get_cookie("tl")
    serializer = app.session_interface.get_signing_serializer(app)
    session = serializer.loads(cookie.value) if cookie else {}
    assert SESSION_HANDLE not in session  # no follow-up sign-in was issued
    if code:  # the code is never echoed back (the form field stays empty)
        for shown in {code, code.upper(), str(escape(code)), str(escape(code.upper()))}:
            assert f'value="{shown}"' not in html


def test_malformed_and_unknown_codes_take_the_same_path(db_session, vault, tip_code) -> None:
    def work(statements: list[str]) -> list[str]:
        return [s for s in statements if not s.startswith(("SAVEPOINT", "RELEASE"))]

    with recorded_statements(db_session.get_bind()) as sent:
        assert fu.find_tip_by_code(db_session, vault, "not a code") is None
    malformed = work(sent)
    with recorded_statements(db_session.get_bind()) as sent:
        assert fu.find_tip_by_code(db_session, vault, "ZZZZ-ZZZZ-ZZZZ-ZZZZ") is None
    unknown = work(sent)
    assert len(malformed) == len(unknown) == 1  # one indexed lookup, whatever the input
    assert malformed == unknown


def test_the_right_code_opens_the_conversation(client, db_session, tip_code) -> None:
    tip_id, code = tip_code
    resp = _open(client, code.lower().replace("-", " "))  # typed however it was written
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/followup/tip")
    assert code not in resp.headers["Location"]
    page = client.get("/followup/tip")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "A counselor is looking into this." in html
    assert "Which class period did this happen in?" in html
    assert "First words from the reporter" in html and "Library" in html
    assert "internal system note" not in html
    assert '<span class="badge">New</span>' in html
    db_session.expire_all()
    staff = db_session.execute(select(Message).where(Message.tip_id == tip_id,
                                                     Message.author == "staff")).scalar_one()
    assert staff.read_by_reporter_at is not None
    again = client.get("/followup/tip").get_data(as_text=True)
    assert '<span class="badge">New</span>' not in again  # read now
    assert client.get("/followup").status_code == 303  # still signed in: straight to the tip


def test_the_session_cookie_holds_neither_code_nor_tip_id(app, client, db_session,
                                                          tip_code) -> None:
    tip_id, code = tip_code
    _open(client, code)
    cookie = client.get_cookie("tl")
    assert cookie is not None
    data = app.session_interface.get_signing_serializer(app).loads(cookie.value)
    tip = db_session.get(Tip, tip_id)
    flat = repr(data) + cookie.value
    for secret in (code, code.replace("-", ""), tip.uid, tip.reference, tip.receipt_hash):
        assert secret not in flat
    assert set(data) <= {"csrf_token", SESSION_HANDLE, "lang"}
    assert cookie.secure and cookie.http_only and cookie.same_site == "Strict"
    assert cookie.expires is None  # a browser-session cookie


def test_a_code_in_the_url_does_nothing(client, tip_code) -> None:
    _tip_id, code = tip_code
    resp = client.get(f"/followup?code={code}")
    assert resp.status_code == 200 and "First words" not in resp.get_data(as_text=True)
    assert client.get("/followup/tip").status_code == 303


def test_rate_limit_counts_wrong_codes_only(client, tip_code) -> None:
    _tip_id, code = tip_code
    token = _token(client)
    for _ in range(9):
        assert _open(client, "AAAA-BBBB-CCCC-DDDD", token).status_code == 400
    assert _open(client, code, token).status_code == 303  # successes are not counted
    assert _open(client, "AAAA-BBBB-CCCC-DDDD", token).status_code == 400  # the tenth wrong one
    blocked = _open(client, "AAAA-BBBB-CCCC-DDDD", token)
    html = blocked.get_data(as_text=True)
    assert blocked.status_code == 429
    assert "too many tries" in html.lower() and "911" in html and "988" in html
    assert _open(client, code, token).status_code == 429  # even a right code waits now


def test_reply_with_a_picture_is_sealed_audited_and_shown(client, db_session, tip_code) -> None:
    tip_id, code = tip_code
    _open(client, code)
    page = client.get("/followup/tip").get_data(as_text=True)
    resp = client.post("/followup/tip", data={
        "csrf_token": csrf_from(page), "body": "Third period, room 204",
        "attachments": [(io.BytesIO(jpeg_with_gps()), "shot.jpg", "image/jpeg")],
    }, content_type="multipart/form-data")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("sent=1")
    db_session.expire_all()
    reply = db_session.execute(
        select(Message).where(Message.tip_id == tip_id, Message.author == "reporter")
        .order_by(Message.id.desc()).limit(1)).scalar_one()
    assert reply.body == "Third period, room 204" and reply.channel == "web"
    raw = db_session.execute(text("SELECT body_ct FROM messages WHERE id=:i"),
                             {"i": reply.id}).scalar_one()
    assert b"room 204" not in bytes(raw)
    (att,) = db_session.execute(select(Attachment).where(Attachment.message_id == reply.id)
                                ).scalars()
    img = Image.open(io.BytesIO(att.data))
    assert not img.getexif() and b"SpyPhone" not in att.data
    (audit,) = db_session.execute(select(AuditEvent).where(AuditEvent.action == "reporter.reply")
                                  ).scalars()
    assert audit.tip_id == tip_id and audit.actor == "reporter:web"
    assert "room 204" not in repr(audit.detail) and audit.detail["pictures"] == 1
    shown = client.get("/followup/tip?sent=1").get_data(as_text=True)
    assert "Your answer was sent" in shown and "Third period, room 204" in shown
    assert "1 picture attached" in shown


def test_an_empty_reply_or_a_bad_file_keeps_the_words(client, db_session, tip_code) -> None:
    _tip_id, code = tip_code
    _open(client, code)
    token = csrf_from(client.get("/followup/tip").get_data(as_text=True))
    empty = client.post("/followup/tip", data={"csrf_token": token, "body": "  "})
    assert empty.status_code == 400
    assert "Please write an answer or add a picture." in empty.get_data(as_text=True)
    bad = client.post("/followup/tip", data={
        "csrf_token": token, "body": "Keep me RP-4",
        "attachments": [(io.BytesIO(b"MZ\x90\x00binary"), "x.exe", "application/octet-stream")],
    }, content_type="multipart/form-data")
    html = bad.get_data(as_text=True)
    assert bad.status_code == 400 and "Only pictures" in html and "Keep me RP-4" in html
    count = db_session.execute(select(Message).where(Message.body_ct.is_not(None),
                                                     Message.author == "reporter")).all()
    assert len(count) == 1  # only the original tip


def test_expired_csrf_on_a_reply_keeps_the_words(app, client, tip_code) -> None:
    _tip_id, code = tip_code
    _open(client, code)
    client.get("/followup/tip")
    resp = client.post("/followup/tip", data={"csrf_token": "expired", "body": "Keep me CS-2"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "Keep me CS-2" in html and "open for a long time" in html
    assert "Which class period" in html  # still on their conversation


def test_the_sign_in_expires_and_can_be_closed(app, client, db_session, tip_code) -> None:
    tip_id, code = tip_code
    tip = db_session.get(Tip, tip_id)
    vault = app.extensions["tipline"].vault
    with client.session_transaction() as sess:
        sess[SESSION_HANDLE] = handle.issue(vault, tip.uid, utcnow() - timedelta(hours=2))
    resp = client.get("/followup/tip")
    assert resp.status_code == 303 and "expired=1" in resp.headers["Location"]
    assert "signed out of your tip" in client.get(resp.headers["Location"]).get_data(as_text=True)
    _open(client, code)
    assert client.get("/followup/tip").status_code == 200
    token = csrf_from(client.get("/followup/tip").get_data(as_text=True))
    left = client.post("/followup/leave", data={"csrf_token": token})
    assert left.status_code == 303
    assert client.get("/followup/tip").status_code == 303


def test_handle_expiry_rules(vault) -> None:
    now = utcnow()
    token = handle.issue(vault, "abc", now)
    opened = handle.read(vault, token, now + timedelta(minutes=14))
    assert opened is not None and opened.tip_uid == "abc"
    assert handle.read(vault, token, now + timedelta(minutes=16)) is None
    # Sliding, but never past the absolute limit.
    late = handle.issue(vault, "abc", now + timedelta(minutes=55), started=now)
    assert handle.read(vault, late, now + timedelta(minutes=59)) is not None
    assert handle.read(vault, late, now + timedelta(minutes=61)) is None
    assert handle.read(vault, token[:-4] + "AAAA", now) is None  # tampered
    assert handle.read(vault, 12345, now) is None


def test_a_shredded_tip_cannot_be_opened(client, db_session, tip_code) -> None:
    tip_id, code = tip_code
    tip = db_session.get(Tip, tip_id)
    key = tip.data_key
    tip.data_key = None
    db_session.delete(key)
    db_session.commit()
    assert _open(client, code).status_code == 400


def test_staff_status_defaults_by_workflow_state(client, db_session, tip_code) -> None:
    tip_id, code = tip_code
    tip = db_session.get(Tip, tip_id)
    tip.reporter_status = None
    tip.status = "closed"
    db_session.commit()
    _open(client, code)
    html = client.get("/followup/tip").get_data(as_text=True)
    assert "This tip is closed. Thank you for speaking up." in html
    assert "if it is new or urgent, please send a new tip" in html


def test_conversation_in_spanish(client, tip_code) -> None:
    _tip_id, code = tip_code
    client.get("/followup?lang=es")
    _open(client, code)
    html = client.get("/followup/tip").get_data(as_text=True)
    assert '<html lang="es">' in html and "Personal de la escuela" in html
    assert re.search(r"Enviado el \d", html)


def test_a_reply_marks_the_tip_and_alerts_whoever_acknowledged(client, db_session, tip_code,
                                                               queue) -> None:
    from tests.routing.delivery_support import StaticPlanner, StepSpec
    from tipline.routing.ack import acknowledge_dispatch
    from tipline.routing.models import Dispatch, RoutingJob
    from tipline.routing.services import route_job

    tip_id, code = tip_code
    job = db_session.execute(select(RoutingJob).where(RoutingJob.tip_id == tip_id)).scalar_one()
    route_job(db_session, job.id, StaticPlanner([StepSpec(("slps-roosevelt-counselor",))]),
              queue, utcnow())
    first = db_session.execute(select(Dispatch).where(Dispatch.tip_id == tip_id)).scalar_one()
    acknowledge_dispatch(db_session, first.id, via="sms", now=utcnow())
    db_session.commit()
    _open(client, code)
    token = csrf_from(client.get("/followup/tip").get_data(as_text=True))
    resp = client.post("/followup/tip", data={"csrf_token": token, "body": "It was room 12"})
    assert resp.status_code == 303
    db_session.expire_all()
    assert db_session.get(Tip, tip_id).reporter_message_at is not None
    notices = db_session.execute(select(Dispatch).where(
        Dispatch.tip_id == tip_id, Dispatch.status == "notice")).scalars().all()
    assert [d.contact_id for d in notices] == [first.contact_id]
    published = [args[0] for name, args in queue.sent if name == "tipline.deliver_alert"]
    assert notices[0].deliveries[0].id in published
