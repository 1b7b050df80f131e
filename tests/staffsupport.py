"""Staff accounts for tests: make one (TOTP already enrolled) and sign in the real way."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tipline.accounts import keys, totp
from tipline.accounts import services as accounts
from tipline.accounts.models import StaffUser
from tipline.crypto import Vault
from tipline.db import utcnow

DEFAULT_PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
_counter = {"n": 0}


def make_staff(
    session: Session,
    vault: Vault,
    role: str = "district_admin",
    schools: list[str] | None = None,
    *,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    district: str | None = None,
    contact: str | None = None,
    enrolled: bool = True,
    display_name: str = "",
    must_change: bool = False,
    access: bool = True,
) -> tuple[StaffUser, str, str]:
    """Create an account through the real service; returns (user, password, totp_secret).

    With ``enrolled=False`` the account has no TOTP yet (first sign-in enrols it) and the
    secret returned is "". The password is the holder's own unless ``must_change`` (then it
    is a one-time password, as an administrator hands out).
    """
    _counter["n"] += 1
    email = email or f"{role.replace('_', '-')}{_counter['n']}@staff.example.org"
    user = accounts.create_user(session, vault, email=email, password=password, role=role,
                                district_code=district, school_codes=schools,
                                contact_key=contact, display_name=display_name,
                                must_change=must_change)
    _passwords[email] = password
    if access:
        grant_like_a_colleague(session, user)
    secret = ""
    if enrolled:
        secret = accounts.start_enrolment(session, vault, user)
        user.totp_confirmed = True
    session.flush()
    return user, password, secret


_passwords: dict[str, str] = {}


def grant_like_a_colleague(session: Session, user: StaffUser) -> bool:
    """What a signed-in colleague does on /staff/access: a holder of the key this account
    waits for (made by ``make_staff``, so its password is known here) unlocks its personal
    key and grants. False when no such holder exists."""
    from sqlalchemy import select

    from tipline.crypto.models import KeyGrant

    if keys.has_access(session, user) or not keys.grantable_holder(user):
        return keys.has_access(session, user)  # no colleague grants a one-time password's key
    for read_key in keys.read_keys_for(session, user):
        holders = session.execute(select(KeyGrant).where(
            KeyGrant.read_key_id == read_key.id, KeyGrant.user_id.is_not(None))).scalars().all()
        for grant in holders:
            holder = session.get(StaffUser, grant.user_id)
            password = _passwords.get(holder.email) if holder else None
            if holder is None or password is None:
                continue
            personal = keys.unlock_personal_key(session, holder, password)
            if personal is None:
                continue
            keys.grant_access(session, keys.keychain_for(session, holder.id, personal), holder,
                              user)
            break
    return keys.has_access(session, user)


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def csrf_token(client: Any, path: str = "/staff/login") -> str:
    """A CSRF token for the client's session, read from a page that has a form."""
    return csrf_from(client.get(path).get_data(as_text=True))


def current_code(secret: str, now: datetime | None = None, ahead: int = 0) -> str:
    return totp.code_for_step(secret, totp.current_step(now or utcnow()) + ahead)


def sign_in(client: Any, email: str, password: str, totp_secret: str) -> Any:
    """The real password + TOTP flow through the pages; returns the final response.

    A code can be used once: if this account already signed in during the current 30-second
    step, the next step's code (inside the allowed drift) is used.
    """
    token = csrf_token(client, "/staff/login")
    resp = client.post("/staff/login", data={"email": email, "password": password,
                                             "csrf_token": token})
    assert resp.status_code == 303, f"password step refused ({resp.status_code})"
    page = client.get("/staff/login/code").get_data(as_text=True)
    token = csrf_from(page)
    for ahead in (0, 1):
        resp = client.post("/staff/login/code", data={
            "code": current_code(totp_secret, ahead=ahead), "csrf_token": token})
        if resp.status_code == 303:
            return resp
        token = csrf_from(resp.get_data(as_text=True))
    raise AssertionError(f"code step refused ({resp.status_code})")
