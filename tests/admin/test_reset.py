"""An administrator's reset of a staff account: a new one-time password shown once, the old
password and every session ended, the authenticator enrolled again only together with a
forced password change, audited, and the account holder told by email (no secret in it)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.admin.helpers import World, make_world
from tests.staffsupport import csrf_from, csrf_token, make_staff, sign_in
from tipline.accounts import notices
from tipline.accounts import services as accounts
from tipline.accounts.models import StaffUser
from tipline.admin import services as admin
from tipline.audit.models import AuditEvent
from tipline.crypto import Vault
from tipline.db import utcnow
from tipline.routing.models import OutboxMessage
from tipline.routing.senders import OutboxSender


@pytest.fixture
def world(db_session: Session, vault: Vault) -> World:
    w = make_world(db_session, vault)
    db_session.commit()
    return w


def _member(db_session: Session, vault: Vault, w: World) -> tuple[StaffUser, str, str]:
    user, password, secret = make_staff(db_session, vault, "school_staff",
                                        [w.schools[0].code], email="kim@staff.example.org")
    db_session.commit()
    return user, password, secret


def test_reset_issues_a_new_one_time_password_and_ends_the_old(db_session: Session,
                                                               vault: Vault,
                                                               world: World) -> None:
    user, old, _secret = _member(db_session, vault, world)
    version = user.session_version
    now = utcnow()
    reset = admin.reset_user_credentials(db_session, world.admin, user.id, now=now)
    assert reset.user is user
    assert len(reset.password) >= 12 and reset.password != old
    assert not accounts.verify_password(user.password_hash, old)
    assert accounts.verify_password(user.password_hash, reset.password)
    assert user.must_change_password is True
    assert user.password_expires_at == now + accounts.ONE_TIME_VALID
    assert user.session_version == version + 1
    assert user.totp_confirmed is False and user.totp_secret_ct is None
    event = db_session.execute(select(AuditEvent).where(
        AuditEvent.action == "admin.user.reset_credentials")).scalar_one()
    assert event.actor_user_id == world.admin.id and event.object_id == str(user.id)
    assert reset.password not in str(event.detail)
    # the notice: to the holder, names the admin, carries no secret
    assert reset.notice.recipient == user.email and reset.notice.channel == "email"
    assert world.admin.email in reset.notice.text
    assert reset.password not in reset.notice.text + reset.notice.subject
    with pytest.raises(accounts.SignInRefused):
        accounts.check_password(db_session, user.email, old, now)


def test_reset_is_only_inside_the_admins_district(db_session: Session, vault: Vault,
                                                  world: World) -> None:
    theirs, password, _s = make_staff(db_session, vault, "school_staff",
                                      [world.other_school.code])
    with pytest.raises(admin.NotFound):
        admin.reset_user_credentials(db_session, world.admin, theirs.id, now=utcnow())
    assert accounts.verify_password(theirs.password_hash, password)
    with pytest.raises(admin.AdminError, match="own account"):
        admin.reset_user_credentials(db_session, world.admin, world.admin.id, now=utcnow())
    staff, _p, _s = make_staff(db_session, vault, "school_staff", [world.schools[0].code])
    with pytest.raises(admin.AdminError):
        admin.reset_user_credentials(db_session, staff, world.admin.id, now=utcnow())


def test_old_first_password_cannot_enrol_after_a_totp_reset(client: Any, db_session: Session,
                                                            vault: Vault,
                                                            world: World) -> None:
    """The attack of the finding: whoever saw the first password waits for an authenticator
    reset and enrols their own. A reset now replaces the password too."""
    user, first = admin.add_user(db_session, vault, world.admin, admin.UserInput(
        email="lee@example.org", role="auditor"))
    db_session.commit()
    admin.reset_user_credentials(db_session, world.admin, user.id, now=utcnow())
    db_session.commit()
    resp = client.post("/staff/login", data={"email": user.email, "password": first,
                                             "csrf_token": csrf_token(client)})
    assert resp.status_code == 401
    assert client.get("/staff/login/code").status_code in (302, 303)


def test_reset_through_the_page(client: Any, app: Any, db_session: Session, vault: Vault,
                                world: World) -> None:
    user, old, secret = _member(db_session, vault, world)
    theirs = app.test_client()
    sign_in(theirs, user.email, old, secret)
    sign_in(client, world.admin.email, world.admin_password, world.admin_secret)
    page = client.get("/staff/admin/users").get_data(as_text=True)
    assert f"/staff/admin/users/{user.id}/reset" in page
    resp = client.post(f"/staff/admin/users/{user.id}/reset",
                       data={"csrf_token": csrf_from(page)})
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    password = re.search(r'id="one-time-password">([^<]+)<', body).group(1)
    assert "72 hours" in body
    # shown once: no later page and no cookie carries it
    assert password not in client.get("/staff/admin/users").get_data(as_text=True)
    assert theirs.get("/staff/").status_code == 302  # their session has ended
    db_session.expire_all()
    assert accounts.verify_password(user.password_hash, password)
    mails = db_session.execute(select(OutboxMessage).where(
        OutboxMessage.recipient == user.email)).scalars().all()
    assert len(mails) == 1
    assert "reset" in mails[0].body and world.admin.email in mails[0].body
    assert password not in mails[0].body
    assert client.post(f"/staff/admin/users/{user.id}/reset-totp",
                       data={"csrf_token": csrf_from(page)}).status_code == 404


def test_reset_drops_the_trust_of_every_browser(client: Any, db_session: Session,
                                                vault: Vault, world: World) -> None:
    """A browser that signed in before the reset is a new device again: the pause applies."""
    user, old, secret = _member(db_session, vault, world)
    sign_in(client, user.email, old, secret)
    reset = admin.reset_user_credentials(db_session, world.admin, user.id, now=utcnow())
    user.locked_until = utcnow() + accounts.LOCK_FOR
    db_session.commit()
    resp = client.post("/staff/login", data={"email": user.email, "password": reset.password,
                                             "csrf_token": csrf_token(client)})
    assert resp.status_code == 401


def test_notice_send_failure_does_not_undo_the_reset(db_session: Session, vault: Vault,
                                                     world: World) -> None:
    from tipline.routing.senders import TransientSendError

    class Down:
        name = "smtp"

        def send(self, session: Session, alert: Any) -> str:
            raise TransientSendError("smtp: ConnectionRefusedError")

    user, _old, _secret = _member(db_session, vault, world)
    reset = admin.reset_user_credentials(db_session, world.admin, user.id, now=utcnow())
    assert notices.deliver(db_session, Down(), reset.notice) is False
    assert notices.deliver(db_session, OutboxSender(), reset.notice) is True
    assert user.must_change_password is True
