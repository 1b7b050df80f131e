from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.admin.helpers import make_world
from tests.staffsupport import make_staff
from tipline.accounts import services as accounts
from tipline.admin import services as admin
from tipline.audit.models import AuditEvent
from tipline.db import utcnow
from tipline.directory.loader import DirectoryError, load_directory
from tipline.directory.models import Contact


def _actions(session) -> list[str]:
    return list(session.execute(select(AuditEvent.action).order_by(AuditEvent.id)).scalars())


def test_school_add_edit_deactivate_is_audited(db_session, vault) -> None:
    w = make_world(db_session, vault)
    school = admin.save_school(db_session, w.admin, admin.SchoolInput("new-high", "New High"))
    assert school.district_id == w.district.id
    admin.save_school(db_session, w.admin, admin.SchoolInput("new-high", "New High School",
                                                             "NHS"), school.id)
    admin.set_school_active(db_session, w.admin, school.id, False)
    assert (school.name, school.aliases, school.active) == ("New High School", "NHS", False)
    acts = _actions(db_session)
    assert acts[-3:] == ["admin.school.create", "admin.school.update", "admin.school.deactivate"]
    last_update = db_session.execute(select(AuditEvent).where(
        AuditEvent.action == "admin.school.update")).scalar_one()
    assert sorted(last_update.detail["fields"]) == ["aliases", "name"]


def test_school_of_another_district_is_not_found(db_session, vault) -> None:
    w = make_world(db_session, vault)
    with pytest.raises(admin.NotFound):
        admin.save_school(db_session, w.admin, admin.SchoolInput("x", "X"), w.other_school.id)
    with pytest.raises(DirectoryError, match="already exists"):
        admin.save_school(db_session, w.admin,
                          admin.SchoolInput(w.other_school.code, "Copy"))
    with pytest.raises(DirectoryError, match="code must be"):
        admin.save_school(db_session, w.admin, admin.SchoolInput("Bad Code!", "X"))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("sms", "3145550101", "sms must be E.164"),
    ("voice", "+0145550101", "voice must be E.164"),
    ("email", "not-an-address", "email is not a valid address"),
    ("role", "janitor", "unknown role"),
    ("name", "  ", "name is required"),
])
def test_contact_fields_use_the_directory_rules(db_session, vault, field, value,
                                                message) -> None:
    w = make_world(db_session, vault)
    values = {"key": "k-new", "name": "Kim", "role": "counselor", "sms": "+13145550177"}
    values[field] = value
    with pytest.raises(DirectoryError, match=message):
        admin.save_contact(db_session, w.admin, admin.ContactInput(**values))
    # The file loader refuses exactly the same entry.
    entry = {"key": "k-new", "name": "Kim", "role": "counselor", "sms": "+13145550177",
             field: value}
    if field != "name":
        with pytest.raises(DirectoryError, match=message):
            load_directory(db_session, {"contacts": [entry]})


def test_contact_edit_and_a_contact_shared_with_another_district(db_session, vault) -> None:
    w = make_world(db_session, vault)
    data = admin.ContactInput(key=w.contact.key, name="Dana <b>", role="safety_team",
                              sms="+13145550188", email="dana@example.org",
                              school_ids=(w.schools[1].id,), agency_code=None)
    c = admin.save_contact(db_session, w.admin, data, w.contact.id)
    assert {s.id for s in c.schools} == {w.schools[1].id}
    assert (c.name, c.role, c.sms_number, c.email) == ("Dana <b>", "safety_team",
                                                       "+13145550188", "dana@example.org")
    assert "admin.contact.update" in _actions(db_session)
    with pytest.raises(admin.NotFound):
        admin.save_contact(db_session, w.admin, data, w.other_contact.id)
    with pytest.raises(DirectoryError, match="unknown school"):
        admin.save_contact(db_session, w.admin, admin.ContactInput(
            key="k2", name="K", role="counselor", school_ids=(w.other_school.id,)))
    # Once it also serves another district's school it is listed, but no longer theirs to
    # change: its number and name reach the other district's alerts too.
    c.schools.append(w.other_school)
    db_session.flush()
    assert c.id in {x.id for x in admin.list_contacts(db_session, w.district.id)}
    with pytest.raises(DirectoryError, match="shared with another district"):
        admin.save_contact(db_session, w.admin, data, c.id)
    assert c.sms_number == "+13145550188"


def test_contact_list_is_the_districts_own(db_session, vault) -> None:
    w = make_world(db_session, vault)
    ids = {c.id for c in admin.list_contacts(db_session, w.district.id)}
    assert w.contact.id in ids and w.other_contact.id not in ids
    admin.set_contact_active(db_session, w.admin, w.contact.id, False)
    assert db_session.get(Contact, w.contact.id).active is False
    assert _actions(db_session)[-1] == "admin.contact.deactivate"


