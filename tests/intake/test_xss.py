"""Hostile text in every field comes back escaped on every page that shows it."""

from __future__ import annotations

import io
from typing import Any

import pytest
from sqlalchemy import select

from tests.intake.helpers import csrf_from, nonce_from, open_form, tip_fields
from tipline.tips.models import Message, Tip

PAYLOADS = [
    "<script>alert('x1')</script>",
    '"><img src=x onerror=alert(2)>',
    "'><svg/onload=alert(3)>",
    "javascript:alert(4)//</textarea><b>bold</b>",
]
FIELDS = ("body", "when", "where", "who", "how_known")


def _assert_safe(html: str) -> None:
    for raw in ("<script>alert", "<img src=x", "<svg/onload", "<b>bold</b>", "</textarea><b>"):
        assert raw not in html, raw


@pytest.mark.parametrize("payload", PAYLOADS)
def test_form_pages_escape_every_field(app, client, db_session, demo_directory,
                                       payload: str) -> None:
    values = {name: f"{payload} {name}" for name in FIELDS}
    # 1. validation error (no category): every field is echoed back
    token, _html = open_form(client)
    data = tip_fields(token, category="", **values)
    bad = client.post("/report", data=data).get_data(as_text=True)
    _assert_safe(bad)
    assert "&lt;" in bad or "&#34;&gt;" in bad or "&#39;&gt;" in bad
    # 2. the school search echoes the query
    found = client.get("/report", query_string={"school_q": payload}).get_data(as_text=True)
    _assert_safe(found)
    # 3. honeypot made visible
    hp = client.post("/report", data=tip_fields(token, website=payload, **values))
    _assert_safe(hp.get_data(as_text=True))
    # 4. an expired page
    expired = client.post("/report", data=tip_fields("stale", **values)).get_data(as_text=True)
    _assert_safe(expired)
    assert db_session.execute(select(Tip)).first() is None


@pytest.mark.parametrize("payload", PAYLOADS)
def test_conversation_escapes_reporter_and_staff_text(app, client, db_session, demo_directory,
                                                      payload: str) -> None:
    token, html = open_form(client)
    values = {name: f"{payload} {name}" for name in FIELDS}
    receipt = client.post("/report", data=tip_fields(token, submission=nonce_from(html),
                                                     **values)).get_data(as_text=True)
    _assert_safe(receipt)
    code = receipt.split('id="receipt-code"')[1].split("<code>")[1].split("<")[0]
    tip = db_session.execute(select(Tip)).scalar_one()
    tip.reporter_status = f"status {payload}"
    staff = Message(tip=tip, author="staff", channel="web")
    staff.body = f"question {payload}"
    db_session.add(staff)
    db_session.commit()
    client.post("/followup", data={"csrf_token": token, "code": code})
    conv = client.get("/followup/tip").get_data(as_text=True)
    _assert_safe(conv)
    assert "question " in conv and "status " in conv and "how_known" in conv
    # a reply refused (not a picture) echoes the reply text
    refused = client.post("/followup/tip", data={
        "csrf_token": token, "body": f"reply {payload}",
        "attachments": [(io.BytesIO(b"not an image"), "a.txt", "text/plain")],
    }, content_type="multipart/form-data")
    assert refused.status_code == 400
    _assert_safe(refused.get_data(as_text=True))
    # a stored reply is shown escaped
    client.post("/followup/tip", data={"csrf_token": token, "body": f"reply {payload}"})
    _assert_safe(client.get("/followup/tip").get_data(as_text=True))
    # an expired sign-in shows the reply text for copying
    other = app.test_client()
    kept = other.post("/followup/tip", data={"csrf_token": "x", "body": f"kept {payload}"})
    _assert_safe(kept.get_data(as_text=True))


def test_followup_code_field_is_never_echoed(client: Any, demo_directory) -> None:
    token = csrf_from(client.get("/followup").get_data(as_text=True))
    html = client.post("/followup", data={"csrf_token": token,
                                          "code": PAYLOADS[0]}).get_data(as_text=True)
    _assert_safe(html)
    assert "alert('x1')" not in html
