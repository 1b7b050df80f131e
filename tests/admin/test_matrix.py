"""The routing matrix: the engine's plan for every category, severity and slot at a school,
with police cells marked; a district admin sees their own district only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from tests.conftest import REPO
from tests.staffsupport import make_staff, sign_in
from tipline.admin import matrix
from tipline.directory.models import District, School
from tipline.routing.models import Dispatch, RoutingJob
from tipline.routing.policy import active_policy, load_policy

DEMO_POLICY = (REPO / "config" / "policy.demo.yaml").read_text(encoding="utf-8")
NOW = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)  # a Wednesday


@pytest.fixture
def demo(db_session, demo_directory) -> None:
    load_policy(db_session, DEMO_POLICY, "policy.demo.yaml", "cli")
    db_session.flush()


def _matrix(db_session, district: str, school: str) -> matrix.Matrix:
    d = db_session.execute(select(District).where(District.code == district)).scalar_one()
    s = db_session.execute(select(School).where(School.code == school)).scalar_one()
    policy = active_policy(db_session)
    assert policy is not None
    return matrix.routing_matrix(db_session, policy, d, s, NOW)


def test_slps_keeps_police_out_of_non_violent_matters(db_session, demo) -> None:
    m = _matrix(db_session, "slps", "slps-roosevelt")
    assert m.never_police_categories == ["Self-harm or suicide", "Bullying", "Abuse or neglect",
                                         "Drugs or alcohol", "Family crisis",
                                         "Basic needs (sleep, food, housing)", "Dating violence"]
    assert m.police_categories == ["Weapon", "Threat of violence", "Other"]
    rows = {r.category: r for r in m.rows}
    weapon = rows["weapon"].cells[3]["school_hours"]
    assert weapon.rule == "slps-violence" and weapon.police
    names = [(p.name, p.police) for p in weapon.steps[0].people]
    assert any(police for _n, police in names) and any(not police for _n, police in names)
    assert weapon.steps[1].starts == "15m"
    # Self-harm at life safety: voice and SMS, repeated, never police.
    sh = rows["self_harm"].cells[4]["after_hours"]
    assert sh.rule == "slps-self-harm-after-hours" and not sh.police  # then the BJC partner
    assert sh.steps[0].repeat_every == "2m"
    assert all(not p.police for s in sh.steps for p in s.people)
    # After hours a high support tip goes to the on-call, in school hours to the counselors.
    assert rows["bullying"].cells[3]["after_hours"].rule == "slps-support-high-after-hours"
    assert rows["bullying"].cells[3]["school_hours"].rule == "slps-support-high-day"


def test_times_are_inside_and_outside_school_hours(db_session, demo) -> None:
    m = _matrix(db_session, "slps", "slps-roosevelt")
    day, night = m.times["school_hours"], m.times["after_hours"]
    assert str(day.tzinfo) == "America/Chicago" and day.weekday() < 5 and 7 <= day.hour < 17
    assert night.weekday() == 5 and night.hour == 2
    assert day > NOW and night > NOW


def test_county_district_alerts_its_liaison_for_weapons(db_session, demo) -> None:
    m = _matrix(db_session, "stlco-demo", "cty-northview")
    assert "Weapon" in m.police_categories
    assert "Self-harm or suicide" in m.never_police_categories


def test_the_matrix_writes_nothing(db_session, demo) -> None:
    before = [db_session.execute(select(func.count()).select_from(t)).scalar_one()
              for t in (RoutingJob, Dispatch)]
    _matrix(db_session, "slps", "slps-roosevelt")
    after = [db_session.execute(select(func.count()).select_from(t)).scalar_one()
             for t in (RoutingJob, Dispatch)]
    assert before == after


def test_page_for_a_district_admin_is_their_district(client, db_session, vault, demo) -> None:
    user, password, secret = make_staff(db_session, vault, "district_admin", district="slps")
    db_session.commit()
    sign_in(client, user.email, password, secret)
    page = client.get("/staff/admin/policy/matrix").get_data(as_text=True)
    assert "Saint Louis Public Schools" in page or "slps" in page.lower()
    assert "Police are never alerted for:</strong> Self-harm or suicide, Bullying" in page
    assert "Police alerted" in page and 'media="print"' in page
    # Another district's school or district in the query is ignored.
    other = client.get("/staff/admin/policy/matrix?school=cty-northview&district=stlco-demo")
    text = other.get_data(as_text=True)
    assert other.status_code == 200 and "Northview" not in text
    chosen = client.get("/staff/admin/policy/matrix?school=slps-soldan").get_data(as_text=True)
    assert 'value="slps-soldan" selected' in chosen


def test_page_for_installation_admin_chooses_the_district(client, db_session, vault,
                                                         demo) -> None:
    user, password, secret = make_staff(db_session, vault, "installation_admin")
    db_session.commit()
    sign_in(client, user.email, password, secret)
    resp = client.get("/staff/admin/policy/matrix?district=stlco-demo")
    assert resp.status_code == 200
    assert 'value="stlco-demo" selected' in resp.get_data(as_text=True)


@pytest.mark.parametrize("role", ["school_staff", "police_liaison", "auditor"])
def test_other_roles_get_404(client, db_session, vault, demo, role) -> None:
    kw = {"schools": ["slps-roosevelt"]} if role == "school_staff" else {"district": "slps"}
    if role == "police_liaison":
        kw = {"contact": "slpd-liaison"}
    user, password, secret = make_staff(db_session, vault, role, **kw)
    db_session.commit()
    sign_in(client, user.email, password, secret)
    assert client.get("/staff/admin/policy/matrix").status_code == 404
