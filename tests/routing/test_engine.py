"""The rule engine under the St. Louis demo policy: who is alerted, when, how, and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import product
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.factories import ContactFactory, SchoolFactory, bind, make_tip
from tipline.directory.models import Contact, District, School
from tipline.routing.engine import PolicyPlanner, UnknownPlace, plan_for
from tipline.routing.models import AlertDelivery, Dispatch, RoutingJob
from tipline.routing.policy import (
    CATEGORIES,
    Policy,
    active_policy,
    explain,
    load_policy_file,
    parse_policy,
)
from tipline.routing.services import DirectoryPlanner, route_job
from tipline.tips.models import Category, Severity

POLICY_FILE = Path(__file__).resolve().parents[2] / "config" / "policy.demo.yaml"
NON_VIOLENT = ("bullying", "self_harm", "substance", "abuse", "family_crisis", "basic_needs",
               "dating_violence")
# America/Chicago is UTC-6 in late November.
TUESDAY_10AM = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
TUESDAY_8PM = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
SATURDAY_2AM = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
TIMES = {"school_hours": TUESDAY_10AM, "evening": TUESDAY_8PM, "saturday_2am": SATURDAY_2AM}
SLPS_SCHOOLS = ("slps-roosevelt", "slps-soldan", "slps-vashon", "slps-carnahan",
                "slps-longmiddle")
COUNTY_SCHOOLS = ("cty-northview", "cty-riverbend", "cty-oakridge")


@pytest.fixture
def demo_policy(db_session, demo_directory) -> Policy:
    load_policy_file(db_session, POLICY_FILE, loaded_by="test")
    db_session.flush()
    policy = active_policy(db_session)
    assert policy is not None
    return policy


def steps_by_role(db_session, policy, school, category, severity, at):
    """[{roles of step 1}, {roles of step 2}, ...] and the plan."""
    plan = plan_for(db_session, policy, school_code=school, district_code=None,
                    category=category, severity=severity, at=at)
    out = []
    for step in plan.steps:
        out.append({db_session.get(Contact, e.contact_id).role for e in step.entries})
    return out, plan


def _slps_expected(category: str, severity: int, after_hours: bool, school: str):
    support = {"counselor", "social_worker"} if school == "slps-roosevelt" else {"counselor"}
    if severity == 4 and category in ("weapon", "threat", "other"):
        return [{"safety_team", "counselor", "district_oncall", "police_liaison"},
                {"district_oncall"}]
    if category == "self_harm" and severity >= 3 and after_hours:
        # the rota's on-call social worker, the counselor, the desk; then the BJC crisis line
        return [{"social_worker", "counselor", "district_oncall"},
                {"outside_partner", "district_oncall"}]
    if severity == 4:
        return [support | {"district_oncall", "safety_team"}, {"district_oncall"}]
    if category in ("weapon", "threat"):
        return [{"safety_team", "counselor", "police_liaison"}, {"district_oncall"}]
    if category == "basic_needs":
        return [{"social_worker", "transition_team"}, {"district_oncall"}] if after_hours \
            else [{"transition_team", "counselor"}, {"family_specialist", "district_oncall"}]
    if category == "dating_violence":
        return [{"social_worker", "family_specialist"}, {"outside_partner", "district_oncall"}] \
            if after_hours else [support | {"family_specialist"}, {"district_oncall"}]
    if after_hours:
        return [{"social_worker"}, {"district_oncall"}]  # the rota's on-call social worker
    return [support, {"district_oncall"}]


def _county_expected(category: str, severity: int, after_hours: bool):
    if category in ("weapon", "threat") or (category == "other" and severity == 4):
        return [{"principal", "counselor", "police_liaison"}, {"district_oncall"}]
    if severity == 4:
        return [{"counselor", "principal"}, {"district_oncall"}]
    if after_hours:
        return [{"district_oncall"}, {"principal"}]
    return [{"counselor"}, {"principal"}]


@pytest.mark.parametrize("school", SLPS_SCHOOLS)
def test_slps_every_category_and_severity(db_session, demo_policy, school):
    for (label, at), category, severity in product(TIMES.items(), CATEGORIES, range(1, 5)):
        roles, plan = steps_by_role(db_session, demo_policy, school, category, severity, at)
        expected = _slps_expected(category, severity, label != "school_hours", school)
        assert roles == expected, (label, category, severity, plan.rule)
        police = any("police_liaison" in r for r in roles)
        assert police == (category in ("weapon", "threat")
                          or (category == "other" and severity == 4)), (category, severity)
        if category in NON_VIOLENT:
            assert not police
            assert all(c["role"] != "police_liaison" for c in plan.explanation["contacts"]
                       if c["alerted"])


@pytest.mark.parametrize("school", COUNTY_SCHOOLS)
def test_county_every_category_and_severity(db_session, demo_policy, school):
    for (label, at), category, severity in product(TIMES.items(), CATEGORIES, range(1, 5)):
        roles, plan = steps_by_role(db_session, demo_policy, school, category, severity, at)
        assert roles == _county_expected(category, severity, label != "school_hours"), (
            label, category, severity, plan.rule)
        if category in NON_VIOLENT:
            assert not any("police_liaison" in r for r in roles)


def test_county_threats_go_to_school_and_county_police_not_city(db_session, demo_policy):
    _, plan = steps_by_role(db_session, demo_policy, "cty-riverbend", "threat", 2, TUESDAY_10AM)
    alerted = {c["contact"] for c in plan.explanation["contacts"] if c["alerted"]}
    assert {"stlco-liaison", "cty-riverbend-counselor", "cty-riverbend-principal"} <= alerted
    assert "slpd-liaison" not in alerted
    assert plan.rule == "cty-violence"


def test_slps_weapon_goes_to_city_police_by_rule(db_session, demo_policy):
    _, plan = steps_by_role(db_session, demo_policy, "slps-vashon", "weapon", 3, SATURDAY_2AM)
    alerted = {c["contact"]: c for c in plan.explanation["contacts"] if c["alerted"]}
    assert "slpd-liaison" in alerted and "stlco-liaison" not in alerted
    assert "rule slps-violence step 1" in alerted["slpd-liaison"]["why"]


def test_after_hours_uses_district_timezone(db_session, demo_policy):
    # 16:30 local on a Tuesday: still school hours for SLPS (until 17:00), not for the county
    # (until 16:30); the same instant read as UTC would be 10:30 and school hours for both.
    at = datetime(2026, 11, 24, 22, 30, tzinfo=UTC)
    slps = plan_for(db_session, demo_policy, school_code="slps-soldan", district_code=None,
                    category="bullying", severity=2, at=at)
    county = plan_for(db_session, demo_policy, school_code="cty-oakridge", district_code=None,
                      category="bullying", severity=2, at=at)
    assert slps.rule == "slps-support-day" and slps.explanation["time"] == "school_hours"
    assert county.rule == "cty-support-after-hours"
    assert county.explanation["local_time"] == "Tue 2026-11-24 16:30"
    assert county.explanation["timezone"] == "America/Chicago"


def test_saturday_2am_goes_to_on_call(db_session, demo_policy):
    # whoever the rota slps-nights has on call: that week a swap gave it to Carmen Flores
    plan = plan_for(db_session, demo_policy, school_code="slps-roosevelt", district_code=None,
                    category="bullying", severity=3, at=SATURDAY_2AM)
    first = {db_session.get(Contact, e.contact_id).key for e in plan.steps[0].entries}
    assert plan.rule == "slps-support-high-after-hours"
    assert first == {"slps-night-flores"}
    assert plan.explanation["local_time"] == "Sat 2026-11-28 02:00"
    assert plan.explanation["time"] == "after_hours"


def test_life_safety_alerts_many_by_voice_and_sms_and_repeats(db_session, demo_policy):
    plan = plan_for(db_session, demo_policy, school_code="slps-roosevelt", district_code=None,
                    category="weapon", severity=4, at=TUESDAY_10AM)
    first = plan.steps[0]
    assert len(first.entries) >= 4
    assert first.repeat_every == timedelta(minutes=2)
    assert first.ack_within == timedelta(minutes=5)
    for e in first.entries:
        c = db_session.get(Contact, e.contact_id)
        wanted = tuple(ch for ch in ("voice", "sms")
                       if (c.voice_number if ch == "voice" else c.sms_number))
        assert e.channels == wanted
        assert not e.include_content
    # escalation: step 2 starts when step 1's deadline passes
    assert plan.steps[1].delay == timedelta(minutes=5)
    assert plan.steps[1].repeat_every == timedelta(minutes=2)


def test_escalation_steps_have_deadlines_and_growing_delays(db_session, demo_policy):
    plan = plan_for(db_session, demo_policy, school_code="cty-northview", district_code=None,
                    category="bullying", severity=1, at=TUESDAY_10AM)
    assert [s.ack_within for s in plan.steps] == [timedelta(minutes=30)] * 2
    assert [s.delay for s in plan.steps] == [timedelta(0), timedelta(minutes=30)]
    assert all(s.repeat_every is None for s in plan.steps)
    assert plan.explanation["steps"][1]["starts_after"] == "30m"


def test_contact_missing_a_channel_gets_the_ones_they_have(db_session, demo_policy):
    # the SLPS safety supervisor has no email; slps-violence asks for sms, voice
    _, plan = steps_by_role(db_session, demo_policy, "slps-roosevelt", "bullying", 1,
                            TUESDAY_10AM)
    social = next(c for c in plan.explanation["contacts"]
                  if c["contact"] == "slps-roosevelt-social")
    assert social["alerted"] and social["channels"] == ["sms", "email"]


def test_explanation_names_rule_and_why_each_contact(db_session, demo_policy):
    plan = plan_for(db_session, demo_policy, school_code="slps-roosevelt", district_code=None,
                    category="self_harm", severity=2, at=TUESDAY_10AM)
    ex = plan.explanation
    assert ex["rule"] == "slps-support-day" and isinstance(ex["rule_line"], int)
    assert "category self_harm is listed" in ex["matched_because"]
    assert ex["considered"][0] == {
        "rule": "slps-self-harm-after-hours", "line": ex["considered"][0]["line"],
        "matched": False, "why": "severity 2 not in 3, 4"}
    assert ex["considered"][1] == {
        "rule": "slps-life-safety-violence", "line": ex["considered"][1]["line"],
        "matched": False, "why": "category self_harm not in other, threat, weapon"}
    assert ex["considered"][-1]["rule"] == "slps-support-day"
    assert ex["considered"][-1]["matched"] is True
    by_key = {c["contact"]: c for c in ex["contacts"]}
    assert by_key["slps-roosevelt-counselor"]["alerted"] is True
    assert by_key["slps-roosevelt-counselor"]["step"] == 1
    assert by_key["slpd-liaison"] == {
        "contact": "slpd-liaison", "contact_id": by_key["slpd-liaison"]["contact_id"],
        "name": "SLPD school liaison desk (demo)", "role": "police_liaison",
        "alerted": False, "why": "rule slps-support-day does not alert police"}
    assert by_key["slps-safety-desk"]["alerted"] is False
    assert "does not alert safety teams" in by_key["slps-safety-desk"]["why"]
    assert by_key["slps-support-lead"]["step"] == 2
    assert by_key["slps-oncall"]["alerted"] is False
    assert ex["time"] == "school_hours" and ex["policy_version"] >= 1
    assert ex["fallback_used"] is False


def test_explanation_contains_no_tip_content(db_session, vault, queue, demo_policy):
    r = make_tip(db_session, vault, queue, body="ZEBRA-91 is hiding a knife",
                 school_code="slps-soldan", category=Category.WEAPON)
    db_session.flush()
    tip_job = db_session.get(RoutingJob, r.job_id)
    plan = PolicyPlanner(demo_policy).plan(db_session, tip_job.tip, TUESDAY_10AM)
    assert "ZEBRA" not in repr(plan.explanation)
    assert plan.rule == "slps-violence"


def test_unknown_school_is_refused(db_session, demo_policy):
    with pytest.raises(UnknownPlace):
        plan_for(db_session, demo_policy, school_code="nope", district_code=None,
                 category="threat", severity=3, at=TUESDAY_10AM)
    with pytest.raises(UnknownPlace):
        plan_for(db_session, demo_policy, school_code="slps-soldan", district_code="stlco-demo",
                 category="threat", severity=3, at=TUESDAY_10AM)


def test_tip_without_school_goes_to_every_district_fallback(db_session, demo_policy):
    plan = plan_for(db_session, demo_policy, school_code=None, district_code=None,
                    category="weapon", severity=4, at=SATURDAY_2AM)
    keys = {db_session.get(Contact, e.contact_id).key for e in plan.steps[0].entries}
    assert keys == {"slps-oncall", "slps-support-lead", "cty-oncall"}
    assert plan.rule == "no-school"
    assert plan.steps[0].repeat_every == timedelta(minutes=2)  # life-safety repeats
    assert plan.steps[0].ack_within == timedelta(minutes=10)
    assert not any(db_session.get(Contact, e.contact_id).role == "police_liaison"
                   for s in plan.steps for e in s.entries)
    low = plan_for(db_session, demo_policy, school_code=None, district_code=None,
                   category="bullying", severity=1, at=SATURDAY_2AM)
    assert low.steps[0].repeat_every is None


def test_tip_with_district_but_no_school_goes_to_that_district_fallback(db_session,
                                                                        demo_policy):
    plan = plan_for(db_session, demo_policy, school_code=None, district_code="stlco-demo",
                    category="threat", severity=3, at=TUESDAY_10AM)
    keys = {db_session.get(Contact, e.contact_id).key for e in plan.steps[0].entries}
    assert keys == {"cty-oncall"}


def test_rule_that_finds_nobody_falls_back_to_district(db_session, demo_policy):
    # every contact of a brand-new school is missing: the rule's role targets find no one
    bind(db_session)
    slps = db_session.execute(select(District).where(District.code == "slps")).scalar_one()
    school = SchoolFactory(code="slps-new", district=slps)
    plan = plan_for(db_session, demo_policy, school_code=school.code, district_code=None,
                    category="bullying", severity=1, at=TUESDAY_10AM)
    keys = {db_session.get(Contact, e.contact_id).key for s in plan.steps for e in s.entries}
    # slps-support-day step 2 names the support lead explicitly, so someone is still alerted
    assert keys == {"slps-support-lead"}
    for c in db_session.execute(select(Contact).where(Contact.key == "slps-support-lead")):
        c[0].active = False
    db_session.flush()
    plan = plan_for(db_session, demo_policy, school_code=school.code, district_code=None,
                    category="bullying", severity=1, at=TUESDAY_10AM)
    keys = {db_session.get(Contact, e.contact_id).key for s in plan.steps for e in s.entries}
    assert keys == {"slps-oncall"}
    assert plan.explanation["fallback_used"] is True
    lead = next(c for c in plan.explanation["contacts"] if c["contact"] == "slps-support-lead")
    assert lead["alerted"] is False and "inactive" in lead["why"]


ON_CALL_POLICY = """
districts:
  d-oc:
    school_hours: [{days: mon-fri, start: "08:00", end: "16:00"}]
    fallback: [oc-desk]
    rules:
      - name: oc-all
        default: true
        steps:
          - alert: [{role: district_oncall, on_call_only: true}, {role: counselor}]
            channels: [sms]
            ack_within: 10m