def test_only_a_district_admin_may_change(db_session, vault) -> None:
    w = make_world(db_session, vault)
    auditor, _p, _s = make_staff(db_session, vault, "auditor", district=w.district.code)
    staff, _p, _s = make_staff(db_session, vault, "school_staff", [w.schools[0].code])
    for who in (auditor, staff):
        with pytest.raises(admin.AdminError):
            admin.save_school(db_session, who, admin.SchoolInput("zz", "Z"))


def test_users_add_deactivate_reset_sign_out(db_session, vault) -> None:
    w = make_world(db_session, vault)
    user, password = admin.add_user(db_session, vault, w.admin, admin.UserInput(
        email="New.Person@Example.org", role="school_staff", school_ids=(w.schools[0].id,)))
    assert user.email == "new.person@example.org"
    assert user.district_id == w.district.id and [s.id for s in user.schools] == [
        w.schools[0].id]
    assert accounts.verify_password(user.password_hash, password) and len(password) >= 12
    assert password not in str(db_session.execute(select(AuditEvent.detail)).all())
    user.totp_confirmed = True
    version = user.session_version
    admin.sign_out_user(db_session, w.admin, user.id)
    assert user.session_version == version + 1
    admin.reset_user_credentials(db_session, w.admin, user.id, now=utcnow())
    assert user.totp_confirmed is False and user.totp_secret_ct is None
    admin.deactivate_user(db_session, w.admin, user.id)
    assert user.active is False and user.session_version == version + 3
    assert _actions(db_session)[-4:] == [
        "admin.user.create", "admin.user.sign_out_everywhere", "admin.user.reset_credentials",
        "admin.user.deactivate"]
    with pytest.raises(admin.AdminError, match="own account"):
        admin.deactivate_user(db_session, w.admin, w.admin.id)


def test_users_of_another_district_are_not_found(db_session, vault) -> None:
    w = make_world(db_session, vault)
    theirs, _p, _s = make_staff(db_session, vault, "school_staff", [w.other_school.code])
    with pytest.raises(admin.NotFound):
        admin.deactivate_user(db_session, w.admin, theirs.id)
    with pytest.raises(admin.AdminError, match="unknown school"):
        admin.add_user(db_session, vault, w.admin, admin.UserInput(
            email="x@example.org", role="school_staff", school_ids=(w.other_school.id,)))
    with pytest.raises(admin.NotFound):
        admin.add_user(db_session, vault, w.admin, admin.UserInput(
            email="y@example.org", role="police_liaison", contact_id=w.other_contact.id))
    with pytest.raises(admin.AdminError, match="at least one"):
        admin.add_user(db_session, vault, w.admin, admin.UserInput(
            email="z@example.org", role="school_staff"))
    assert theirs.active


