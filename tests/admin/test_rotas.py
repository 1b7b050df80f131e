"""On-call rotas in the dashboard: a district admin's own district only, audited, gaps warned
about before they begin, and the page says who is on call now."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from tests.staffsupport import csrf_token, make_staff, sign_in
from tipline.admin import rotas
from tipline.admin.services import AdminError, NotFound
from tipline.audit.models import AuditEvent
from tipline.directory.loader import DirectoryError
from tipline.directory.models import OnCallRota

NOW = datetime(2026, 12, 10, 15, 0, tzinfo=UTC)


def _input(**kw: str) -> rotas.RotaInput:
    base = {"key": "slps-weekend", "name": "Weekend social workers", "turn": "nightly",
            "handover": "18:00", "starts_on": "2026-12-05",
            "members": "slps-night-brown\nslps-night-begic", "swaps": "", "holidays": ""}
    return rotas.RotaInput(**(base | kw))


def _rota(db_session, key: str) -> OnCallRota:
    return db_session.execute(select(OnCallRota).where(OnCallRota.key == key)).scalar_one()


def test_admin_adds_and_edits_a_rota_audited(db_session, vault, demo_directory) -> None:
    admin, _, _ = make_staff(db_session, vault, "district_admin", district="slps")
    row, warnings = rotas.save_rota(db_session, admin, _input(), None, NOW)
    assert warnings == []
    assert (row.turn, row.handover, row.members) == (
        "nightly", "18:00", ["slps-night-brown", "slps-night-begic"])
    rotas.save_rota(db_session, admin, _input(
        swaps="2026-12-12 2026-12-13 slps-night-flores",
        holidays="2026-12-24 slps-night-brown\n2026-12-25 -"), row.id, NOW)
    assert row.swaps == [{"from": "2026-12-12", "to": "2026-12-13",
                          "contact": "slps-night-flores"}]
    events = db_session.execute(select(AuditEvent).where(
        AuditEvent.object_type == "oncall_rota").order_by(AuditEvent.id)).scalars().all()
    assert [e.action for e in events] == ["admin.rota.create", "admin.rota.save"]
    assert events[1].detail == {"key": "slps-weekend", "changed": ["holidays", "swaps"]}


def test_a_gap_is_warned_about_when_saved(db_session, vault, demo_directory) -> None:
    admin, _, _ = make_staff(db_session, vault, "district_admin", district="slps")
    _, warnings = rotas.save_rota(db_session, admin, _input(holidays="2026-12-25 -"), None, NOW)
    assert warnings == ["rota slps-weekend has nobody on call from Fri 2026-12-25 18:00 "
                        "(holiday 2026-12-25 with no cover); its tips would go to the "
                        "district's fallback contacts"]


@pytest.mark.parametrize(("kw", "message"), [
    ({"members": "cty-oncall"}, "'cty-oncall' is not a contact of your district"),
    ({"swaps": "2026-12-12 2026-12-13 cty-oncall"}, "not a contact of your district"),
    ({"members": "slps-night-brown extra"}, "one contact key per line"),
    ({"swaps": "2026-12-12 slps-night-brown"}, "write FROM TO KEY"),
    ({"holidays": "2026-12-25"}, "write DATE KEY"),
    ({"turn": "monthly"}, "weekly or nightly"),
    ({"key": "Bad Key"}, "key must be"),
    ({"key": "slps-nights"}, "already used"),
])
def test_a_bad_rota_is_refused(db_session, vault, demo_directory, kw, message) -> None:
    admin, _, _ = make_staff(db_session, vault, "district_admin", district="slps")
    with pytest.raises(DirectoryError, match=message):
        rotas.save_rota(db_session, admin, _input(**kw), None, NOW)


def test_another_districts_rota_is_not_found_and_only_admins_edit(
        db_session, vault, demo_directory) -> None:
    county_admin, _, _ = make_staff(db_session, vault, "district_admin", district="stlco-demo")
    slps = _rota(db_session, "slps-nights")
    with pytest.raises(NotFound):
        rotas.save_rota(db_session, county_admin, _input(members="cty-oncall"), slps.id, NOW)
    staff, _, _ = make_staff(db_session, vault, "school_staff", schools=["slps-roosevelt"])
    with pytest.raises(AdminError):
        rotas.save_rota(db_session, staff, _input(), None, NOW)


def test_rota_pages_show_who_is_on_call_and_save(app, db_session, vault, demo_directory):
    admin, password, secret = make_staff(db_session, vault, "district_admin", district="slps")
    db_session.commit()
    client = app.test_client()
    sign_in(client, admin.email, password, secret)
    page = client.get("/staff/admin/rotas").get_data(as_text=True)
    assert "<code>slps-nights</code>" in page and "On call now" in page
    assert "slps-night-" in page  # whoever's turn it is today
    slps = _rota(db_session, "slps-nights")
    form = client.get(f"/staff/admin/rotas/{slps.id}").get_data(as_text=True)
    assert "slps-night-brown\nslps-night-begic\nslps-night-flores" in form
    token = csrf_token(client, f"/staff/admin/rotas/{slps.id}")
    resp = client.post(f"/staff/admin/rotas/{slps.id}", data={
        "csrf_token": token, "key": "slps-nights", "name": "SLPS nights", "turn": "weekly",
        "handover": "17:00", "starts_on": "2026-08-17",
        "members": "slps-night-brown\ncty-oncall", "swaps": "", "holidays": ""})
    assert resp.status_code == 400
    assert "not a contact of your district" in resp.get_data(as_text=True)
    db_session.expire_all()
    assert _rota(db_session, "slps-nights").name != "SLPS nights"