"""


def test_on_call_hours_of_contacts_are_respected(db_session, vault):
    bind(db_session)
    school = SchoolFactory(code="oc-school", district__code="d-oc",
                           district__timezone="America/Chicago")
    ContactFactory(key="oc-desk", role="district_oncall", district=school.district)
    ContactFactory(key="oc-night", role="district_oncall", schools=[school],
                   on_call={"windows": [{"days": "fri", "start": "18:00", "end": "06:00"}]})
    ContactFactory(key="oc-day", role="district_oncall", schools=[school],
                   on_call={"windows": [{"days": "mon-fri", "start": "08:00", "end": "18:00"}]})
    ContactFactory(key="oc-counselor", role="counselor", schools=[school])
    db_session.flush()
    policy = parse_policy(ON_CALL_POLICY, "oc.yaml")

    def alerted(at):
        plan = plan_for(db_session, policy, school_code="oc-school", district_code=None,
                        category="other", severity=2, at=at)
        return {db_session.get(Contact, e.contact_id).key for s in plan.steps
                for e in s.entries}, plan

    keys, plan = alerted(SATURDAY_2AM)  # Friday-night window wraps past midnight
    assert keys == {"oc-night", "oc-counselor"}
    day = next(c for c in plan.explanation["contacts"] if c["contact"] == "oc-day")
    assert day["alerted"] is False and "not on call at Sat 02:00" in day["why"]
    keys, _ = alerted(TUESDAY_10AM)
    assert keys == {"oc-day", "oc-counselor"}


def test_policy_planner_routes_a_tip_to_exactly_the_rule_contacts(db_session, vault, queue,
                                                                   demo_policy):
    r = make_tip(db_session, vault, queue, school_code="cty-northview",
                 category=Category.WEAPON, severity=Severity.HIGH)
    db_session.commit()
    result = route_job(db_session, r.job_id, PolicyPlanner(demo_policy), queue, TUESDAY_10AM)
    assert result.routed
    rows = db_session.execute(select(Dispatch).where(Dispatch.tip_id == r.tip_id)).scalars()
    got = {(db_session.get(Contact, d.contact_id).key, d.step_index, d.status) for d in rows}
    assert got == {
        ("cty-northview-counselor", 0, "active"),
        ("cty-northview-principal", 0, "active"),
        ("stlco-liaison", 0, "active"),
        ("cty-oncall", 1, "scheduled"),
    }
    job = db_session.get(RoutingJob, r.job_id)
    assert job.explanation["rule"] == "cty-violence"
    assert job.status == "done"


def test_services_planner_picks_policy_when_loaded(db_session, demo_directory, settings):
    from tipline.context import Services

    svc = Services(settings=settings, db=None, vault=None, queue=None)  # type: ignore[arg-type]
    assert isinstance(svc.planner(db_session), DirectoryPlanner)
    load_policy_file(db_session, POLICY_FILE, loaded_by="test")
    db_session.flush()
    assert isinstance(svc.planner(db_session), PolicyPlanner)


def test_engine_error_falls_back_to_directory(db_session, vault, queue, demo_policy,
                                              monkeypatch):
    import tipline.routing.engine as engine

    def boom(*a, **k):
        raise RuntimeError("bug")

    monkeypatch.setattr(engine, "plan_for_place", boom)
    r = make_tip(db_session, vault, queue, school_code="slps-soldan")
    db_session.flush()
    tip = db_session.get(RoutingJob, r.job_id).tip
    plan = PolicyPlanner(demo_policy).plan(db_session, tip, TUESDAY_10AM)
    assert plan.rule == "directory-default" and plan.steps
    assert plan.explanation["note"].startswith("policy engine error")


def test_explain_matches_the_engine(db_session, demo_policy):
    ex = explain(db_session, demo_policy, school_code="slps-carnahan", district_code=None,
                 category="threat", severity=4, at=TUESDAY_10AM)
    assert ex["rule"] == "slps-life-safety-violence"
    assert ex["steps"][0]["repeat_every"] == "2m"
    assert ex["steps"][0]["channels"] == ["voice", "sms"]
    # Nothing was written.
    assert db_session.execute(select(Dispatch)).first() is None


def test_every_school_of_the_demo_reaches_someone_for_every_tip(db_session, demo_policy):
    schools = db_session.execute(select(School.code)).scalars().all()
    for code, category, severity, at in product(schools, CATEGORIES, range(1, 5),
                                               TIMES.values()):
        plan = plan_for(db_session, demo_policy, school_code=code, district_code=None,
                        category=category, severity=severity, at=at)
        assert plan.steps and plan.steps[0].entries, (code, category, severity)
        assert plan.steps[0].delay == timedelta(0)


def _dispatched(db_session, tip_id):
    rows = db_session.execute(select(Dispatch).where(Dispatch.tip_id == tip_id)).scalars()
    return {(db_session.get(Contact, d.contact_id).key, d.step_index, d.status) for d in rows}


@pytest.mark.parametrize(("fields", "expected_rule", "expected"), [
    (
        {"school": "slps-roosevelt", "category": "threat"},
        "slps-violence",
        {("slps-safety-desk", 0, "active"), ("slps-safety-supervisor", 0, "active"),
         ("slps-roosevelt-counselor", 0, "active"), ("slpd-liaison", 0, "active"),
         ("slps-oncall", 1, "scheduled")},
    ),
    (
        {"school": "slps-soldan", "category": "bullying", "when": "", "where": "",
         "body": "Some kids keep posting mean things about my friend"},
        "slps-support-day",
        {("slps-soldan-counselor", 0, "active"), ("slps-support-lead", 1, "scheduled")},
    ),
    (
        {"school": "none", "category": "self_harm", "when": "", "where": "",
         "body": "My friend keeps saying she wants to die"},
        "no-school",
        {("slps-oncall", 0, "active"), ("slps-support-lead", 0, "active"),
         ("cty-oncall", 0, "active")},
    ),
])
def test_web_tip_with_demo_policy_reaches_exactly_the_expected_contacts(
    app, client, db_session, queue, demo_directory, fields, expected_rule, expected
):
    from tests.intake.helpers import post_tip
    from tipline.tips.models import Tip

    load_policy_file(db_session, POLICY_FILE, loaded_by="test")
    db_session.commit()
    resp = post_tip(client, **fields)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    (tip,) = db_session.execute(select(Tip)).scalars().all()
    ((name, (job_id,)),) = queue.sent
    assert name == "tipline.route_job"
    planner = app.extensions["tipline"].planner(db_session)
    assert isinstance(planner, PolicyPlanner)
    result = route_job(db_session, job_id, planner, queue, TUESDAY_10AM)
    assert result.routed
    assert _dispatched(db_session, tip.id) == expected
    job = db_session.get(RoutingJob, job_id)
    assert job.explanation["rule"] == expected_rule and job.status == "done"
    # Life-safety alerts go out on the urgent queue (tipline.deliver_urgent).
    sent = sorted(a[0] for n, a in queue.sent
                  if n in ("tipline.deliver_alert", "tipline.deliver_urgent"))
    rows = db_session.execute(
        select(AlertDelivery).join(Dispatch).where(Dispatch.tip_id == tip.id)
    ).scalars().all()
    assert sent == sorted(r.id for r in rows)
    # every contact alerted at once has at least one delivery; scheduled steps have none yet
    assert {(db_session.get(Contact, r.dispatch.contact_id).key, 0, "active") for r in rows} \
        == {e for e in expected if e[2] == "active"}
    assert "police_liaison" not in {c["role"] for c in job.explanation["contacts"]
                                    if c["alerted"]} or fields["category"] == "threat"


def test_policy_finding_nobody_hands_over_to_the_directory_default(db_session, vault, queue,
                                                                     demo_policy):
    r = make_tip(db_session, vault, queue, school_code=None, category=Category.BULLYING,
                 severity=Severity.LOW)
    db_session.flush()
    for key in ("slps-oncall", "slps-support-lead", "cty-oncall"):
        db_session.execute(select(Contact).where(Contact.key == key)).scalar_one().active = False
    db_session.flush()
    tip = db_session.get(RoutingJob, r.job_id).tip
    assert not plan_for(db_session, demo_policy, school_code=None, district_code=None,
                        category="bullying", severity=1, at=TUESDAY_10AM).steps
    plan = PolicyPlanner(demo_policy).plan(db_session, tip, TUESDAY_10AM)
    assert plan.rule == "directory-default"
    assert plan.explanation["note"] == "policy found nobody; directory default"
    assert plan.explanation["policy_explanation"]["rule"] == "no-school"


def _police_keys(db_session, plan):
    return {db_session.get(Contact, e.contact_id).key for s in plan.steps for e in s.entries
            if db_session.get(Contact, e.contact_id).role == "police_liaison"}


@pytest.mark.parametrize("when", list(TIMES))
@pytest.mark.parametrize("severity", [1, 2, 3, 4])
@pytest.mark.parametrize("category", NON_VIOLENT)
def test_contact_turned_police_after_load_is_never_alerted_for_support(
    db_session, demo_policy, category, severity, when
):
    # The checker passed the policy; later the directory makes the district on-call (named by
    # the SLPS support rules and in the fallback) a police liaison. The engine must still keep
    # police out of non-violent SLPS tips, at every severity and hour.
    db_session.execute(select(Contact).where(Contact.key == "slps-oncall")).scalar_one().role = \
        "police_liaison"
    db_session.flush()
    plan = plan_for(db_session, demo_policy, school_code="slps-roosevelt", district_code=None,
                    category=category, severity=severity, at=TIMES[when])
    assert plan.steps, "someone must still be alerted"
    assert _police_keys(db_session, plan) == set()
    note = next(c for c in plan.explanation["contacts"] if c["contact"] == "slps-oncall")
    assert note["alerted"] is False
    # where the matched rule names the on-call, the guard is what kept them out
    named = any(t.contact == "slps-oncall" for s in demo_policy.rule(plan.rule).steps
                for t in s.targets)
    assert (f"never alerted for {category}" in note["why"]) is named


def test_police_in_a_fallback_list_is_kept_out_of_a_self_harm_tip_without_school(
    db_session, demo_policy
):
    # A tip naming no school goes to every district's fallback; if one of those contacts has
    # become police since the policy was loaded, a self-harm tip must still not reach them.
    db_session.execute(select(Contact).where(Contact.key == "cty-oncall")).scalar_one().role = \
        "police_liaison"
    db_session.flush()
    plan = plan_for(db_session, demo_policy, school_code=None, district_code=None,
                    category="self_harm", severity=4, at=SATURDAY_2AM)
    assert _police_keys(db_session, plan) == set()
    assert {db_session.get(Contact, e.contact_id).key for e in plan.steps[0].entries} == \
        {"slps-oncall", "slps-support-lead"}
    # a weapon is a police matter in both districts: the same contact is alerted then
    plan = plan_for(db_session, demo_policy, school_code=None, district_code=None,
                    category="weapon", severity=4, at=SATURDAY_2AM)
    assert _police_keys(db_session, plan) == {"cty-oncall"}


SHIFT_POLICY = """
districts:
  d-dst:
    school_hours: [{days: mon-fri, start: "07:00", end: "17:00"}]
    fallback: [dst-desk]
    rules:
      - name: dst-shifts
        default: true
        steps:
          - alert: [{role: district_oncall, on_call_only: true}]
            channels: [sms]
            ack_within: 10m
