"""Staff keys (issue 13): sign-in unlocks, sign-out and idle expiry lock, password change keeps
access, reset waits for a colleague's grant, removal revokes, cross-district stays shut."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from tests.factories import make_tip
from tests.staffsupport import DEFAULT_PASSWORD, csrf_token, make_staff, sign_in
from tipline.accounts import keys
from tipline.accounts import services as accounts
from tipline.accounts.seal_existing import seal_existing
from tipline.accounts.web import SEEN_KEY
from tipline.admin import services as admin
from tipline.crypto import SEALED_ONLY, KeyUnavailable, Vault, using
from tipline.crypto.models import KeyGrant, KeySession, ReadKey, StaffKey
from tipline.db import utcnow
from tipline.jobs import RecordingQueue
from tipline.tips.models import Tip

SECRET_TEXT = "the blue locker by the gym has a gun in it"


class _Sessions:
    """``seal_existing`` takes a session factory; in tests every batch uses the test session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def __call__(self) -> Any:
        from contextlib import contextmanager

        @contextmanager
        def cm() -> Any:
            yield self.session
            self.session.flush()

        return cm()


def _sealed_tip(db_session: Session, vault: Vault, queue: RecordingQueue,
                school: str = "slps-roosevelt") -> Tip:
    """A tip whose data key is sealed to its district's key only (via seal-existing)."""
    receipt = make_tip(db_session, vault, queue, body=SECRET_TEXT, school_code=school)
    tip = db_session.execute(select(Tip).where(Tip.reference == receipt.reference)).scalar_one()
    if tip.data_key is not None and tip.data_key.kek_id != SEALED_ONLY:
        db_session.commit = db_session.flush  # type: ignore[method-assign]
        seal_existing(_Sessions(db_session), vault, batch=50)
        db_session.expire_all()
    assert tip.data_key is not None and tip.data_key.kek_id == SEALED_ONLY
    return tip


def _body(tip: Tip) -> str:
    return tip.messages[0].body


def _chain(session: Session, user: Any, password: str = DEFAULT_PASSWORD) -> Any:
    personal = keys.unlock_personal_key(session, user, password)
    assert personal is not None
    return keys.keychain_for(session, user.id, personal)


def test_first_reader_creates_the_district_key_others_wait(db_session, vault, demo_directory):
    admin_user, _, _ = make_staff(db_session, vault, "district_admin", district="slps")
    key = db_session.execute(select(ReadKey)).scalar_one()
    assert key.rid.startswith("district:") and key.owner_id == admin_user.district_id
    assert db_session.get(StaffKey, admin_user.id) or keys.staff_key(db_session, admin_user)
    staff, _, _ = make_staff(db_session, vault, "school_staff", schools=["slps-roosevelt"],
                             access=False)
    assert keys.waiting_for_access(db_session, staff.district_id) == [staff]
    keys.grant_access(db_session, _chain(db_session, admin_user), admin_user, staff)
    assert keys.waiting_for_access(db_session, staff.district_id) == []
    auditor, _, _ = make_staff(db_session, vault, "auditor", district="slps")
    assert keys.read_keys_for(db_session, auditor) == []  # an auditor reads no tip


def test_nothing_on_the_server_opens_a_sealed_tip(db_session, vault, queue, demo_directory):
    user, _, _ = make_staff(db_session, vault, "district_admin", district="slps")
    tip = _sealed_tip(db_session, vault, queue)
    with pytest.raises(KeyUnavailable):
        _body(tip)
    with using(_chain(db_session, user)):
        assert _body(tip) == SECRET_TEXT
    with using(_chain(db_session, user)):
        db_session.expire_all()
        assert tip.messages[0].body == SECRET_TEXT


