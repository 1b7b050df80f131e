"""The routing policy editor: check, dry run and save, all through tipline.routing.policy."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.conftest import REPO
from tests.staffsupport import csrf_from, make_staff, sign_in
from tipline.accounts.models import StaffUser
from tipline.audit.models import AuditEvent
from tipline.routing.models import AlertDelivery, Dispatch, RoutingJob, RoutingPolicy
from tipline.routing.policy import load_policy
from tipline.tips.models import Tip

DEMO_POLICY = (REPO / "config" / "policy.demo.yaml").read_text(encoding="utf-8")
# Line 35 of the demo names the categories of the first rule.
BROKEN = DEMO_POLICY.replace("match: {categories: [weapon, threat, other], severity: 4}",
                             "match: {categories: [weapons, threat, other], severity: 4}", 1)


@pytest.fixture
def signed_in(client, db_session, vault, demo_directory) -> StaffUser:
    load_policy(db_session, DEMO_POLICY, "policy.demo.yaml", "cli")
    user, password, secret = make_staff(db_session, vault, "district_admin", district="slps")
    db_session.commit()
    sign_in(client, user.email, password, secret)
    return user


def _counts(db_session) -> tuple[int, ...]:
    return tuple(db_session.execute(select(func.count()).select_from(m)).scalar_one()
                 for m in (Tip, RoutingJob, Dispatch, AlertDelivery, RoutingPolicy, AuditEvent))


def _active(db_session) -> RoutingPolicy:
    db_session.expire_all()
    return db_session.execute(select(RoutingPolicy).where(
        RoutingPolicy.active.is_(True))).scalar_one()


def _post(client, **data):
    token = csrf_from(client.get("/staff/admin/policy").get_data(as_text=True))
    return client.post("/staff/admin/policy", data={"csrf_token": token, **data})


def test_editor_shows_the_active_policy(client, signed_in) -> None:
    page = client.get("/staff/admin/policy").get_data(as_text=True)
    assert "slps-life-safety-violence" in page and "version 1" in page


def test_check_names_the_line_and_changes_nothing(client, db_session, signed_in) -> None:
    assert BROKEN != DEMO_POLICY
    before = _counts(db_session)
    resp = _post(client, text=BROKEN, action="check")
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "policy.yaml:35:" in page and "weapons" in page
    assert _counts(db_session) == before
    ok = _post(client, text=DEMO_POLICY, action="check")
    assert ok.status_code == 200 and "The policy is valid" in ok.get_data(as_text=True)


def test_invalid_policy_is_not_saved(client, db_session, signed_in) -> None:
    active = _active(db_session)
    resp = _post(client, text=BROKEN, action="save")
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "it was not saved" in page and "policy.yaml:35:" in page
    now = _active(db_session)
    assert (now.id, now.version, now.source_text) == (active.id, active.version, DEMO_POLICY)
    assert db_session.execute(select(func.count(RoutingPolicy.id))).scalar_one() == 1


def test_valid_policy_is_saved_as_a_new_version(client, db_session, signed_in) -> None:
    edited = DEMO_POLICY.replace("policy: St. Louis demo policy", "policy: St. Louis edited")
    resp = _post(client, text=edited, action="save")
    assert resp.status_code == 303
    row = _active(db_session)
    assert (row.version, row.source_text, row.loaded_by) == (2, edited, f"user:{signed_in.id}")
    ev = db_session.execute(select(AuditEvent).where(
        AuditEvent.action == "admin.policy.save")).scalar_one()
    assert ev.detail["version"] == 2


def test_dry_run_explains_and_creates_nothing(client, db_session, signed_in) -> None:
    before = _counts(db_session)
    resp = _post(client, text=DEMO_POLICY, action="dryrun", school="slps-roosevelt",
                 category="weapon", severity="4", at="2026-11-24T10:00")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert 'id="dryrun-result"' in page
    assert "slps-life-safety-violence" in page[page.index('id="dryrun-result"'):]
    assert _counts(db_session) == before


def test_dry_run_uses_the_text_in_the_editor(client, db_session, signed_in) -> None:
    resp = _post(client, text=BROKEN, action="dryrun", school="slps-roosevelt",
                 category="weapon", severity="4", at="")
    assert resp.status_code == 400
    assert 'id="dryrun-result"' not in resp.get_data(as_text=True)


def test_policy_editor_is_admin_only(client, db_session, vault, demo_directory) -> None:
    user, password, secret = make_staff(db_session, vault, "auditor", district="slps")
    db_session.commit()
    sign_in(client, user.email, password, secret)
    assert client.get("/staff/admin/policy").status_code == 404
    token = csrf_from(client.get("/staff/admin/audit").get_data(as_text=True))
    resp = client.post("/staff/admin/policy", data={"csrf_token": token, "text": DEMO_POLICY,
                                                    "action": "save"})
    assert resp.status_code == 404
    assert db_session.execute(select(func.count(RoutingPolicy.id))).scalar_one() == 0


@pytest.mark.parametrize(("field", "value", "message"), [
    ("category", "weapons", "choose a category"),
    ("school", "cty-northview", "choose a school"),  # another district's school
    ("at", "tomorrow", "the date and time are not valid"),
])
def test_dry_run_refuses_bad_input(client, db_session, signed_in, field, value,
                                   message) -> None:
    data = {"text": DEMO_POLICY, "action": "dryrun", "school": "slps-roosevelt",
            "category": "weapon", "severity": "4", "at": "2026-11-24T10:00", field: value}
    resp = _post(client, **data)
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert message in page and 'id="dryrun-result"' not in page


def test_check_shows_warnings_for_districts_left_out(client, db_session, signed_in) -> None:
    start = DEMO_POLICY.index("  stlco-demo:")
    only_slps = DEMO_POLICY[:start]
    # (an SLPS admin may not drop the county's section: the CLI loads such a policy)
    load_policy(db_session, only_slps, "policy.yaml", "cli")
    db_session.commit()
    resp = _post(client, text=only_slps, action="check")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'id="policy-warnings"' in page
    assert "district &#39;stlco-demo&#39; is in the directory but not in the policy" in page


def test_admin_cannot_change_another_districts_section(client, db_session, signed_in) -> None:
    # An SLPS admin takes the county police liaison out of the county's threat rule.
    county = DEMO_POLICY.replace(
        "          - alert: [{role: counselor}, {role: principal}, {role: police_liaison}]\n",
        "          - alert: [{role: counselor}, {role: principal}]\n", 1)
    assert county != DEMO_POLICY
    for action in ("check", "save"):
        resp = _post(client, text=county, action=action)
        assert resp.status_code == 400
        assert "district &#39;stlco-demo&#39; is not yours to change" in \
            resp.get_data(as_text=True)
    assert _active(db_session).version == 1
    # adding a section for a district is a change to it as well
    added = DEMO_POLICY + "\n  other-district:\n    school_hours: []\n"
    assert _post(client, text=added, action="save").status_code == 400
    # their own section, and comments anywhere, are theirs to change
    own = DEMO_POLICY.replace("ack_within: 60m", "ack_within: 45m").replace(
        "  stlco-demo:\n", "  # edited by SLPS\n  stlco-demo:\n")
    assert _post(client, text=own, action="save").status_code == 303
    assert _active(db_session).version == 2


def test_deactivating_a_contact_the_policy_needs_is_refused_on_the_page(
    client, db_session, signed_in
) -> None:
    from tipline.directory.models import Contact

    oncall = db_session.execute(select(Contact).where(Contact.key == "slps-oncall")).scalar_one()
    token = csrf_from(client.get("/staff/admin/contacts").get_data(as_text=True))
    resp = client.post(f"/staff/admin/contacts/{oncall.id}/active",
                       data={"csrf_token": token, "active": "0"})
    assert resp.status_code == 303
    page = client.get("/staff/admin/contacts").get_data(as_text=True)
    assert "would break the routing policy" in page
    db_session.expire_all()
    assert db_session.get(Contact, oncall.id).active is True
