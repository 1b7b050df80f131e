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
def installation(client, db_session, vault, demo_directory) -> StaffUser:
    """An installation administrator (no district), signed in, with the demo policy loaded."""
    load_policy(db_session, DEMO_POLICY, "policy.demo.yaml", "cli")
    user, password, secret = make_staff(db_session, vault, "installation_admin")
    db_session.commit()
    resp = sign_in(client, user.email, password, secret)
    assert resp.headers["Location"].endswith("/staff/admin/")
    return user


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
    assert "policy.yaml:43:" in page and "weapons" in page
    assert _counts(db_session) == before
    ok = _post(client, text=DEMO_POLICY, action="check")
    assert ok.status_code == 200 and "The policy is valid" in ok.get_data(as_text=True)


def test_invalid_policy_is_not_saved(client, db_session, signed_in) -> None:
    active = _active(db_session)
    resp = _post(client, text=BROKEN, action="save")
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "it was not saved" in page and "policy.yaml:43:" in page
    now = _active(db_session)
    assert (now.id, now.version, now.source_text) == (active.id, active.version, DEMO_POLICY)
    assert db_session.execute(select(func.count(RoutingPolicy.id))).scalar_one() == 1


def test_valid_policy_is_saved_as_a_new_version(client, db_session, installation) -> None:
    edited = DEMO_POLICY.replace("policy: St. Louis demo policy", "policy: St. Louis edited")
    resp = _post(client, text=edited, action="save")
    assert resp.status_code == 303
    row = _active(db_session)
    assert (row.version, row.source_text, row.loaded_by) == (2, edited, f"user:{installation.id}")
    ev = db_session.execute(select(AuditEvent).where(
        AuditEvent.action == "admin.policy.save")).scalar_one()
    assert ev.detail["version"] == 2 and ev.detail["scope"] == "installation"


def test_dry_run_explains_and_creates_nothing(client, db_session, signed_in) -> None:
    before = _counts(db_session)
    resp = _post(client, text=DEMO_POLICY, action="dryrun", school="slps-roosevelt",
                 category="weapon", severity="4", at="2026-11-24T10:00")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert 'id="dryrun-result"' in page
    assert "slps-life-safety-violence" in page[page.index('id="dryrun-result"'):]
    assert _counts(db_session) == before


def test_dry_run_for_a_bosnian_speaking_reporter(client, db_session, signed_in) -> None:
    resp = _post(client, text=DEMO_POLICY, action="dryrun", school="slps-roosevelt",
                 category="bullying", severity="2", at="2026-11-24T10:00", language="bs")
    assert resp.status_code == 200
    result = resp.get_data(as_text=True).split('id="dryrun-result"', 1)[1]
    assert "slps-bosnian" in result and "slps-bias-interpreter" in result
    resp = _post(client, text=DEMO_POLICY, action="dryrun", school="slps-roosevelt",
                 category="bullying", severity="2", at="2026-11-24T10:00", language="xx")
    assert resp.status_code == 400 and 'id="dryrun-result"' not in resp.get_data(as_text=True)


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


# -- who may change what: a district admin their section, an installation admin the rest ----
SLPS_START = DEMO_POLICY.index("  # ----------------------------------------------------------"
                               "-----------------------------\n  # Saint Louis")
COUNTY_START = DEMO_POLICY.index("  # -------------------------------------------------------"
                                 "--------------------------------\n  # County")


def _refusals(db_session) -> list[AuditEvent]:
    return list(db_session.execute(select(AuditEvent).where(
        AuditEvent.action == "admin.policy.refused").order_by(AuditEvent.id)).scalars())


