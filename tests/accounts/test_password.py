"""Passwords: every staff member changes their own; a password someone else chose (an admin's
one-time password, one typed at the command line) must be replaced at the first sign-in, is
good for one sign-in only and expires."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.admin.helpers import make_world
from tests.staffsupport import csrf_from, csrf_token, current_code, make_staff, sign_in
from tipline.accounts import services as accounts
from tipline.accounts.models import StaffUser
from tipline.admin import services as admin
from tipline.audit.models import AuditEvent
from tipline.crypto import Vault
from tipline.db import utcnow

NEW = "a brand new passphrase 42"
PASSWORD_PAGE = "/staff/account/password"


@pytest.fixture
def staff(db_session: Session, vault: Vault, demo_directory: dict[str, int]) -> Any:
    return make_staff(db_session, vault, "school_staff", ["slps-roosevelt"])


def _password_step(client: Any, email: str, password: str) -> Any:
    return client.post("/staff/login", data={"email": email, "password": password,
                                             "csrf_token": csrf_token(client)})


def _change(client: Any, current: str, new: str, confirm: str | None = None) -> Any:
    token = csrf_from(client.get(PASSWORD_PAGE).get_data(as_text=True))
    return client.post(PASSWORD_PAGE, data={"current": current, "new": new,
                                            "confirm": new if confirm is None else confirm,
                                            "csrf_token": token})


def _actions(session: Session, user_id: int) -> list[str]:
    return list(session.execute(select(AuditEvent.action).where(
        AuditEvent.object_id == str(user_id)).order_by(AuditEvent.id)).scalars())


# -- changing one's own password ---------------------------------------------------------

def test_staff_member_changes_their_password(client: Any, app: Any, staff: Any,
                                             db_session: Session) -> None:
    user, old, secret = staff
    sign_in(client, user.email, old, secret)
    laptop = app.test_client()
    sign_in(laptop, user.email, old, secret)
    header = client.get("/staff/").get_data(as_text=True)
    assert f'href="{PASSWORD_PAGE}"' in header.split("</header>")[0]
    resp = _change(client, old, NEW)
    assert resp.status_code == 303
    # this session goes on; every other one has ended
    assert client.get("/staff/").status_code == 200
    assert laptop.get("/staff/").status_code == 302
    db_session.expire_all()
    assert not accounts.verify_password(user.password_hash, old)
    other = app.test_client()
    assert _password_step(other, user.email, old).status_code == 401
    assert _password_step(other, user.email, NEW).status_code == 303
    assert "staff.password.change" in _actions(db_session, user.id)
    assert NEW not in str(db_session.execute(select(AuditEvent.detail)).scalars().all())


def test_change_needs_the_current_password_and_counts_failures(client: Any, staff: Any,
                                                               db_session: Session) -> None:
    user, old, secret = staff
    sign_in(client, user.email, old, secret)
    resp = _change(client, "not my password at all", NEW)
    assert resp.status_code == 400
    assert "current password" in resp.get_data(as_text=True)
    db_session.expire_all()
    assert accounts.verify_password(user.password_hash, old)
    assert user.failed_logins == 1


@pytest.mark.parametrize(("new", "confirm", "message"), [
    ("short pass", None, "at least 12 characters"),
    ("x" * 1001, None, "at most 1000 characters"),
    ("a brand new passphrase 42", "a brand new passphrase 43", "do not match"),
])
def test_new_password_rules(client: Any, staff: Any, db_session: Session, new: str,
                            confirm: str | None, message: str) -> None:
    user, old, secret = staff
    sign_in(client, user.email, old, secret)
    resp = _change(client, old, new, confirm)
    assert resp.status_code == 400
    assert message in resp.get_data(as_text=True)
    db_session.expire_all()
    assert accounts.verify_password(user.password_hash, old)


def test_new_password_must_differ_from_the_old(db_session: Session, staff: Any) -> None:
    user, old, _secret = staff
    with pytest.raises(accounts.AccountError, match="differ"):
        accounts.change_password(db_session, user, old, old, now=utcnow())


def test_change_needs_csrf_and_a_full_sign_in(client: Any, staff: Any,
                                              db_session: Session) -> None:
    user, old, secret = staff
    assert client.get(PASSWORD_PAGE).status_code == 302  # not signed in
    assert _password_step(client, user.email, old).status_code == 303  # password only
    assert client.get(PASSWORD_PAGE).status_code == 302
    sign_in(client, user.email, old, secret)
    resp = client.post(PASSWORD_PAGE, data={"current": old, "new": NEW, "confirm": NEW})
    assert resp.status_code == 400
    db_session.expire_all()
    assert accounts.verify_password(user.password_hash, old)


def test_a_paused_account_cannot_guess_the_current_password(db_session: Session,
                                                             staff: Any) -> None:
    """A session left open is not a way around the pause on password guesses."""
    user, old, _secret = staff
    now = utcnow()
    for _ in range(accounts.MAX_FAILED):
        with pytest.raises(accounts.AccountError):
            accounts.change_password(db_session, user, "wrong password guess", NEW, now=now)
    with pytest.raises(accounts.AccountError):
        accounts.change_password(db_session, user, old, NEW, now=now)
    assert accounts.verify_password(user.password_hash, old)


# -- a password someone else chose -------------------------------------------------------

def _created_by_admin(db_session: Session, vault: Vault) -> tuple[StaffUser, str]:
    w = make_world(db_session, vault)
    user, password = admin.add_user(db_session, vault, w.admin, admin.UserInput(
        email="new.staff@example.org", role="auditor"))
    db_session.commit()
    return user, password


def _first_sign_in(client: Any, db_session: Session, user: StaffUser, password: str) -> str:
    """Password, then enrolment; returns the TOTP secret."""
    assert _password_step(client, user.email, password).status_code == 303
    page = client.get("/staff/login/code").get_data(as_text=True)
    db_session.expire_all()
    secret = user.totp_secret
    assert secret
    resp = client.post("/staff/login/code", data={"code": current_code(secret),
                                                  "csrf_token": csrf_from(page)})
    assert resp.status_code == 303
    return secret


def test_first_sign_in_forces_a_new_password(client: Any, db_session: Session,
                                             vault: Vault) -> None:
    user, first = _created_by_admin(db_session, vault)
    assert user.must_change_password
    _first_sign_in(client, db_session, user, first)
    for path in ("/staff/", "/staff/account", "/staff/admin/audit", "/staff/admin/stats",
                 "/staff/tips/whatever", "/staff/login"):
        resp = client.get(path)
        assert resp.status_code in (302, 303), path
        assert resp.headers["Location"].endswith(PASSWORD_PAGE), path
    poll = client.get("/staff/?partial=1", headers={"X-Tipline-Poll": "1"})
    assert poll.status_code == 403 and poll.get_json()["password_change_required"] is True
    page = client.get(PASSWORD_PAGE)
    assert page.status_code == 200
    assert "choose your own password" in page.get_data(as_text=True).lower()
    resp = _change(client, first, NEW)
    assert resp.status_code == 303
    assert client.get("/staff/admin/audit").status_code == 200
    db_session.expire_all()
    assert user.must_change_password is False and user.password_expires_at is None


def test_a_one_time_password_signs_in_once(client: Any, app: Any, db_session: Session,
                                           vault: Vault) -> None:
    user, first = _created_by_admin(db_session, vault)
    secret = _first_sign_in(client, db_session, user, first)
    # the holder walks away without choosing a password; the one-time password is spent
    other = app.test_client()
    resp = _password_step(other, user.email, first)
    assert resp.status_code == 401
    assert "already been used" in resp.get_data(as_text=True)
    assert other.get("/staff/").status_code == 302
    # even someone who also has the authenticator cannot start a second session with it
    db_session.expire_all()
    with pytest.raises(accounts.SignInRefused):
        accounts.check_password(db_session, user.email, first, utcnow())
    assert secret


def test_a_one_time_password_expires(client: Any, db_session: Session, vault: Vault) -> None:
    user, first = _created_by_admin(db_session, vault)
    assert user.password_expires_at is not None
    left = user.password_expires_at - utcnow()
    assert accounts.ONE_TIME_VALID - timedelta(minutes=5) < left <= accounts.ONE_TIME_VALID
    user.password_expires_at = utcnow() - timedelta(seconds=1)
    db_session.commit()
    resp = _password_step(client, user.email, first)
    assert resp.status_code == 401
    assert "expired" in resp.get_data(as_text=True)


def test_an_expired_one_time_password_cannot_finish_a_started_sign_in(
        client: Any, db_session: Session, vault: Vault) -> None:
    user, first = _created_by_admin(db_session, vault)
    assert _password_step(client, user.email, first).status_code == 303
    page = client.get("/staff/login/code").get_data(as_text=True)
    db_session.expire_all()
    secret = user.totp_secret
    user.password_expires_at = utcnow() - timedelta(seconds=1)
    db_session.commit()
    resp = client.post("/staff/login/code", data={"code": current_code(secret),
                                                  "csrf_token": csrf_from(page)})
    assert resp.status_code == 401
    assert client.get("/staff/").status_code == 302


def test_the_first_password_page_passes_no_secret_back(client: Any, db_session: Session,
                                                       vault: Vault) -> None:
    user, first = _created_by_admin(db_session, vault)
    _first_sign_in(client, db_session, user, first)
    resp = _change(client, first, "short")
    assert resp.status_code == 400
    body = resp.get_data(as_text=True)
    assert first not in body and not re.search(r'value="short"', body)