def test_cross_district_keys_do_not_open(db_session, vault, queue, demo_directory):
    make_staff(db_session, vault, "district_admin", district="slps")
    county, _, _ = make_staff(db_session, vault, "district_admin", district="stlco-demo")
    tip = _sealed_tip(db_session, vault, queue)
    chain = _chain(db_session, county)
    assert len(chain) == 2  # personal key + the county district key
    with using(chain), pytest.raises(KeyUnavailable):
        _body(tip)
    # Even the county key relabelled as the SLPS key id opens nothing.
    slps_rid = db_session.execute(select(ReadKey).where(
        ReadKey.owner_id == tip.district_id)).scalar_one().rid
    county_private = next(chain.get(r) for r in chain.rids() if r.startswith("district:"))
    chain.add(slps_rid, county_private)
    with using(chain), pytest.raises(KeyUnavailable):
        _body(tip)


def test_password_change_keeps_access(db_session, vault, queue, demo_directory):
    user, _, _ = make_staff(db_session, vault, "district_admin", district="slps")
    tip = _sealed_tip(db_session, vault, queue)
    new = "a brand new passphrase 42"
    accounts.change_password(db_session, user, DEFAULT_PASSWORD, new, now=utcnow())
    assert keys.unlock_personal_key(db_session, user, DEFAULT_PASSWORD) is None
    with using(_chain(db_session, user, new)):
        assert _body(tip) == SECRET_TEXT


def test_first_password_replaces_the_key_pair_and_keeps_grants(db_session, vault, queue,
                                                               demo_directory):
    user, one_time, _ = make_staff(db_session, vault, "district_admin", district="slps",
                                   must_change=True)
    tip = _sealed_tip(db_session, vault, queue)
    before = bytes(keys.staff_key(db_session, user).public_key)
    accounts.change_password(db_session, user, one_time, "my own passphrase 123", now=utcnow())
    assert bytes(keys.staff_key(db_session, user).public_key) != before
    with using(_chain(db_session, user, "my own passphrase 123")):
        assert _body(tip) == SECRET_TEXT


def test_reset_drops_the_key_until_a_colleague_grants(db_session, vault, queue, demo_directory):
    first, _, _ = make_staff(db_session, vault, "district_admin", district="slps")
    other, _, _ = make_staff(db_session, vault, "district_admin", district="slps")
    tip = _sealed_tip(db_session, vault, queue)
    reset = admin.reset_user_credentials(db_session, first, other.id, now=utcnow())
    assert keys.staff_key(db_session, other) is None
    assert db_session.execute(select(func.count(KeyGrant.id)).where(
        KeyGrant.user_id == other.id)).scalar_one() == 0
    # The next sign-in (password step) makes a new key; the account waits for access.
    personal = keys.unlock_or_create(db_session, other, reset.password)
    with using(keys.keychain_for(db_session, other.id, personal)), pytest.raises(KeyUnavailable):
        _body(tip)
    # Granted once its holder has replaced the one-time password (a new key pair).
    assert other not in keys.waiting_for_access(db_session, other.district_id)
    accounts.change_password(db_session, other, reset.password, "my own passphrase 789",
                             now=utcnow())
    assert other in keys.waiting_for_access(db_session, other.district_id)
    keys.grant_access(db_session, _chain(db_session, first), first, other)
    with using(_chain(db_session, other, "my own passphrase 789")):
        assert _body(tip) == SECRET_TEXT


def test_deactivated_user_loses_grants(db_session, vault, demo_directory):
    first, _, _ = make_staff(db_session, vault, "district_admin", district="slps")
    other, _, _ = make_staff(db_session, vault, "school_staff", schools=["slps-roosevelt"])
    assert keys.has_access(db_session, other)
    admin.deactivate_user(db_session, first, other.id)
    assert not keys.has_access(db_session, other)
    assert keys.keychain_for(db_session, other.id, keys.unlock_personal_key(
        db_session, other, DEFAULT_PASSWORD)).rids() == [f"user:{other.id}"]


# -- through the pages --------------------------------------------------------------------

def _tip_page(client: Any, tip: Tip) -> Any:
    return client.get(f"/staff/tips/{tip.uid}")


