"""Web tips once the district has a read key: sealed at intake (no key-file slot), readable by
the district's staff and by the reporter's own receipt code, never by the server alone."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from sqlalchemy import select

from tests.factories import make_tip
from tests.intake.helpers import csrf_from, jpeg_with_gps, post_tip
from tests.keysupport import reader
from tipline.crypto import SEALED_ONLY, CryptoError, KeyUnavailable, using
from tipline.db import utcnow
from tipline.intake import followup as fu
from tipline.intake import handle
from tipline.tips.models import Attachment, Message, Tip


@pytest.fixture
def slps_reader(db_session: Any, vault: Any, demo_directory: Any) -> Any:
    user, chain = reader(db_session, vault, "slps")
    db_session.commit()
    return user, chain


def _rids(tip: Tip) -> list[str]:
    assert tip.data_key is not None
    return [s.get("rid", s["kind"]) for s in json.loads(tip.data_key.slots)["slots"]]


def test_a_web_form_tip_is_sealed_to_the_district_and_the_reporters_code(
        client, db_session, slps_reader) -> None:
    assert post_tip(client).status_code in (200, 303)
    tip = db_session.execute(select(Tip).order_by(Tip.id.desc()).limit(1)).scalar_one()
    assert tip.data_key is not None and tip.data_key.kek_id == SEALED_ONLY
    rids = _rids(tip)
    assert "kek" not in rids and f"code:{tip.uid}" in rids
    assert any(r.startswith("district:") for r in rids)
    with pytest.raises(KeyUnavailable):  # the server alone: no key opens it
        _ = tip.details_json
    with using(slps_reader[1]):
        assert "bus stop" in tip.messages[0].body and "Arsenal" in (tip.details_json or "")


def test_the_receipt_code_opens_the_conversation_and_the_reply_reaches_staff(
        client, db_session, vault, queue, slps_reader) -> None:
    r = make_tip(db_session, vault, queue, body="First words, sealed",
                 school_code="slps-roosevelt", details={"where": "Library"})
    db_session.commit()
    tip = db_session.get(Tip, r.tip_id)
    _user, chain = slps_reader
    with using(chain):  # a staff question, written in a staff session
        question = Message(tip=tip, author="staff", channel="web")
        question.body = "Which period was it?"
        db_session.add(question)
        db_session.commit()
    assert client.post("/followup", data={
        "csrf_token": csrf_from(client.get("/followup").get_data(as_text=True)),
        "code": r.receipt_code}).status_code == 303
    page = client.get("/followup/tip").get_data(as_text=True)
    assert "First words, sealed" in page and "Library" in page and "Which period" in page
    resp = client.post("/followup/tip", data={
        "csrf_token": csrf_from(page), "body": "Third period",
        "attachments": [(io.BytesIO(jpeg_with_gps()), "shot.jpg", "image/jpeg")],
    }, content_type="multipart/form-data")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("sent=1")
    assert "Third period" in client.get("/followup/tip").get_data(as_text=True)
    db_session.expire_all()
    reply = db_session.execute(select(Message).where(
        Message.tip_id == tip.id, Message.author == "reporter").order_by(Message.id.desc())
        .limit(1)).scalar_one()
    att = db_session.execute(select(Attachment).where(Attachment.tip_id == tip.id)).scalar_one()
    with pytest.raises(KeyUnavailable):
        _ = reply.body
    with using(chain):  # sealed to the same audience: the district's staff read it
        assert reply.body == "Third period" and att.data.startswith(b"\xff\xd8")


def test_without_the_code_key_the_conversation_does_not_open(db_session, vault, queue,
                                                              slps_reader) -> None:
    r = make_tip(db_session, vault, queue, body="words", school_code="slps-roosevelt")
    db_session.commit()
    tip = fu.find_tip_by_code(db_session, vault, r.receipt_code)
    assert tip is not None
    with pytest.raises(CryptoError):
        fu.read_conversation(db_session, vault, tip, utcnow())
    wrong = handle.Handle(tip.uid, utcnow(), utcnow(), handle.code_key("WRONG-CODE", tip.uid))
    with pytest.raises(CryptoError):
        fu.read_conversation(db_session, vault, tip, utcnow(), wrong.keychain())
    right = handle.Handle(tip.uid, utcnow(), utcnow(), handle.code_key(r.receipt_code, tip.uid))
    conv = fu.read_conversation(db_session, vault, tip, utcnow(), right.keychain())
    assert [e.body for e in conv.entries] == ["words"]


def test_the_handle_carries_the_code_key_sealed_and_only_for_its_session(vault) -> None:
    key = handle.code_key("ABCD-EFGH-JKMN-PQRS", "tipuid")
    token = handle.issue(vault, "tipuid", utcnow(), code_key=key)
    assert key.hex() not in token
    read = handle.read(vault, token, utcnow())
    assert read is not None and read.code_key == key and "code:tipuid" in read.keychain()


def test_legacy_mode_without_a_district_key_keeps_the_key_file_slot(
        db_session, vault, queue, demo_directory) -> None:
    r = make_tip(db_session, vault, queue, body="legacy words", school_code="slps-roosevelt")
    db_session.commit()
    tip = db_session.get(Tip, r.tip_id)
    assert _rids(tip) == ["kek"] and tip.data_key.kek_id == vault.active_key_id
    assert tip.messages[0].body == "legacy words"
    conv = fu.read_conversation(db_session, vault, tip, utcnow())
    assert [e.body for e in conv.entries] == ["legacy words"]
