"""A district admin acts only inside their district: the attack of security issue 10, item 5.

One police agency (the county police) serves two districts. The admin of the second district
tries to reach the first district's police-routed tips by creating or re-pointing contacts and
by linking a liaison account to the shared liaison contact. Every attempt is refused with a
clear message and changes nothing; the one thing they may do (a liaison contact and account of
their own) sees only what was sent to that contact.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import DistrictFactory, SchoolFactory, bind, make_tip
from tests.staffsupport import make_staff
from tipline.accounts.models import StaffUser
from tipline.admin import services as admin
from tipline.audit.models import AuditEvent
from tipline.crypto import Vault
from tipline.directory.models import Contact, District, PoliceAgency, School
from tipline.directory.validation import DirectoryError
from tipline.intake.services import AttachmentIn
from tipline.jobs import RecordingQueue
from tipline.routing.ack import acknowledge_tip
from tipline.routing.models import Dispatch, RoutingJob
from tipline.tips.models import Attachment, Category, Severity, Tip
from tipline.triage.scope import TipNotFound, get_tip_for, visible_tips
from tipline.triage.services import attachment_for, read_tip

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


@dataclass
class Two:
    north: District
    north_school: School
    north_counselor: Contact
    admin: StaffUser  # the north district's admin: the attacker
    shared: Contact  # stlco-liaison, now linked to schools of both districts
    weapon_tip: Tip  # a county (stlco-demo) weapon tip alerted to stlco-liaison


def _contact(session: Session, key: str) -> Contact:
    return session.execute(select(Contact).where(Contact.key == key)).scalar_one()


def _agency(session: Session, code: str) -> PoliceAgency:
    return session.execute(select(PoliceAgency).where(PoliceAgency.code == code)).scalar_one()


@pytest.fixture
def two(db_session: Session, vault: Vault, queue: RecordingQueue, demo_directory) -> Two:
    bind(db_session)
    north = DistrictFactory(code="stlco-north", name="North County Demo District")
    school = SchoolFactory(district=north, code="north-high", name="North High (demo)")
    counselor = Contact(key="north-counselor", district_id=north.id, name="N. Counselor",
                        role="counselor", sms_number="+13145550171", schools=[school])
    db_session.add(counselor)
    county = _agency(db_session, "stlco-pd")
    county.districts.append(north)  # the county police serve both districts
    shared = _contact(db_session, "stlco-liaison")
    shared.schools.append(school)
    receipt = make_tip(db_session, vault, queue, body="He has a gun in his locker",
                       school_code="cty-northview", category=Category.WEAPON,
                       severity=Severity.LIFE_SAFETY,
                       attachments=[AttachmentIn("image", "image/png", PNG)])
    db_session.add(Dispatch(job_id=receipt.job_id, tip_id=receipt.tip_id,
                            contact_id=shared.id, rule="cty-life-safety-violence",
                            channels=["voice", "sms"], status="active"))
    admin_user, _pw, _secret = make_staff(db_session, vault, "district_admin",
                                          district=north.code)
    db_session.commit()
    tip = db_session.get(Tip, receipt.tip_id)
    assert tip is not None
    return Two(north, school, counselor, admin_user, shared, tip)


def _snapshot(session: Session) -> tuple[object, ...]:
    contacts = session.execute(
        select(Contact.key, Contact.district_id, Contact.agency_id, Contact.name,
               Contact.sms_number, Contact.active).order_by(Contact.key)).all()
    users = session.execute(select(func.count(StaffUser.id))).scalar_one()
    return tuple(contacts), users


def _input(c: Contact, **changes: object) -> admin.ContactInput:
    values = dict(key=c.key, name=c.name, role=c.role, sms=c.sms_number, voice=c.voice_number,
                  email=c.email, priority=c.priority, active=c.active,
                  school_ids=tuple(s.id for s in c.schools),
                  agency_code=c.agency.code if c.agency else None)
    return admin.ContactInput(**(values | changes))  # type: ignore[arg-type]


def test_a_contact_under_an_agency_that_does_not_serve_the_district_is_refused(
        db_session: Session, two: Two) -> None:
    before = _snapshot(db_session)
    with pytest.raises(DirectoryError, match="police agency 'slpd' does not serve"):
        admin.save_contact(db_session, two.admin, admin.ContactInput(
            key="north-slpd", name="Fake SLPD desk", role="police_liaison",
            sms="+13145550172", agency_code="slpd"))
    db_session.rollback()
    assert _snapshot(db_session) == before


def test_re_pointing_an_own_contact_to_a_foreign_agency_is_refused(
        db_session: Session, two: Two) -> None:
    before = _snapshot(db_session)
    with pytest.raises(DirectoryError, match="police agency 'slpd' does not serve"):
        admin.save_contact(db_session, two.admin, _input(two.north_counselor,
                                                         agency_code="slpd"),
                           two.north_counselor.id)
    db_session.rollback()
    assert _snapshot(db_session) == before


@pytest.mark.parametrize("change", [
    {"agency_code": None}, {"sms": "+13145550199"}, {"name": "Mine now"}])
def test_a_contact_shared_with_another_district_is_read_only(
        db_session: Session, two: Two, change: dict[str, object]) -> None:
    """The county liaison is linked to a school of the admin's district, so it is listed, but
    changing its agency, number or name would change another district's alerts."""
    assert two.shared.id in {c.id for c in admin.list_contacts(db_session, two.north.id)}
    before = _snapshot(db_session)
    with pytest.raises(DirectoryError, match="shared with another district"):
        admin.save_contact(db_session, two.admin, _input(
            two.shared, school_ids=(two.north_school.id,), **change), two.shared.id)
    with pytest.raises(DirectoryError, match="shared with another district"):
        admin.set_contact_active(db_session, two.admin, two.shared.id, False)
    db_session.rollback()
    assert _snapshot(db_session) == before