@pytest.mark.parametrize(("change", "message"), [
    # the installation-wide settings: escalation of every district's no-school tips
    (("ack_within: 10m\n  life_safety_repeat_every: 2m",
      "ack_within: 2h\n  life_safety_repeat_every: 30m"),
     "&#39;no_school&#39; is an installation-wide setting"),
    (("policy: St. Louis demo policy", "policy: SLPS rules everything"),
     "&#39;policy&#39; is an installation-wide setting"),
    # another district's section
    (("    fallback: [cty-oncall]\n", "    fallback: [cty-oncall, cty-northview-counselor]\n"),
     "district &#39;stlco-demo&#39; is not yours to change"),
])
def test_district_admin_cannot_change_installation_wide_settings(
    client, db_session, signed_in, change, message
) -> None:
    text = DEMO_POLICY.replace(*change, 1)
    assert text != DEMO_POLICY
    before = _counts(db_session)
    resp = _post(client, text=text, action="check")
    assert resp.status_code == 400 and message in resp.get_data(as_text=True)
    assert _counts(db_session) == before and _refusals(db_session) == []
    resp = _post(client, text=text, action="save")
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert message in page and "it was not saved" in page
    assert "an installation administrator" in page
    assert _active(db_session).version == 1
    (ev,) = _refusals(db_session)
    assert ev.actor_user_id == signed_in.id and ev.detail["district"] == "slps"
    assert ev.detail["outside"]


def test_district_admin_editor_shows_only_their_section(client, signed_in) -> None:
    page = client.get("/staff/admin/policy").get_data(as_text=True)
    editor = page[page.index("<textarea"):page.index("</textarea>")]
    assert "slps-life-safety-violence" in editor and "slps-oncall" in editor
    assert "no_school:" not in editor and "stlco-demo" not in editor
    assert "cty-life-safety-violence" not in editor and "St. Louis demo policy" not in editor
    assert "installation administrator" in page


def test_saving_the_section_changes_only_that_section(client, db_session, signed_in) -> None:
    page = client.get("/staff/admin/policy").get_data(as_text=True)
    import html

    editor = html.unescape(page[page.index(">", page.index("<textarea")) + 1:
                                page.index("</textarea>")]).lstrip("\r\n")
    edited = editor.replace("ack_within: 60m", "ack_within: 45m")
    assert edited != editor
    resp = _post(client, text=edited, action="save")
    assert resp.status_code == 303, resp.get_data(as_text=True)
    row = _active(db_session)
    assert row.version == 2 and row.loaded_by == f"user:{signed_in.id}"
    # every line outside the SLPS section (comments too) is exactly as it was
    assert row.source_text[:SLPS_START] == DEMO_POLICY[:SLPS_START]
    assert row.source_text[row.source_text.index("  # ------------------------------------"
                                                 "---------------------------------------------"
                                                 "------\n  # County"):] == \
        DEMO_POLICY[COUNTY_START:]
    assert row.source_text == DEMO_POLICY.replace("ack_within: 60m", "ack_within: 45m")
    ev = db_session.execute(select(AuditEvent).where(
        AuditEvent.action == "admin.policy.save")).scalar_one()
    assert ev.detail["scope"] == "slps"


def test_district_admin_cannot_add_sections_or_keys(client, db_session, signed_in) -> None:
    page = client.get("/staff/admin/policy").get_data(as_text=True)
    import html

    editor = html.unescape(page[page.index(">", page.index("<textarea")) + 1:
                                page.index("</textarea>")]).lstrip("\r\n")
    added = "no_school:\n  ack_within: 3h\n" + editor
    resp = _post(client, text=added, action="save")
    assert resp.status_code == 400
    assert "&#39;no_school&#39; is an installation-wide setting" in resp.get_data(as_text=True)
    other = editor + "  stlco-demo:\n    school_hours: [{days: mon-fri, start: \"07:00\", " \
        "end: \"17:00\"}]\n    fallback: [cty-oncall]\n    rules:\n      - name: x\n" \
        "        default: true\n        steps: [{alert: [{contact: cty-oncall}], " \
        "ack_within: 5m}]\n"
    resp = _post(client, text=other, action="save")
    assert resp.status_code == 400
    assert "district &#39;stlco-demo&#39; is not yours to change" in resp.get_data(as_text=True)
    assert _active(db_session).version == 1 and len(_refusals(db_session)) == 2


