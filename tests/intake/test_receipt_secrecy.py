"""A receipt code reaches only the session that created its tip (security issue 10, item 1).

Each test here tries an attack on the web receipt: fixing the form's nonce through the CSRF
error page, replaying a nonce learned from another reporter's page, and posting shapes of body
the form endpoints do not expect (which must get a 4xx page with 911/988, never a 500).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.factories import make_tip
from tests.intake.helpers import csrf_from, nonce_from, open_form, tip_fields
from tests.intake.test_outage import dead_app
from tipline.tips.models import Tip
from tipline.tips.receipts import RECEIPT_PURPOSE, normalize_code

CODE = re.compile(r'id="receipt-code"[^>]*><code>([0-9A-Z-]+)</code>')
# Anything on a page that looks like a web receipt code, wherever it is shown.
__all__ = ["dead_app"]  # the fixture
ANY_CODE = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-"
                      r"[0-9A-HJKMNP-TV-Z]{4}\b")
ATTACKER_NONCE = "ab" * 16
VICTIM_WORDS = "My cousin brought a gun to school, it is in his locker VW-77"


def _code(html: str) -> str | None:
    m = CODE.search(html)
    return m.group(1) if m else None


def _tips(db_session: Any) -> list[Tip]:
    db_session.expire_all()
    return list(db_session.execute(select(Tip).order_by(Tip.id)).scalars())


def _send(client: Any, token: str, nonce: str | None, **fields: Any) -> Any:
    return client.post("/report", data=tip_fields(token, submission=nonce, **fields),
                       content_type="multipart/form-data")


def _conversation(client: Any, code: str) -> str:
    """What ``client`` reads on the follow-up page after typing ``code``."""
    token = csrf_from(client.get("/followup").get_data(as_text=True))
    client.post("/followup", data={"csrf_token": token, "code": code})
    return client.get("/followup/tip").get_data(as_text=True)


def _sent_own(client: Any) -> tuple[str, str, str]:
    """A tip sent from the client's own page: (its CSRF token, its nonce, the code shown)."""
    token, html = open_form(client)
    nonce = nonce_from(html)
    assert nonce
    code = _code(_send(client, token, nonce).get_data(as_text=True))
    assert code
    return token, nonce, code


def _victim_sent(app: Any) -> tuple[Any, str, str, str]:
    """A victim's tip sent from their own page: (attacker's client, the attacker's CSRF token,
    the victim's nonce, the victim's code)."""
    victim, attacker = app.test_client(), app.test_client()
    token, html = open_form(victim)
    nonce = nonce_from(html)
    assert nonce
    victim_code = _code(_send(victim, token, nonce, body=VICTIM_WORDS).get_data(as_text=True))
    assert victim_code
    token, _html = open_form(attacker)
    return attacker, token, nonce, victim_code


def test_the_csrf_error_page_cannot_fix_the_nonce_and_leak_the_victims_code(
    app, db_session, demo_directory
) -> None:
    victim, attacker = app.test_client(), app.test_client()
    # 1. The attacker's page makes the victim's browser post a form with the attacker's nonce
    #    and no CSRF token (SameSite=Strict: no cookie goes with it either).
    trap = victim.post("/report", data={"submission": ATTACKER_NONCE, "body": "",
                                        "website": "", "ui_lang": "en"})
    page = trap.get_data(as_text=True)
    assert trap.status_code == 400
    assert ATTACKER_NONCE not in page  # the error page never copies a hidden field
    # 2. The victim writes the tip on that page and sends it.
    sent = _send(victim, csrf_from(page), nonce_from(page), body=VICTIM_WORDS)
    victim_code = _code(sent.get_data(as_text=True))
    assert sent.status_code == 200 and victim_code
    # 3. The attacker posts a valid form of their own with the same nonce.
    token, _html = open_form(attacker)
    replay = _send(attacker, token, ATTACKER_NONCE, body="anything at all")
    shown = replay.get_data(as_text=True)
    assert victim_code not in shown
    # ... and whatever the attacker was shown does not open the victim's tip.
    attacker_code = _code(shown)
    if attacker_code is not None:
        assert VICTIM_WORDS not in _conversation(attacker, attacker_code)
    assert VICTIM_WORDS in _conversation(victim, victim_code)


def test_a_nonce_replayed_from_another_session_never_shows_the_code(
    app, db_session, vault, demo_directory
) -> None:
    # The nonce is not a secret (it is in the page source); replaying it gets nothing.
    attacker, token, nonce, victim_code = _victim_sent(app)
    for _ in range(2):
        replay = _send(attacker, token, nonce, body="a tip of the attacker's own")
        assert replay.status_code < 500
        assert victim_code not in replay.get_data(as_text=True)
    # The victim's tip is unchanged and is the only tip holding the victim's code.
    digest = vault.lookup_hash(RECEIPT_PURPOSE, normalize_code(victim_code))
    holders = [t for t in _tips(db_session) if t.receipt_hash == digest]
    assert len(holders) == 1 and holders[0].messages[0].body == VICTIM_WORDS


def test_a_double_send_in_the_same_session_shows_its_own_receipt_and_makes_one_tip(
    app, db_session, demo_directory
) -> None:
    reporter = app.test_client()
    token, nonce, first = _sent_own(reporter)
    again = _code(_send(reporter, token, nonce).get_data(as_text=True))
    assert first and first == again
    assert len(_tips(db_session)) == 1