"""


@pytest.mark.parametrize("night", [
    datetime(2026, 3, 8, 4, 0, tzinfo=UTC),  # spring forward: 02:00 CST -> 03:00 CDT
    datetime(2026, 11, 1, 4, 0, tzinfo=UTC),  # fall back: 01:00-02:00 happens twice
])
def test_on_call_shifts_hand_over_across_the_dst_switch_night(db_session, night):
    # A night shift that wraps past midnight and a day shift; every five minutes of the switch
    # night exactly one of them is alerted by the rule, never nobody, never the fallback.
    bind(db_session)
    school = SchoolFactory(code="dst-school", district__code="d-dst",
                           district__timezone="America/Chicago")
    ContactFactory(key="dst-desk", role="district_admin_desk", district=school.district)
    ContactFactory(key="dst-night", role="district_oncall", schools=[school],
                   on_call={"windows": [{"days": "daily", "start": "20:00", "end": "08:00"}]})
    ContactFactory(key="dst-day", role="district_oncall", schools=[school],
                   on_call={"windows": [{"days": "daily", "start": "08:00", "end": "20:00"}]})
    db_session.flush()
    policy = parse_policy(SHIFT_POLICY, "dst.yaml")
    seen = set()
    for minutes in range(0, 16 * 60, 5):
        at = night + timedelta(minutes=minutes)
        plan = plan_for(db_session, policy, school_code="dst-school", district_code=None,
                        category="self_harm", severity=4, at=at)
        keys = {db_session.get(Contact, e.contact_id).key for s in plan.steps
                for e in s.entries}
        assert len(keys) == 1 and keys <= {"dst-night", "dst-day"}, (at, keys)
        assert plan.explanation["fallback_used"] is False
        seen |= keys
    assert seen == {"dst-night", "dst-day"}


# -- the directory's police guard, at routing time (the last line) ---------------------------
UNGUARDED_SUPPORT_TO_POLICE = """\
policy: stored before the directory guard
districts:
  slps:
    school_hours: [{days: mon-fri, start: "07:00", end: "17:00"}]
    fallback: [slps-oncall, slpd-liaison]
    rules:
      - name: everything-to-police
        default: true
        steps:
          - alert: [{role: counselor}, {contact: slpd-liaison}]
            ack_within: 10m