def test_installation_admin_edits_every_section(client, db_session, installation) -> None:
    page = client.get("/staff/admin/policy").get_data(as_text=True)
    assert "no_school" in page and "cty-life-safety-violence" in page
    text = DEMO_POLICY.replace("ack_within: 10m\n  life_safety_repeat_every: 2m",
                               "ack_within: 5m\n  life_safety_repeat_every: 1m", 1).replace(
        "    fallback: [cty-oncall]\n", "    fallback: [cty-oncall, cty-northview-counselor]\n")
    assert _post(client, text=text, action="save").status_code == 303
    row = _active(db_session)
    assert row.version == 2 and row.source_text == text
    # the dry run asks which district
    resp = _post(client, text=DEMO_POLICY, action="dryrun", district="stlco-demo",
                 school="cty-northview", category="weapon", severity="4", at="2026-11-24T10:00")
    assert resp.status_code == 200
    assert "cty-life-safety-violence" in resp.get_data(as_text=True)
    resp = _post(client, text=DEMO_POLICY, action="dryrun", district="slps",
                 school="cty-northview", category="weapon", severity="4", at="2026-11-24T10:00")
    assert resp.status_code == 400 and 'id="dryrun-result"' not in resp.get_data(as_text=True)


def test_installation_admin_is_held_to_the_directory_guard(client, db_session,
                                                           installation) -> None:
    text = DEMO_POLICY.replace("    police_only_for: [weapon, threat, other]\n", "", 1).replace(
        "          - alert: [{role: counselor}, {role: social_worker}]\n            channels: "
        "[sms, email]\n            ack_within: 60m\n",
        "          - alert: [{role: counselor}, {role: social_worker}, {contact: slpd-liaison}]"
        "\n            channels: [sms, email]\n            ack_within: 60m\n", 1)
    assert "police_only_for: [weapon, threat, other]\n    rules:\n      - name: slps" not in text
    resp = _post(client, text=text, action="save")
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "rule &#39;slps-support-day&#39; alerts police (slpd-liaison)" in page
    assert "police_involvement: limited" in page
    assert _active(db_session).version == 1


@pytest.mark.parametrize("path", ["/staff/", "/staff/admin/schools", "/staff/admin/contacts",
                                  "/staff/admin/users", "/staff/admin/stats",
                                  "/staff/admin/audit"])
def test_installation_admin_reads_no_tips_and_no_district_pages(client, installation,
                                                                path) -> None:
    assert client.get(path).status_code == 404
    page = client.get("/staff/admin/").get_data(as_text=True)
    assert 'href="/staff/admin/policy"' in page and 'href="/staff/admin/schools"' not in page


def test_district_admin_cannot_create_an_installation_admin(client, db_session,
                                                            signed_in) -> None:
    token = csrf_from(client.get("/staff/admin/users/new").get_data(as_text=True))
    resp = client.post("/staff/admin/users/new", data={
        "csrf_token": token, "email": "boss@staff.example.org", "role": "installation_admin",
        "display_name": "", "contact": ""})
    assert resp.status_code == 400
    assert db_session.execute(select(StaffUser).where(
        StaffUser.email == "boss@staff.example.org")).scalar_one_or_none() is None


def test_police_involvement_is_not_editable_in_the_dashboard(client, db_session,
                                                             signed_in) -> None:
    from tipline.directory.models import District

    for path in ("/staff/admin/policy", "/staff/admin/schools/new"):
        token = csrf_from(client.get(path).get_data(as_text=True))
        client.post(path, data={"csrf_token": token, "police_involvement": "full",
                                "action": "save", "text": DEMO_POLICY, "code": "x-new",
                                "name": "X"})
    db_session.expire_all()
    assert db_session.execute(select(District.police_involvement).where(
        District.code == "slps")).scalar_one() == "limited"