def test_audit_page_shows_reference_not_content(db_session, vault, queue) -> None:
    from tests.factories import make_tip

    w = make_world(db_session, vault)
    receipt = make_tip(db_session, vault, queue, body="secret words about a locker",
                       school_code=w.schools[0].code)
    from tipline.audit.services import record

    record(db_session, "tip.view", actor=f"user:{w.admin.id}", actor_user_id=w.admin.id,
           tip_id=receipt.tip_id)
    page = admin.audit_page(db_session, w.district.id, per_page=2)
    top = page.rows[0]
    assert (top.action, top.tip_reference, top.actor_email) == (
        "tip.view", receipt.reference, w.admin.email)
    assert page.total == db_session.execute(select(func.count(AuditEvent.id))).scalar_one()
    assert page.pages == -(-page.total // 2)
    assert "secret words" not in repr(page)
    only = admin.audit_page(db_session, w.district.id, action="tip.")
    assert {r.action[:4] for r in only.rows} == {"tip."}


def test_verify_log_agrees_with_the_audit_package(db_session) -> None:
    from sqlalchemy import text

    from tipline.audit.services import record, verify_chain

    first = record(db_session, "a", actor="cli", detail={"k": [1, "two"]})
    victim = record(db_session, "b", actor="user:1", actor_user_id=1, tip_id=5)
    gone = record(db_session, "c", actor="cli")
    record(db_session, "d", actor="cli")
    db_session.flush()
    assert admin.verify_log(db_session, batch=2).report == verify_chain(db_session)
    assert admin.verify_log(db_session).report.ok
    db_session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    db_session.execute(text("DELETE FROM audit_events WHERE id = :i"), {"i": gone.id})
    db_session.expire_all()
    report = admin.verify_log(db_session, batch=2).report
    assert report == verify_chain(db_session) and report.reason == "previous hash does not match"
    db_session.execute(text("UPDATE audit_events SET tip_id = 6 WHERE id = :i"), {"i": victim.id})
    db_session.expire_all()
    report = admin.verify_log(db_session).report
    assert (report.ok, report.first_bad_id) == (False, victim.id)
    assert report == verify_chain(db_session) and first.id < victim.id


def test_a_page_view_checks_the_newest_entries(db_session) -> None:
    from sqlalchemy import text

    from tipline.audit.services import record

    events = [record(db_session, "e", actor="cli", detail={"n": n}) for n in range(6)]
    db_session.flush()
    check = admin.verify_log(db_session, window=3)
    assert (check.full, check.first_id, check.report.checked) == (False, events[3].id, 3)
    assert check.total >= 6 and check.report.ok
    db_session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    for victim in (events[4], events[1]):
        db_session.execute(text("""UPDATE audit_events SET detail = '{"n": 99}' WHERE id = :i"""),
                           {"i": victim.id})
    db_session.expire_all()
    recent = admin.verify_log(db_session, window=3).report
    assert (recent.ok, recent.first_bad_id) == (False, events[4].id)
    whole = admin.verify_log(db_session).report
    assert (whole.ok, whole.first_bad_id) == (False, events[1].id)
    assert admin.verify_log(db_session, window=100).full


# -- directory edits may not break the active routing policy -------------------------------

DEMO_POLICY = __import__("pathlib").Path(__file__).resolve().parents[2] / "config" \
    / "policy.demo.yaml"


@pytest.fixture
def slps_admin(db_session, vault, demo_directory):
    from tipline.routing.policy import load_policy_file

    load_policy_file(db_session, DEMO_POLICY, loaded_by="test")
    admin_user, _pw, _secret = make_staff(db_session, vault, "district_admin", district="slps")
    db_session.flush()
    return admin_user


def _contact(db_session, key: str) -> Contact:
    return db_session.execute(select(Contact).where(Contact.key == key)).scalar_one()


def _edit(c: Contact, **changes) -> admin.ContactInput:
    values = dict(key=c.key, name=c.name, role=c.role, sms=c.sms_number, voice=c.voice_number,
                  email=c.email, priority=c.priority, active=c.active,
                  school_ids=tuple(s.id for s in c.schools),
                  agency_code=c.agency.code if c.agency else None)
    return admin.ContactInput(**(values | changes))


def test_deactivating_a_fallback_contact_is_refused(db_session, slps_admin) -> None:
    oncall = _contact(db_session, "slps-oncall")
    with pytest.raises(DirectoryError, match=r"would break the routing policy: .*fallback "
                                             r"contact 'slps-oncall' is inactive"):
        admin.set_contact_active(db_session, slps_admin, oncall.id, False)
    # the safety desk still covers every school's safety_team steps: allowed
    supervisor = _contact(db_session, "slps-safety-supervisor")
    admin.set_contact_active(db_session, slps_admin, supervisor.id, False)
    assert supervisor.active is False


def test_making_a_support_contact_police_is_refused(db_session, slps_admin) -> None:
    # slps-oncall is named by SLPS support rules, which police_only_for keeps police out of
    oncall = _contact(db_session, "slps-oncall")
    with pytest.raises(DirectoryError, match="alerts police \\(slps-oncall\\) for abuse"):
        admin.save_contact(db_session, slps_admin, _edit(oncall, role="police_liaison"),
                           oncall.id)


def test_renaming_a_contact_the_policy_names_is_refused(db_session, slps_admin) -> None:
    desk = _contact(db_session, "slps-safety-desk")
    with pytest.raises(DirectoryError, match="unknown contact 'slps-safety-desk'"):
        admin.save_contact(db_session, slps_admin, _edit(desk, key="slps-desk"), desk.id)
    # an edit the policy does not care about still goes through
    saved = admin.save_contact(db_session, slps_admin, _edit(desk, name="Safety dispatch"),
                               desk.id)
    assert saved.name == "Safety dispatch"


def test_audit_page_hides_other_districts_tips_and_staff(db_session, vault, queue) -> None:
    from tests.factories import make_tip
    from tipline.audit.services import record

    w = make_world(db_session, vault)
    neighbour, _pw, _s = make_staff(db_session, vault, "district_admin",
                                    district=w.other_district.code)
    theirs = make_tip(db_session, vault, queue, body="x", school_code=w.other_school.code)
    ours = make_tip(db_session, vault, queue, body="y", school_code=w.schools[0].code)
    record(db_session, "tip.view", actor=f"user:{neighbour.id}", actor_user_id=neighbour.id,
           tip_id=theirs.tip_id)
    record(db_session, "admin.school.update", actor=f"user:{neighbour.id}",
           actor_user_id=neighbour.id, object_type="school", object_id=w.other_school.id)
    record(db_session, "tip.view", actor="system:worker", tip_id=theirs.tip_id)
    record(db_session, "tip.view", actor=f"user:{w.admin.id}", actor_user_id=w.admin.id,
           tip_id=ours.tip_id)
    record(db_session, "policy.load", actor="cli", object_type="routing_policy", object_id=1)
    page = admin.audit_page(db_session, w.district.id, per_page=500)
    shown = repr(page)
    assert theirs.reference not in shown and neighbour.email not in shown
    assert ours.reference in shown and "policy.load" in shown
    # and the neighbour sees their own, not ours
    other = repr(admin.audit_page(db_session, w.other_district.id, per_page=500))
    assert theirs.reference in other and neighbour.email in other
    assert ours.reference not in other and w.admin.email not in other
