"""Sign-in: password + TOTP, enrolment with a server-drawn QR code, replay, lockout, idle
expiry, sign-out everywhere, and the rate limit."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.staffsupport import csrf_from, csrf_token, current_code, make_staff, sign_in
from tipline.accounts import services as accounts
from tipline.accounts.models import StaffUser
from tipline.audit.models import AuditEvent
from tipline.crypto import Vault
from tipline.db import utcnow


@pytest.fixture
def admin(db_session: Session, vault: Vault, demo_directory: dict[str, int]) -> Any:
    return make_staff(db_session, vault, "district_admin", district="slps")


def _password_step(client: Any, email: str, password: str) -> Any:
    return client.post("/staff/login", data={"email": email, "password": password,
                                             "csrf_token": csrf_token(client)})


def test_staff_pages_need_sign_in(client: Any) -> None:
    resp = client.get("/staff/")
    assert resp.status_code == 302
    assert "/staff/login" in resp.headers["Location"]


def test_sign_in_with_password_and_code(client: Any, admin: Any, db_session: Session) -> None:
    user, password, secret = admin
    resp = sign_in(client, user.email, password, secret)
    assert resp.headers["Location"].endswith("/staff/")
    assert client.get("/staff/").status_code == 200
    actions = db_session.execute(select(AuditEvent.action).where(
        AuditEvent.actor_user_id == user.id)).scalars().all()
    assert "staff.sign_in" in actions


def test_password_alone_does_not_sign_in(client: Any, admin: Any) -> None:
    user, password, _secret = admin
    assert _password_step(client, user.email, password).status_code == 303
    assert client.get("/staff/").status_code == 302


def test_wrong_password_and_unknown_email_get_the_same_answer(client: Any, admin: Any) -> None:
    user, _password, _secret = admin
    wrong = _password_step(client, user.email, "not the password at all")
    unknown = _password_step(client, "nobody@staff.example.org", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    msg = re.compile(r'<p class="error"[^>]*>([^<]+)</p>')
    said_wrong = msg.search(wrong.get_data(as_text=True))
    said_unknown = msg.search(unknown.get_data(as_text=True))
    assert said_wrong and said_unknown
    assert said_wrong.group(1) == said_unknown.group(1)


def test_first_sign_in_enrols_totp_with_a_server_drawn_qr(client: Any, db_session: Session,
                                                            vault: Vault,
                                                            demo_directory: Any) -> None:
    user, password, _ = make_staff(db_session, vault, "district_admin", district="slps",
                                   enrolled=False)
    assert _password_step(client, user.email, password).status_code == 303
    page = client.get("/staff/login/code").get_data(as_text=True)
    assert 'src="data:image/svg+xml' in page
    assert "<script" not in page.split("</main>")[0].split("<main")[1]
    db_session.refresh(user)
    secret = user.totp_secret
    assert secret and secret.encode() not in (user.totp_secret_ct or b"")
    resp = client.post("/staff/login/code", data={"code": current_code(secret),
                                                  "csrf_token": csrf_from(page)})
    assert resp.status_code == 303
    db_session.refresh(user)
    assert user.totp_confirmed is True
    assert client.get("/staff/").status_code == 200


def test_a_code_cannot_be_used_twice(client: Any, app: Any, admin: Any) -> None:
    user, password, secret = admin
    code = current_code(secret)
    assert _password_step(client, user.email, password).status_code == 303
    page = client.get("/staff/login/code").get_data(as_text=True)
    ok = client.post("/staff/login/code", data={"code": code, "csrf_token": csrf_from(page)})
    assert ok.status_code == 303
    other = app.test_client()
    assert _password_step(other, user.email, password).status_code == 303
    page = other.get("/staff/login/code").get_data(as_text=True)
    replay = other.post("/staff/login/code", data={"code": code,
                                                   "csrf_token": csrf_from(page)})
    assert replay.status_code == 401
    assert other.get("/staff/").status_code == 302


def test_wrong_code_refused(client: Any, admin: Any) -> None:
    user, password, secret = admin
    assert _password_step(client, user.email, password).status_code == 303
    page = client.get("/staff/login/code").get_data(as_text=True)
    wrong = "000000" if current_code(secret) != "000000" else "111111"
    resp = client.post("/staff/login/code", data={"code": wrong, "csrf_token": csrf_from(page)})
    assert resp.status_code == 401
    assert client.get("/staff/").status_code == 302


def test_a_code_in_another_script_s_digits_signs_in(client: Any, admin: Any) -> None:
    """An Arabic keyboard types the code as Arabic-Indic digits: read as the same code (it
    was a 500: hmac.compare_digest refuses non-ASCII text)."""
    user, password, secret = admin
    assert _password_step(client, user.email, password).status_code == 303
    page = client.get("/staff/login/code").get_data(as_text=True)
    arabic = current_code(secret).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    resp = client.post("/staff/login/code", data={"code": arabic, "csrf_token": csrf_from(page)})
    assert resp.status_code == 303
    assert client.get("/staff/").status_code == 200


@pytest.mark.parametrize("code", ["12345\u00b2", "\u2460\u2461\u2462\u2463\u2464\u2465"])
def test_a_code_with_characters_that_only_look_like_digits_is_wrong(client: Any, admin: Any,
                                                                    code: str) -> None:
    user, password, _secret = admin
    assert _password_step(client, user.email, password).status_code == 303
    page = client.get("/staff/login/code").get_data(as_text=True)
    resp = client.post("/staff/login/code", data={"code": code, "csrf_token": csrf_from(page)})
    assert resp.status_code == 401


def test_repeated_failures_pause_the_account(client: Any, admin: Any,
                                             db_session: Session) -> None:
    user, password, _secret = admin
    for _ in range(accounts.MAX_FAILED):
        assert _password_step(client, user.email, "wrong password here").status_code == 401
    db_session.refresh(user)
    assert user.locked_until is not None
    # Even the right password is refused while the account is paused.
    assert _password_step(client, user.email, password).status_code == 401


def test_sign_in_attempts_are_rate_limited(client: Any, admin: Any) -> None:
    codes = [
        _password_step(client, f"nobody{i}@staff.example.org", "wrong password here").status_code
        for i in range(31)
    ]
    assert codes[:30] == [401] * 30
    assert codes[30] == 429


def test_rate_limit_per_account(client: Any, app: Any, admin: Any) -> None:
    user, _password, _secret = admin
    statuses = []
    for _ in range(11):
        statuses.append(_password_step(client, user.email, "wrong password here").status_code)
    assert statuses[-1] == 429


def test_idle_session_expires(client: Any, app: Any, admin: Any) -> None:
    user, password, secret = admin
    sign_in(client, user.email, password, secret)
    with client.session_transaction() as sess:
        sess["staff_seen"] = time.time() - app.config["STAFF_IDLE_SECONDS"] - 5
    resp = client.get("/staff/")
    assert resp.status_code == 302
    assert "Your session ended" in client.get(resp.headers["Location"]).get_data(as_text=True)


def test_sign_out_everywhere_ends_other_sessions(client: Any, app: Any, admin: Any,
                                                 db_session: Session) -> None:
    user, password, secret = admin
    sign_in(client, user.email, password, secret)
    laptop = app.test_client()
    sign_in(laptop, user.email, password, secret)
    assert laptop.get("/staff/").status_code == 200
    page = client.get("/staff/account").get_data(as_text=True)
    resp = client.post("/staff/logout/everywhere", data={"csrf_token": csrf_from(page)})
    assert resp.status_code == 303
    assert laptop.get("/staff/").status_code == 302
    assert client.get("/staff/").status_code == 302


def test_sign_out_needs_csrf(client: Any, admin: Any) -> None:
    user, password, secret = admin
    sign_in(client, user.email, password, secret)
    assert client.post("/staff/logout/everywhere").status_code == 400
    assert client.post("/staff/logout").status_code == 400
    assert client.get("/staff/").status_code == 200


def test_disabled_account_is_signed_out(client: Any, admin: Any, db_session: Session) -> None:
    user, password, secret = admin
    sign_in(client, user.email, password, secret)
    user.active = False
    db_session.flush()
    assert client.get("/staff/").status_code == 302


def test_next_only_returns_inside_the_staff_area(client: Any, admin: Any) -> None:
    user, password, secret = admin
    client.get("/staff/login?next=https://evil.example/steal")
    resp = sign_in(client, user.email, password, secret)
    assert resp.headers["Location"].endswith("/staff/")


def test_user_row_never_holds_the_secret_in_clear(db_session: Session, vault: Vault,
                                                  demo_directory: Any) -> None:
    user, _p, secret = make_staff(db_session, vault, "auditor")
    raw = db_session.execute(select(StaffUser.totp_secret_ct).where(
        StaffUser.id == user.id)).scalar_one()
    assert raw is not None and secret.encode() not in raw


def test_session_holds_no_address_or_user_agent_hash(client: Any, admin: Any) -> None:
    import hashlib

    user, password, secret = admin
    sign_in(client, user.email, password, secret)
    with client.session_transaction() as sess:
        ident = sess.get("_id")
    ua = client.environ_base.get("HTTP_USER_AGENT", "") if hasattr(client, "environ_base") \
        else ""
    flask_login_style = hashlib.sha512(f"127.0.0.1|{ua}".encode()).hexdigest()
    assert ident != flask_login_style
    assert ident is None or len(ident) == 32


def test_queue_refresh_by_the_page_does_not_keep_a_session_alive(
        client: Any, app: Any, admin: Any) -> None:
    """The polling script re-fetches the queue table (?partial=1) whenever the queue changes;
    in a busy district that is often, and an unattended screen must still sign out."""
    user, password, secret = admin
    sign_in(client, user.email, password, secret)
    seen = time.time() - app.config["STAFF_IDLE_SECONDS"] + 60
    with client.session_transaction() as sess:
        sess["staff_seen"] = seen
    poll = {"X-Tipline-Poll": "1"}  # what tipline/static/js/dashboard.js sends
    assert client.get("/staff/?partial=1", headers=poll).status_code == 200
    with client.session_transaction() as sess:
        assert sess["staff_seen"] == seen
    with client.session_transaction() as sess:
        sess["staff_seen"] = time.time() - app.config["STAFF_IDLE_SECONDS"] - 5
    # expired: the script gets 401 (it reloads the page), not the sign-in page as a table
    assert client.get("/staff/?partial=1", headers=poll).status_code == 401


def test_an_attacker_cannot_lock_staff_out_of_a_device_they_signed_in_on(
        client: Any, app: Any, admin: Any, db_session: Session) -> None:
    """Anyone who knows a staff email can pause the account and fill its rate limit with
    wrong passwords. A browser that has completed a sign-in on that account before (it holds
    a signed device cookie) is exempt from both, so the counselor on call still gets in."""
    user, password, secret = admin
    sign_in(client, user.email, password, secret)
    client.post("/staff/logout", data={"csrf_token": csrf_from(
        client.get("/staff/account").get_data(as_text=True))})
    attacker = app.test_client()
    statuses = [_password_step(attacker, user.email, "wrong password here").status_code
                for _ in range(11)]
    assert statuses[-1] == 429
    db_session.refresh(user)
    assert user.locked_until is not None
    # the attacker, even with the right password now, stays locked out
    assert _password_step(attacker, user.email, password).status_code in (401, 429)
    # the staff member's own browser signs in: password and code
    assert sign_in(client, user.email, password, secret).status_code == 303
    assert client.get("/staff/").status_code == 200


def test_a_device_cookie_only_helps_the_account_that_earned_it(
        client: Any, app: Any, admin: Any, db_session: Session, vault: Vault) -> None:
    user, password, secret = admin
    other, other_pw, _other_secret = make_staff(db_session, vault, "school_staff",
                                                schools=["slps-roosevelt"])
    sign_in(client, user.email, password, secret)  # this browser is trusted for `user` only
    client.post("/staff/logout", data={"csrf_token": csrf_from(
        client.get("/staff/account").get_data(as_text=True))})
    other.locked_until = utcnow() + accounts.LOCK_FOR
    db_session.flush()
    assert _password_step(client, other.email, other_pw).status_code == 401


def test_device_cookie_is_signed_httponly_and_carries_no_identity(
        client: Any, admin: Any) -> None:
    user, password, secret = admin
    resp = sign_in(client, user.email, password, secret)
    cookie = next(c for c in resp.headers.getlist("Set-Cookie") if c.startswith("tl_dev="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/staff" in cookie
    assert user.email not in cookie and "127.0.0.1" not in cookie


def test_sign_out_everywhere_ends_the_trust_of_every_browser(
        client: Any, admin: Any, db_session: Session) -> None:
    user, password, secret = admin
    sign_in(client, user.email, password, secret)
    page = client.get("/staff/account").get_data(as_text=True)
    assert client.post("/staff/logout/everywhere",
                       data={"csrf_token": csrf_from(page)}).status_code == 303
    db_session.refresh(user)
    user.locked_until = utcnow() + accounts.LOCK_FOR
    db_session.flush()
    assert _password_step(client, user.email, password).status_code == 401


def test_a_code_taken_by_a_concurrent_sign_in_is_refused(db_session: Session, admin: Any) -> None:
    """Two requests racing with the same code both read the old last step; the step is
    claimed in the database, so only one of them gets in."""
    from sqlalchemy import update

    from tipline.accounts import totp

    user, _password, secret = admin
    now = utcnow()
    code = current_code(secret, now)
    db_session.execute(update(StaffUser).where(StaffUser.id == user.id)
                       .values(totp_last_step=totp.current_step(now))
                       .execution_options(synchronize_session=False))
    assert user.totp_last_step is None  # what the slower request read before the other won
    with pytest.raises(accounts.SignInRefused):
        accounts.check_code(user, code, now)
