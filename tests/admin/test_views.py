"""The administration, audit and statistics pages through the real sign-in."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import func, select, text

from tests.admin.helpers import World, make_world
from tests.admin.test_stats import _known_tips
from tests.staffsupport import csrf_from, make_staff, sign_in
from tipline.accounts.models import StaffUser
from tipline.audit.models import AuditEvent
from tipline.directory.models import Contact, School

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
ADMIN_GETS = ["/staff/admin/", "/staff/admin/schools", "/staff/admin/schools/new",
              "/staff/admin/contacts", "/staff/admin/contacts/new", "/staff/admin/users",
              "/staff/admin/users/new", "/staff/admin/policy"]
READER_GETS = ["/staff/admin/audit", "/staff/admin/stats"]


@pytest.fixture
def world(db_session, vault) -> World:
    w = make_world(db_session, vault)
    db_session.commit()
    return w


def _as_admin(client, w: World) -> None:
    sign_in(client, w.admin.email, w.admin_password, w.admin_secret)


def _as(client, db_session, vault, role: str, w: World, **kw) -> StaffUser:
    user, password, secret = make_staff(db_session, vault, role, **kw)
    db_session.commit()
    sign_in(client, user.email, password, secret)
    return user


def _token(client, path: str) -> str:
    return csrf_from(client.get(path).get_data(as_text=True))


def _audit_count(db_session, action: str) -> int:
    return db_session.execute(select(func.count(AuditEvent.id)).where(
        AuditEvent.action == action)).scalar_one()


def test_admin_sees_every_page(client, world) -> None:
    _as_admin(client, world)
    for path in ADMIN_GETS + READER_GETS:
        resp = client.get(path)
        assert resp.status_code == 200, path
        assert "Content-Security-Policy" in resp.headers
    page = client.get("/staff/admin/schools").get_data(as_text=True)
    assert "Alpha High" in page and "Gamma Elementary" not in page  # the other district's


@pytest.mark.parametrize("role", ["school_staff", "police_liaison"])
def test_school_staff_and_liaison_get_404(client, db_session, vault, world, role) -> None:
    kw = {"schools": [world.schools[0].code]} if role == "school_staff" else {
        "contact": world.contact.key}
    _as(client, db_session, vault, role, world, **kw)
    for path in ADMIN_GETS + READER_GETS:
        assert client.get(path).status_code == 404, path


def test_auditor_reads_but_cannot_change(client, db_session, vault, world) -> None:
    _as(client, db_session, vault, "auditor", world, district=world.district.code)
    for path in READER_GETS:
        assert client.get(path).status_code == 200, path
    for path in ADMIN_GETS:
        assert client.get(path).status_code == 404, path
    token = _token(client, "/staff/admin/stats")
    school = world.schools[0]
    resp = client.post(f"/staff/admin/schools/{school.id}", data={
        "csrf_token": token, "code": school.code, "name": "Renamed by auditor"})
    assert resp.status_code == 404
    resp = client.post(f"/staff/admin/contacts/{world.contact.id}/active",
                       data={"csrf_token": token, "active": "0"})
    assert resp.status_code == 404
    db_session.expire_all()
    assert db_session.get(School, school.id).name == "Alpha High"
    assert db_session.get(Contact, world.contact.id).active is True


def test_every_post_needs_a_csrf_token(client, db_session, vault, world) -> None:
    other, _p, _s = make_staff(db_session, vault, "auditor", district=world.district.code)
    db_session.commit()
    _as_admin(client, world)
    s, c = world.schools[0], world.contact
    posts = {
        "/staff/admin/schools/new": {"code": "csrf-new", "name": "New"},
        f"/staff/admin/schools/{s.id}": {"code": s.code, "name": "Changed"},
        f"/staff/admin/schools/{s.id}/active": {"active": "0"},
        "/staff/admin/contacts/new": {"key": "csrf-c", "name": "N", "role": "counselor"},
        f"/staff/admin/contacts/{c.id}": {"key": c.key, "name": "Changed", "role": "counselor"},
        f"/staff/admin/contacts/{c.id}/active": {"active": "0"},
        "/staff/admin/users/new": {"email": "csrf@example.org", "role": "auditor"},
        f"/staff/admin/users/{other.id}/deactivate": {},
        f"/staff/admin/users/{other.id}/reset": {},
        f"/staff/admin/users/{other.id}/sign-out": {},
        "/staff/admin/policy": {"text": "x", "action": "save"},
        "/staff/admin/stats.csv": {},
        "/staff/admin/audit/verify": {},
    }
    before = db_session.execute(select(func.count(AuditEvent.id))).scalar_one()
    for path, data in posts.items():
        assert client.post(path, data=data).status_code == 400, path
        bad = dict(data, csrf_token="forged")
        assert client.post(path, data=bad).status_code == 400, path
    db_session.expire_all()
    assert db_session.execute(select(func.count(AuditEvent.id))).scalar_one() == before
    assert db_session.get(School, s.id).name == "Alpha High"
    assert db_session.get(StaffUser, other.id).active is True


def test_edit_contact_through_the_form(client, db_session, world) -> None:
    _as_admin(client, world)
    path = f"/staff/admin/contacts/{world.contact.id}"
    page = client.get(path).get_data(as_text=True)
    assert world.contact.key in page
    form = {"csrf_token": csrf_from(page), "key": world.contact.key, "name": "Dana Reyes",
            "role": "counselor", "sms": "+13145550199", "voice": "", "email": "d@example.org",
            "priority": "5", "agency": "", "schools": [str(world.schools[1].id)], "active": "y"}
    resp = client.post(path, data=form)
    assert resp.status_code == 303
    db_session.expire_all()
    c = db_session.get(Contact, world.contact.id)
    assert (c.name, c.sms_number, c.priority, [s.id for s in c.schools]) == (
        "Dana Reyes", "+13145550199", 5, [world.schools[1].id])
    assert _audit_count(db_session, "admin.contact.update") == 1

    resp = client.post(path, data=dict(form, sms="314-555-0199"))
    assert resp.status_code == 400
    assert "sms must be E.164" in resp.get_data(as_text=True)
    resp = client.post(path, data=dict(form, email="nope"))
    assert "email is not a valid address" in resp.get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(Contact, world.contact.id).sms_number == "+13145550199"


def test_other_districts_rows_are_404(client, world) -> None:
    _as_admin(client, world)
    assert client.get(f"/staff/admin/schools/{world.other_school.id}").status_code == 404
    assert client.get(f"/staff/admin/contacts/{world.other_contact.id}").status_code == 404
    token = _token(client, "/staff/admin/schools")
    resp = client.post(f"/staff/admin/contacts/{world.other_contact.id}/active",
                       data={"csrf_token": token, "active": "0"})
    assert resp.status_code == 404


def test_xss_in_school_and_contact_names_is_escaped(client, db_session, world) -> None:
    world.schools[0].name = XSS
    world.contact.name = XSS
    db_session.commit()
    _as_admin(client, world)
    for path in ("/staff/admin/schools", "/staff/admin/contacts",
                 f"/staff/admin/contacts/{world.contact.id}", "/staff/admin/users/new",
                 "/staff/admin/stats", "/staff/admin/policy"):
        page = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in page and "<img src=x" not in page, path
    page = client.get("/staff/admin/schools").get_data(as_text=True)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


def test_add_user_and_manage_it(client, db_session, world) -> None:
    _as_admin(client, world)
    token = _token(client, "/staff/admin/users/new")
    resp = client.post("/staff/admin/users/new", data={
        "csrf_token": token, "email": "kim@example.org", "display_name": "Kim",
        "role": "school_staff", "schools": [str(world.schools[0].id)], "contact": ""})
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    password = re.search(r'id="first-password">([^<]+)<', page).group(1)
    assert len(password) >= 12
    user = db_session.execute(select(StaffUser).where(
        StaffUser.email == "kim@example.org")).scalar_one()
    assert user.district_id == world.district.id and not user.totp_confirmed
    # The one-time password is in no later page, no audit entry and not in the cookie.
    assert password not in client.get("/staff/admin/users").get_data(as_text=True)
    version = user.session_version
    for action in ("sign-out", "deactivate"):
        resp = client.post(f"/staff/admin/users/{user.id}/{action}", data={"csrf_token": token})
        assert resp.status_code == 303, action
    db_session.expire_all()
    user = db_session.get(StaffUser, user.id)
    assert user.active is False and user.session_version == version + 2
    details = str(db_session.execute(select(AuditEvent.detail)).scalars().all())
    assert password not in details
    assert client.post(f"/staff/admin/users/{user.id}/explode",
                       data={"csrf_token": token}).status_code == 404


def test_stats_page_numbers_are_exact(client, db_session, vault, queue, world) -> None:
    _known_tips(db_session, vault, queue, world)
    db_session.commit()
    _as_admin(client, world)
    page = client.get("/staff/admin/stats").get_data(as_text=True)
    assert 'id="stats-total">7 tips' in page
    timing = page[page.index('id="timing"'):page.index("</table>", page.index('id="timing"'))]
    assert re.findall(r'data-seconds="([^"]*)"', timing) == ["180.0", "456.0", "5400.0", "6840.0"]
    assert "3 min 00 s" in timing and "7 min 36 s" in timing and "1 h 30 min" in timing
    assert 'role="img"' in page
    assert '<title id="chart-school-title">Tips by school</title>' in page
    month = page[page.index('id="table-month"'):]
    assert re.findall(r"<th scope=\"row\">(\d{4}-\d\d)</th><td>(\d+)</td>", month)[:3] == [
        ("2026-01", "1"), ("2026-02", "1"), ("2026-03", "5")]
    march = client.get("/staff/admin/stats?start=2026-03-01&end=2026-03-31").get_data(
        as_text=True)
    assert 'id="stats-total">5 tips' in march  # 1 March 03:00 UTC is February here


def test_csv_export_has_no_content_and_is_audited(client, db_session, vault, queue,
                                                  world) -> None:
    _known_tips(db_session, vault, queue, world)
    db_session.commit()
    _as_admin(client, world)
    token = _token(client, "/staff/admin/stats")
    resp = client.post("/staff/admin/stats.csv", data={"csrf_token": token, "start": "",
                                                       "end": ""})
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True))))
    assert rows[0] == ["measure", "group", "value"]
    assert all(len(r) == 3 for r in rows)
    assert ["tips_total", "all", "7"] in rows and ["seconds_to_close", "p90", "6840"] in rows
    body = resp.get_data(as_text=True)
    for forbidden in ("words", "script", "reference", "uid", "body", "T-"):
        assert forbidden not in body
    assert _audit_count(db_session, "stats.export") == 1


def test_auditor_may_export(client, db_session, vault, world) -> None:
    _as(client, db_session, vault, "auditor", world, district=world.district.code)
    token = _token(client, "/staff/admin/stats")
    resp = client.post("/staff/admin/stats.csv", data={"csrf_token": token})
    assert resp.status_code == 200
    assert _audit_count(db_session, "stats.export") == 1


def test_audit_viewer_detects_a_tampered_row(client, db_session, vault, queue, world) -> None:
    from tests.factories import make_tip
    from tipline.audit.services import record

    receipt = make_tip(db_session, vault, queue, body="very private words",
                       school_code=world.schools[0].code)
    record(db_session, "tip.view", actor=f"user:{world.admin.id}",
           actor_user_id=world.admin.id, tip_id=receipt.tip_id)
    victim = record(db_session, "tip.status", actor="user:1", tip_id=receipt.tip_id,
                    detail={"to": "closed"})
    db_session.commit()
    _as_admin(client, world)
    page = client.get("/staff/admin/audit").get_data(as_text=True)
    assert "Hash chain OK" in page and receipt.reference in page
    assert "very private words" not in page
    db_session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    db_session.execute(text("""UPDATE audit_events SET detail = '{"to": "new"}' WHERE id = :i"""),
                       {"i": victim.id})
    db_session.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))
    db_session.commit()
    page = client.get("/staff/admin/audit").get_data(as_text=True)
    assert "Hash chain BROKEN" in page
    assert f"at entry {victim.id}: entry hash does not match its content" in page
    assert 'class="tampered"' in page
    token = csrf_from(page)
    page = client.post("/staff/admin/audit/verify", data={"csrf_token": token}).get_data(
        as_text=True)
    assert f"at entry {victim.id}: entry hash does not match its content" in page
    ev = db_session.execute(select(AuditEvent).where(AuditEvent.action == "audit.verify")
                            ).scalar_one()
    assert ev.detail == {"ok": False, "checked": ev.detail["checked"],
                         "first_bad_id": victim.id}


def test_audit_viewer_pages(client, db_session, world) -> None:
    from tipline.audit.services import record

    for n in range(60):
        record(db_session, "test.event", actor="cli", detail={"n": n})
    db_session.commit()
    _as_admin(client, world)
    first = client.get("/staff/admin/audit?action=test.").get_data(as_text=True)
    assert "page 1 of 2, 60 events" in first and 'rel="next"' in first
    second = client.get("/staff/admin/audit?action=test.&page=2").get_data(as_text=True)
    assert "page 2 of 2" in second and len(re.findall(r"test\.event", second)) == 10