def test_a_liaison_account_on_a_contact_outside_the_district_is_refused(
        db_session: Session, vault: Vault, two: Two) -> None:
    before = _snapshot(db_session)
    with pytest.raises(admin.AdminError, match="shared with another district"):
        admin.add_user(db_session, vault, two.admin, admin.UserInput(
            email="fake.liaison@example.org", role="police_liaison",
            contact_id=two.shared.id))
    slpd = _contact(db_session, "slpd-liaison")  # no district, no school of theirs
    with pytest.raises(admin.NotFound):
        admin.add_user(db_session, vault, two.admin, admin.UserInput(
            email="fake.liaison2@example.org", role="police_liaison", contact_id=slpd.id))
    db_session.rollback()
    assert _snapshot(db_session) == before


def test_an_own_liaison_sees_only_what_was_sent_to_their_own_contact(
        db_session: Session, vault: Vault, two: Two) -> None:
    """What the admin may do (a contact of an agency that serves them, an account on it) does
    not open the other district's tip sent to a colleague contact of the same agency: not the
    queue, the tip page, its attachment, nor the acknowledge button."""
    mine = admin.save_contact(db_session, two.admin, admin.ContactInput(
        key="north-liaison", name="North liaison", role="police_liaison",
        sms="+13145550173", school_ids=(two.north_school.id,), agency_code="stlco-pd"))
    assert mine.agency is not None and mine.agency.code == "stlco-pd"
    user, _password = admin.add_user(db_session, vault, two.admin, admin.UserInput(
        email="north.liaison@example.org", role="police_liaison", contact_id=mine.id))
    db_session.commit()
    tip = two.weapon_tip
    assert tip.id not in {t.id for t in db_session.execute(visible_tips(db_session, user))
                          .scalars()}
    with pytest.raises(TipNotFound):
        get_tip_for(db_session, user, tip.uid)
    with pytest.raises(TipNotFound):
        read_tip(db_session, user, tip.uid, tip.created_at)
    att = db_session.execute(select(Attachment).where(Attachment.tip_id == tip.id)
                             ).scalar_one()
    with pytest.raises(TipNotFound):
        attachment_for(db_session, user, tip.uid, att.uid)
    assert acknowledge_tip(db_session, tip.id, user_id=user.id, now=tip.created_at) == 0
    db_session.commit()
    d = db_session.execute(select(Dispatch).where(Dispatch.tip_id == tip.id)).scalar_one()
    db_session.refresh(d)
    db_session.refresh(tip)
    assert d.status == "active" and tip.acknowledged_at is None
    assert not db_session.execute(select(AuditEvent).where(
        AuditEvent.tip_id == tip.id, AuditEvent.actor_user_id == user.id)).first()
    assert db_session.execute(select(func.count(RoutingJob.id)).where(
        RoutingJob.tip_id == tip.id)).scalar_one() == 1