def test_a_repeat_long_after_the_tip_shows_no_code(app, db_session, demo_directory) -> None:
    """A resubmitted page on a shared computer an hour later does not show the code again."""
    reporter = app.test_client()
    token, nonce, code = _sent_own(reporter)
    (tip,) = _tips(db_session)
    db_session.execute(update(Tip).where(Tip.id == tip.id)
                       .values(created_at=tip.created_at - timedelta(hours=1)))
    db_session.commit()
    later = _send(reporter, token, nonce)
    html = later.get_data(as_text=True)
    assert later.status_code == 200 and "Your tip was received" in html
    assert code not in html and _code(html) is None
    assert len(_tips(db_session)) == 1


def test_after_leave_the_same_browser_cannot_show_the_code_again(
    app, db_session, demo_directory
) -> None:
    reporter = app.test_client()
    token, nonce, code = _sent_own(reporter)
    reporter.post("/followup/leave", data={"csrf_token": token})
    again = _send(reporter, token, nonce).get_data(as_text=True)
    assert code not in again


def test_no_response_shows_a_code_but_for_the_tip_that_request_created(
    app, db_session, vault, demo_directory
) -> None:
    """Every way of posting the victim's nonce from another session, one after the other."""
    attacker, token, nonce, victim_code = _victim_sent(app)
    attempts: list[dict[str, Any]] = [
        tip_fields(token, submission=nonce),  # send
        tip_fields(token, submission=nonce, lang="es", lang_switch="1"),  # language switch
        tip_fields(token, submission=nonce, all_schools="1"),  # show every school
        tip_fields(token, submission=nonce, school_q="Roosevelt"),  # school search
        tip_fields(token, submission=nonce, body=""),  # validation error
        tip_fields(token, submission=nonce, website="x"),  # honeypot
        tip_fields("stale", submission=nonce),  # CSRF error
        {"submission": nonce},  # CSRF error, nothing else
    ]
    for data in attempts:
        before = {t.id for t in _tips(db_session)}
        resp = attacker.post("/report", data=data, content_type="multipart/form-data")
        page = resp.get_data(as_text=True)
        assert resp.status_code < 500, data
        assert nonce not in page and victim_code not in page, data
        created = [t for t in _tips(db_session) if t.id not in before]
        for shown in set(ANY_CODE.findall(page)):
            digest = vault.lookup_hash(RECEIPT_PURPOSE, normalize_code(shown))
            assert [t.receipt_hash for t in created] == [digest], (data, shown)


BODIES = [
    ("application/json", json.dumps({"body": "x", "submission": ATTACKER_NONCE})),
    ("application/json", json.dumps([1, 2, 3])),
    ("application/json", json.dumps("just a string")),
    ("application/json", json.dumps(7)),
    ("application/json", json.dumps(None)),
    ("application/json", json.dumps({"body": {"nested": ["a"]}, "school": 5})),
    ("application/json", "{not json"),
    ("application/json; charset=utf-16", "\xff\xfe{"),
    ("text/plain", "body=hello"),
    ("application/xml", "<tip><body>x</body></tip>"),
    ("multipart/form-data", "no boundary here"),
    ("multipart/form-data; boundary=zz", "--zz\r\nbroken"),
    ("application/x-www-form-urlencoded", "%%%=&&=%zz&unknown=%ff%fe"),
]


@pytest.mark.parametrize("with_token", [False, True], ids=["no-token", "token-header"])
@pytest.mark.parametrize(("content_type", "body"), BODIES)
@pytest.mark.parametrize("url", ["/report", "/followup", "/followup/tip"])
def test_any_body_on_a_form_endpoint_gets_a_clear_4xx(
    app, db_session, vault, queue, demo_directory, url, content_type, body, with_token
) -> None:
    client = app.test_client()
    token, _html = open_form(client)
    if url == "/followup/tip":  # signed in to a tip, so the reply form is what reads the body
        receipt = make_tip(db_session, vault, queue, body="Words already sent")
        db_session.commit()
        assert "Words already sent" in _conversation(client, receipt.receipt_code)
    headers = {"X-CSRFToken": token} if with_token else {}
    resp = client.post(url, data=body.encode("utf-8", "surrogateescape"), headers=headers,
                       content_type=content_type)
    page = resp.get_data(as_text=True)
    assert 400 <= resp.status_code < 500, (resp.status_code, page[:300])
    assert "911" in page and "988" in page
    assert ATTACKER_NONCE not in page
    assert len(_tips(db_session)) == (1 if url == "/followup/tip" else 0)
    if url == "/followup/tip":
        assert len(_tips(db_session)[0].messages) == 1  # no reply was added


def test_the_503_retry_form_never_copies_a_nonce_the_session_was_not_issued(
    dead_app, vault
) -> None:
    """The database is down when the form is posted: the retry form keeps the reporter's words
    but carries a nonce issued to this session, never the posted one."""
    from tipline.intake.idempotency import new_nonce, new_session_secret, verified_nonce

    client = dead_app.test_client()
    token = csrf_from(client.get("/followup").get_data(as_text=True))  # no database needed
    foreign = new_nonce(vault, new_session_secret())  # valid for some other session
    for posted in (foreign, ATTACKER_NONCE):
        resp = client.post("/report", data=tip_fields(token, submission=posted,
                                                      body=VICTIM_WORDS))
        page = resp.get_data(as_text=True)
        assert resp.status_code == 503 and VICTIM_WORDS in page
        assert posted not in page
        kept = nonce_from(page)
        assert kept is not None
        with client.session_transaction() as sess:
            secret = sess.get("sub")
        assert secret and verified_nonce(vault, secret, kept) == kept