def test_sign_in_unlocks_and_sign_out_locks(app, client, db_session, vault, queue,
                                            demo_directory):
    user, password, secret = make_staff(db_session, vault, "district_admin", district="slps")
    tip = _sealed_tip(db_session, vault, queue)
    db_session.commit()
    sign_in(client, user.email, password, secret)
    rows = db_session.execute(select(KeySession).where(KeySession.user_id == user.id)).scalars()
    row = next(iter(rows))
    assert not row.pending
    with client.session_transaction() as s:
        cookie_keys = dict(s["staff_keys"])
    # The server-side half is ciphertext: the personal key is not in it in clear.
    personal = keys.unlock_personal_key(db_session, user, password)
    from tipline.crypto.sealing import private_bytes
    assert private_bytes(personal) not in bytes(row.ct)
    resp = _tip_page(client, tip)
    assert resp.status_code == 200
    assert SECRET_TEXT in resp.get_data(as_text=True)
    client.post("/staff/logout", data={"csrf_token": csrf_token(client, "/staff/account")})
    db_session.expire_all()
    assert db_session.execute(select(func.count(KeySession.id)).where(
        KeySession.user_id == user.id)).scalar_one() == 0
    # A copy of the old cookie's key half opens nothing any more: the row is gone.
    handle = keys.SessionKeys.from_cookie(cookie_keys)
    assert handle is not None
    assert keys.session_personal_key(db_session, handle, user.id, utcnow()) is None


def test_idle_expiry_deletes_the_session_keys(app, client, db_session, vault, queue,
                                              demo_directory):
    user, password, secret = make_staff(db_session, vault, "district_admin", district="slps")
    db_session.commit()
    sign_in(client, user.email, password, secret)
    with client.session_transaction() as s:
        s[SEEN_KEY] = time.time() - 10 * 3600
    resp = client.get("/staff/account")
    assert resp.status_code in (302, 303)
    db_session.expire_all()
    assert db_session.execute(select(func.count(KeySession.id)).where(
        KeySession.user_id == user.id)).scalar_one() == 0


def test_grant_page_lists_and_grants(app, client, db_session, vault, queue, demo_directory):
    first, password, secret = make_staff(db_session, vault, "district_admin", district="slps")
    newcomer, _, _ = make_staff(db_session, vault, "school_staff", schools=["slps-roosevelt"],
                                access=False)
    county, _, _ = make_staff(db_session, vault, "district_admin", district="stlco-demo",
                              access=False)
    db_session.commit()
    sign_in(client, first.email, password, secret)
    page = client.get("/staff/access").get_data(as_text=True)
    assert newcomer.email in page and county.email not in page
    token = csrf_token(client, "/staff/access")
    # Another district's account: not found, nothing granted.
    assert client.post(f"/staff/access/{county.id}/grant",
                       data={"csrf_token": token}).status_code == 404
    resp = client.post(f"/staff/access/{newcomer.id}/grant", data={"csrf_token": token})
    assert resp.status_code == 303
    db_session.expire_all()
    assert keys.has_access(db_session, newcomer)
    from tipline.audit.models import AuditEvent
    assert db_session.execute(select(func.count(AuditEvent.id)).where(
        AuditEvent.action == "staff.access.grant")).scalar_one() == 1


def test_a_liaison_grants_a_colleague_of_the_same_agency(db_session, vault, demo_directory):
    from tipline.directory.models import Contact, PoliceAgency

    first, _, _ = make_staff(db_session, vault, "police_liaison", contact="stlco-liaison")
    agency = db_session.execute(select(PoliceAgency).where(PoliceAgency.code == "stlco-pd")
                                ).scalar_one()
    db_session.add(Contact(key="stlco-liaison-2", name="colleague", role="police_liaison",
                           agency=agency, sms_number="+13145550161"))
    db_session.flush()
    second, _, _ = make_staff(db_session, vault, "police_liaison", contact="stlco-liaison-2",
                              access=False)
    slps_admin, _, _ = make_staff(db_session, vault, "district_admin", district="slps")
    assert keys.waiting_for(db_session, first) == [second]
    assert second not in keys.waiting_for(db_session, slps_admin)
    keys.grant_access(db_session, _chain(db_session, first), first, second)
    assert keys.has_access(db_session, second)
    assert [r.rid.split(":")[0] for r in keys.read_keys_for(db_session, second)] == ["agency"]