def test_the_agency_choices_are_those_that_serve_the_district(
        db_session: Session, two: Two) -> None:
    assert [a.code for a in admin.list_agencies(db_session, two.north.id)] == ["stlco-pd"]
    slps = db_session.execute(select(District).where(District.code == "slps")).scalar_one()
    assert [a.code for a in admin.list_agencies(db_session, slps.id)] == ["slpd"]


# -- the same boundaries through the pages --------------------------------------------------

def test_the_pages_offer_and_accept_only_the_districts_own(
        client, db_session: Session, vault: Vault, two: Two) -> None:
    from tests.staffsupport import csrf_from, sign_in

    user, password, secret = make_staff(db_session, vault, "district_admin",
                                        district=two.north.code)
    db_session.commit()
    sign_in(client, user.email, password, secret)
    before = _snapshot(db_session)
    page = client.get("/staff/admin/contacts/new").get_data(as_text=True)
    assert 'value="stlco-pd"' in page and 'value="slpd"' not in page
    resp = client.post("/staff/admin/contacts/new", data={
        "csrf_token": csrf_from(page), "key": "north-slpd", "name": "Fake", "role":
        "police_liaison", "sms": "+13145550172", "priority": "100", "agency": "slpd"})
    assert resp.status_code == 400
    path = f"/staff/admin/contacts/{two.shared.id}"
    page = client.get(path).get_data(as_text=True)
    assert "shared with another district" in page and "Save contact" not in page
    resp = client.post(path, data={
        "csrf_token": csrf_from(page), "key": "stlco-liaison", "name": "Mine now",
        "role": "police_liaison", "sms": "+13145550199", "priority": "100",
        "agency": "stlco-pd"})
    assert resp.status_code == 400 and "shared with another district" in resp.get_data(
        as_text=True)
    listing = client.get("/staff/admin/contacts").get_data(as_text=True)
    assert "shared, read-only" in listing
    resp = client.post(f"{path}/active", data={"csrf_token": csrf_from(listing), "active": "0"})
    assert resp.status_code == 303
    page = client.get("/staff/admin/users/new").get_data(as_text=True)
    assert f'value="{two.shared.id}"' not in page
    resp = client.post("/staff/admin/users/new", data={
        "csrf_token": csrf_from(page), "email": "fake.liaison@example.org",
        "role": "police_liaison", "contact": str(two.shared.id)})
    assert resp.status_code == 400
    db_session.expire_all()
    assert _snapshot(db_session) == before


def test_a_contact_keeps_an_agency_it_already_has(db_session: Session, two: Two) -> None:
    """An agency set by the directory file before the tie existed stays on re-save; it cannot
    be chosen for another contact."""
    two.north_counselor.agency = _agency(db_session, "slpd")
    db_session.flush()
    saved = admin.save_contact(db_session, two.admin, _input(two.north_counselor,
                                                             name="Renamed"),
                               two.north_counselor.id)
    assert saved.agency is not None and saved.agency.code == "slpd"
    with pytest.raises(DirectoryError, match="police agency 'slpd' does not serve"):
        admin.save_contact(db_session, two.admin, admin.ContactInput(
            key="north-other", name="Other", role="counselor", agency_code="slpd"))