"""


@pytest.mark.parametrize("category", NON_VIOLENT)
def test_engine_keeps_police_out_by_the_directory_even_if_the_file_has_no_guard(
    db_session, demo_directory, category
):
    # A policy parsed without the checker (e.g. stored before the guard came from the
    # directory): SLPS's record says police_involvement: limited, so no support tip, with or
    # without a school, reaches police; a weapon still does.
    policy = parse_policy(UNGUARDED_SUPPORT_TO_POLICE, "old.yaml")
    assert policy.districts["slps"].police_only_for is None
    for school, district in (("slps-roosevelt", None), (None, "slps"), (None, None)):
        plan = plan_for(db_session, policy, school_code=school, district_code=district,
                        category=category, severity=4, at=SATURDAY_2AM)
        assert plan.steps, (school, district)
        assert _police_keys(db_session, plan) == set(), (school, district)
    plan = plan_for(db_session, policy, school_code="slps-roosevelt", district_code=None,
                    category="weapon", severity=4, at=SATURDAY_2AM)
    assert _police_keys(db_session, plan) == {"slpd-liaison"}


def test_engine_follows_a_change_of_police_involvement(db_session, demo_directory):
    policy = parse_policy(UNGUARDED_SUPPORT_TO_POLICE, "old.yaml")
    slps = db_session.execute(select(District).where(District.code == "slps")).scalar_one()
    slps.police_involvement = "partnership"
    db_session.flush()
    plan = plan_for(db_session, policy, school_code="slps-roosevelt", district_code=None,
                    category="bullying", severity=2, at=SATURDAY_2AM)
    assert _police_keys(db_session, plan) == {"slpd-liaison"}
    slps.police_involvement = "none"
    db_session.flush()
    plan = plan_for(db_session, policy, school_code="slps-roosevelt", district_code=None,
                    category="weapon", severity=4, at=SATURDAY_2AM)
    assert _police_keys(db_session, plan) == set() and plan.steps
    note = next(c for c in plan.explanation["contacts"] if c["contact"] == "slpd-liaison")
    assert note["alerted"] is False and "police_involvement: none" in note["why"]