def test_through_the_pages_a_first_password_and_a_change_keep_the_tip_readable(
        app, client, db_session, vault, queue, demo_directory):
    from tests.staffsupport import csrf_from

    user, one_time, secret = make_staff(db_session, vault, "district_admin", district="slps",
                                        must_change=True)
    tip = _sealed_tip(db_session, vault, queue)
    db_session.commit()
    sign_in(client, user.email, one_time, secret)

    def change(current: str, new: str) -> Any:
        token = csrf_from(client.get("/staff/account/password").get_data(as_text=True))
        return client.post("/staff/account/password", data={
            "current": current, "new": new, "confirm": new, "csrf_token": token})

    assert change(one_time, "my very own passphrase 1").status_code == 303
    assert SECRET_TEXT in _tip_page(client, tip).get_data(as_text=True)
    assert change("my very own passphrase 1", "my very own passphrase 2").status_code == 303
    assert SECRET_TEXT in _tip_page(client, tip).get_data(as_text=True)
    db_session.expire_all()
    # one key session: the ones before each change were deleted
    assert db_session.execute(select(func.count(KeySession.id)).where(
        KeySession.user_id == user.id)).scalar_one() == 1


def test_an_account_on_a_one_time_password_cannot_be_granted(db_session, vault, queue,
                                                            demo_directory):
    """Whoever handed out the one-time password knows what wraps the account's key until its
    holder chooses their own: a grant sealed to that key would give them the district key (a
    database copy from before the change and the one-time password open it)."""
    first, _, _ = make_staff(db_session, vault, "district_admin", district="slps")
    other, _, _ = make_staff(db_session, vault, "district_admin", district="slps")
    reset = admin.reset_user_credentials(db_session, first, other.id, now=utcnow())
    keys.unlock_or_create(db_session, other, reset.password)  # the next sign-in's password step
    assert other not in keys.waiting_for_access(db_session, other.district_id)
    with pytest.raises(keys.KeyAccessError):
        keys.grant_access(db_session, _chain(db_session, first), first, other)
    assert db_session.execute(select(func.count(KeyGrant.id)).where(
        KeyGrant.user_id == other.id)).scalar_one() == 0
    newcomer, one_time, _ = make_staff(db_session, vault, "school_staff",
                                       schools=["slps-roosevelt"], must_change=True,
                                       access=False)
    assert newcomer not in keys.waiting_for_access(db_session, newcomer.district_id)
    with pytest.raises(keys.KeyAccessError):
        keys.grant_access(db_session, _chain(db_session, first), first, newcomer)
    # Once its holder has chosen a password, it waits for access and can be granted.
    accounts.change_password(db_session, newcomer, one_time, "my own passphrase 456",
                             now=utcnow())
    assert newcomer in keys.waiting_for_access(db_session, newcomer.district_id)
    keys.grant_access(db_session, _chain(db_session, first), first, newcomer)
    assert keys.has_access(db_session, newcomer)


def test_district_init_seals_to_no_key_under_a_one_time_password(db_session, vault,
                                                                 demo_directory):
    own, _, _ = make_staff(db_session, vault, "district_admin", district="stlco-demo",
                           access=False)
    db_session.execute(delete(KeyGrant))
    db_session.execute(delete(ReadKey))
    fresh, _, _ = make_staff(db_session, vault, "district_admin", district="stlco-demo",
                             must_change=True, access=False)
    holders = [u.id for u, _r in keys.district_readers_with_keys(db_session, own.district_id)]
    assert own.id in holders and fresh.id not in holders
