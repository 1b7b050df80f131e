"""Issue 17's rule kinds under the SLPS demo: the reporter's language, outside partners,
on-call rotas (turns, swaps, holidays, gaps) and a district's commitments (each broken once,
refused with its line)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from tests.routing.test_policy import errors_of, line_of
from tipline.directory.loader import DirectoryError, load_directory
from tipline.directory.models import Contact, OnCallRota
from tipline.directory.partners import WITHHELD, school_shown
from tipline.directory.rotas import RotaError, gaps, on_call, rota_gaps, spec
from tipline.routing.engine import plan_for
from tipline.routing.policy import Policy, active_policy, load_policy_file, parse_policy
from tipline.routing.services import alert_text

POLICY_FILE = Path(__file__).resolve().parents[2] / "config" / "policy.demo.yaml"
DEMO_TEXT = POLICY_FILE.read_text(encoding="utf-8")
CHICAGO = ZoneInfo("America/Chicago")
TUESDAY_10AM = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
SATURDAY_2AM = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


@pytest.fixture
def demo_policy(db_session, demo_directory) -> Policy:
    load_policy_file(db_session, POLICY_FILE, loaded_by="test")
    db_session.flush()
    policy = active_policy(db_session)
    assert policy is not None
    return policy


def _plan(db_session, policy, school, category, severity, at, language="en"):
    return plan_for(db_session, policy, school_code=school, district_code=None,
                    category=category, severity=severity, at=at, language=language)


def _alerted(plan) -> dict[str, dict]:
    return {c["contact"]: c for c in plan.explanation["contacts"] if c["alerted"]}


# -- the reporter's language ------------------------------------------------------------------
def test_bosnian_tip_goes_to_a_bosnian_speaking_counselor_where_there_is_one(
        db_session, demo_policy):
    plan = _plan(db_session, demo_policy, "slps-longmiddle", "bullying", 2, TUESDAY_10AM, "bs")
    assert plan.rule == "slps-bosnian"
    alerted = _alerted(plan)
    assert "slps-long-counselor" in alerted  # Emina Hodžić speaks bs
    assert "who speaks the reporter's language" in alerted["slps-long-counselor"]["why"]
    assert "slps-bias-interpreter" not in alerted
    assert plan.explanation["language"] == "bs"
    assert "the reporter wrote in bs" in plan.explanation["matched_because"]


def test_bosnian_tip_without_a_bosnian_speaker_gets_the_interpreter_partner(
        db_session, demo_policy):
    plan = _plan(db_session, demo_policy, "slps-roosevelt", "bullying", 2, TUESDAY_10AM, "bs")
    alerted = _alerted(plan)
    assert alerted["slps-bias-interpreter"]["step"] == 1
    assert "as no one above in this step could be" in alerted["slps-bias-interpreter"]["why"]
    assert alerted["slps-bias-interpreter"]["agreement"].startswith(
        "agreement: Bilingual International Assistance Services: no tip content; "
        "no school name")
    assert {"slps-roosevelt-counselor", "slps-roosevelt-social"} <= set(alerted)
    assert any("nobody who speaks bs" in s.get("note", "") for s in plan.explanation["steps"])


def test_the_same_tip_in_english_or_spanish_is_not_routed_by_the_bosnian_rule(
        db_session, demo_policy):
    for lang in ("en", "es"):
        plan = _plan(db_session, demo_policy, "slps-roosevelt", "bullying", 2, TUESDAY_10AM,
                     lang)
        assert plan.rule == "slps-support-day"
        assert "slps-bias-interpreter" not in _alerted(plan)
        why = next(c["why"] for c in plan.explanation["considered"]
                   if c["rule"] == "slps-bosnian")
        assert why == f"language {lang} not in bs"


def test_alert_says_which_language_the_reporter_used():
    _, text = alert_text("T-1234-AB", "bullying", 2, "Roosevelt High School", "4821", "bs")
    assert "The reporter wrote in Bosnian." in text
    _, text = alert_text("T-1234-AB", "bullying", 2, "Roosevelt High School", "4821", "en")
    assert "wrote in" not in text


# -- outside partners -------------------------------------------------------------------------
def test_partner_is_added_at_a_step_after_hours_for_self_harm(db_session, demo_policy):
    plan = _plan(db_session, demo_policy, "slps-vashon", "self_harm", 3, SATURDAY_2AM)
    assert plan.rule == "slps-self-harm-after-hours"
    alerted = _alerted(plan)
    assert alerted["slps-bjc-crisis"]["step"] == 2
    assert alerted["slps-bjc-crisis"]["partner"] is True
    assert "reference only (opens nothing without a staff account)" in \
        alerted["slps-bjc-crisis"]["agreement"]
    # never police for self-harm, at any hour
    assert not any(c["role"] == "police_liaison" for c in alerted.values())


def test_partner_gets_no_content_even_where_the_step_includes_it(db_session, demo_policy):
    text = DEMO_TEXT.replace(
        "          - alert: [{contact: slps-bjc-crisis}, {contact: slps-support-lead}]\n"
        "            channels: [voice, sms]\n",
        "          - alert: [{contact: slps-bjc-crisis}, {contact: slps-support-lead}]\n"
        "            channels: [voice, sms]\n            include_content: true\n", 1)
    assert text != DEMO_TEXT
    policy = parse_policy(text, "p.yaml")
    plan = _plan(db_session, policy, "slps-vashon", "self_harm", 3, SATURDAY_2AM)
    step2 = {db_session.get(Contact, e.contact_id).key: e for e in plan.steps[1].entries}
    assert step2["slps-bjc-crisis"].include_content is False  # agreement: no content
    assert step2["slps-support-lead"].include_content is True  # district staff


def test_partner_alert_names_no_school_unless_the_agreement_allows_it():
    assert school_shown("partner", {"school": False}, "Vashon High School") == WITHHELD
    assert school_shown("partner", None, "Vashon High School") == WITHHELD  # default
    assert school_shown("partner", {"school": True}, "Vashon High School") == \
        "Vashon High School"
    assert school_shown("staff", None, "Vashon High School") == "Vashon High School"
    _, text = alert_text("T-1234-AB", "self_harm", 3, WITHHELD, "4821")
    assert "Vashon" not in text and WITHHELD in text


def test_directory_refuses_a_malformed_partner_agreement(db_session, demo_directory):
    base = {"key": "p1", "district": "slps", "name": "Partner", "role": "outside_partner",
            "sms": "+13145550190"}
    for item, message in [
        (base | {"kind": "vendor"}, "kind must be one of staff, partner"),
        (base | {"agreement": {"content": False}}, "only a partner (kind: partner) has"),
        (base | {"kind": "partner", "agreement": {"content": "yes"}},
         "agreement content must be true or false"),
        (base | {"kind": "partner", "agreement": {"share": True}},
         "unknown agreement field 'share'"),
    ]:
        with pytest.raises(DirectoryError, match=re.escape(message)):
            load_directory(db_session, {"contacts": [item]})


# -- on-call rotas ----------------------------------------------------------------------------
ROTA = spec("nights", "weekly", "17:00", "2026-08-17", ["a", "b", "c"], [], [])


def _at(y, m, d, hh, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=CHICAGO)


def test_weekly_turns_change_at_the_handover_time():
    assert on_call(ROTA, _at(2026, 8, 17, 18))[0] == "a"
    assert on_call(ROTA, _at(2026, 8, 24, 16, 59))[0] == "a"  # before Monday's handover
    assert on_call(ROTA, _at(2026, 8, 24, 17))[0] == "b"
    assert on_call(ROTA, _at(2026, 8, 31, 17))[0] == "c"
    assert on_call(ROTA, _at(2026, 9, 7, 17))[0] == "a"  # and round again


def test_nightly_turns_swaps_and_holidays():
    nightly = spec("n", "nightly", "18:00", date(2026, 12, 1), ["a", "b"],
                   [{"from": "2026-12-03", "to": "2026-12-04", "contact": "z"}],
                   [{"date": "2026-12-24", "contact": "h"},
                    {"date": "2026-12-25", "contact": None}])
    assert on_call(nightly, _at(2026, 12, 1, 19))[0] == "a"
    assert on_call(nightly, _at(2026, 12, 2, 2))[0] == "a"  # 2 a.m. is still the 1st's night
    assert on_call(nightly, _at(2026, 12, 2, 19))[0] == "b"
    assert on_call(nightly, _at(2026, 12, 3, 19)) == ("z", "swap 2026-12-03 to 2026-12-04")
    assert on_call(nightly, _at(2026, 12, 24, 20)) == ("h", "holiday 2026-12-24 cover")
    assert on_call(nightly, _at(2026, 12, 25, 20)) == (None, "holiday 2026-12-25 with no cover")
    assert on_call(nightly, _at(2026, 11, 30, 20)) == (None, "rota starts on 2026-12-01")


def test_a_gap_is_warned_about_before_it_begins():
    r = spec("n", "weekly", "17:00", "2026-12-07", ["a", "b"], [],
             [{"date": "2026-12-24", "contact": None}])
    found = gaps(r, {"a": True, "b": True}, _at(2026, 12, 10, 9))
    assert found == ["rota n has nobody on call from Thu 2026-12-24 17:00 (holiday "
                     "2026-12-24 with no cover); its tips would go to the district's fallback "
                     "contacts"]
    inactive = gaps(r, {"a": True, "b": False}, _at(2026, 12, 10, 9), timedelta(days=7))
    assert inactive and "names b from Mon 2026-12-14 17:00" in inactive[0]
    assert "inactive or without a number or email" in inactive[0]
    assert gaps(r, {"a": True, "b": True}, _at(2026, 12, 26, 9)) == []


@pytest.mark.parametrize(("fields", "message"), [
    (("weekly", "17:00", "2026-08-17", [], [], []), "at least one member"),
    (("monthly", "17:00", "2026-08-17", ["a"], [], []), "weekly or nightly"),
    (("weekly", "5pm", "2026-08-17", ["a"], [], []), "24-hour time"),
    (("weekly", "17:00", "2026-08-17", ["a"], [{"from": "2026-09-02", "to": "2026-09-01",
                                                 "contact": "a"}], []), "ends before"),
    (("weekly", "17:00", "someday", ["a"], [], []), "must be a date"),
])
def test_a_malformed_rota_is_refused(fields, message):
    with pytest.raises(RotaError, match=message):
        spec("r", *fields)


def test_rota_target_alerts_whoever_is_on_call_that_week(db_session, demo_policy):
    # Tue 2026-12-01 21:00: turn 15 of the rota since Mon 2026-08-17 -> members[15 % 3]
    at = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
    plan = _plan(db_session, demo_policy, "slps-soldan", "substance", 2, at)
    assert plan.rule == "slps-support-after-hours"
    first = {db_session.get(Contact, e.contact_id).key for e in plan.steps[0].entries}
    assert first == {"slps-night-brown"}
    assert "weekly turn from 2026-11-30 17:00" in _alerted(plan)["slps-night-brown"]["why"]
    next_week = _plan(db_session, demo_policy, "slps-soldan", "substance", 2,
                      at + timedelta(days=7))
    assert {db_session.get(Contact, e.contact_id).key for e in next_week.steps[0].entries} \
        == {"slps-night-begic"}


def test_a_rota_gap_at_alert_time_falls_back_to_the_district_fallback(db_session, demo_policy):
    rota = db_session.execute(
        select(OnCallRota).where(OnCallRota.key == "slps-nights")).scalar_one()
    rota.holidays = [{"date": "2026-11-27", "contact": None}]
    db_session.flush()
    plan = _plan(db_session, demo_policy, "slps-soldan", "substance", 2, SATURDAY_2AM)
    first = {db_session.get(Contact, e.contact_id).key for e in plan.steps[0].entries}
    assert first == {"slps-oncall", "slps-support-lead"}  # the district's fallback
    why = _alerted(plan)["slps-oncall"]["why"]
    assert "rota slps-nights has nobody on call at Sat 2026-11-28 02:00" in why
    assert "the district's fallback contact" in why
    warnings = rota_gaps(db_session, "slps-nights", datetime(2026, 11, 20, tzinfo=UTC))
    assert any("nobody on call from Fri 2026-11-27 17:00" in w for w in warnings)


def test_directory_refuses_a_rota_naming_another_districts_contact(db_session, demo_directory):
    with pytest.raises(DirectoryError, match="'cty-oncall' is not a contact of district slps"):
        load_directory(db_session, {"rotas": [{
            "key": "x", "district": "slps", "turn": "weekly", "starts_on": "2026-08-17",
            "members": ["slps-night-brown", "cty-oncall"]}]})


# -- commitments ------------------------------------------------------------------------------
def test_the_demo_keeps_its_commitments_and_explain_says_so(db_session, demo_policy):
    plan = _plan(db_session, demo_policy, "slps-roosevelt", "basic_needs", 2, TUESDAY_10AM)
    assert plan.rule == "slps-basic-needs-day"
    promises = plan.explanation["commitments"]
    assert promises[0].startswith("no police for abuse, basic_needs, bullying, dating_violence")
    assert "life-safety alerts repeat until a person acknowledges" in promises[2]


def test_commitment_no_police_is_refused_naming_rule_and_line():
    text = DEMO_TEXT.replace(
        "          - alert: [{role: transition_team}, {role: counselor}]\n",
        "          - alert: [{role: transition_team}, {role: counselor}, "
        "{role: police_liaison}]\n", 1)
    errors = errors_of(text)
    line = line_of(text, "{role: police_liaison}]")
    assert f"p.yaml:{line}: rule 'slps-basic-needs-day' alerts police (role police_liaison) " \
           "for basic_needs, but district slps commits to no police for them " \
           f"(commitments, line {line_of(text, 'commitments:')})" in errors


def test_commitment_no_police_by_contact_is_refused_against_the_directory(
        db_session, demo_directory):
    step = "          - alert: [{role: family_specialist}, {role: counselor}, {role: social_worker}"
    text = DEMO_TEXT.replace(step + "]\n", step + ", {contact: slpd-liaison}]\n", 1)
    assert text != DEMO_TEXT
    errors = errors_of(text, db_session)
    assert any(f"p.yaml:{line_of(text, 'social_worker}, {contact: slpd-liaison}')}: rule "
               "'slps-dating-violence-day' alerts police (slpd-liaison) for dating_violence, "
               "but district slps commits to no police for them" in e for e in errors), errors


def test_commitment_support_in_every_plan_is_refused_naming_rule_and_line():
    text = DEMO_TEXT.replace(
        "          - alert: [{role: transition_team}, {role: counselor}]\n"
        "            channels: [sms, voice, email]\n"
        "            ack_within: 30m\n"
        "          - alert: [{role: family_specialist}, {contact: slps-support-lead}]\n",
        "          - alert: [{role: safety_team}]\n"
        "            channels: [sms, voice, email]\n"
        "            ack_within: 30m\n"
        "          - alert: [{role: safety_team}]\n", 1)
    assert text != DEMO_TEXT
    (err,) = errors_of(text)
    assert err.startswith(f"p.yaml:{line_of(text, 'name: slps-basic-needs-day')}: rule "
                          "'slps-basic-needs-day' alerts no counselor or family_specialist or "
                          "social_worker or transition_team for basic_needs, but district slps "
                          "commits to one in every plan for them")


def test_commitment_support_counts_a_rota_of_social_workers(db_session, demo_directory):
    # slps-support-after-hours alerts only the rota and the support lead: accepted because
    # every member of slps-nights is a social worker; a rota of others would not be.
    rota_members = db_session.execute(select(Contact).where(
        Contact.key.in_(["slps-night-brown", "slps-night-begic", "slps-night-flores"]))).scalars()
    for c in rota_members:
        c.role = "district_oncall"
    db_session.flush()
    errors = errors_of(DEMO_TEXT, db_session)
    assert any("rule 'slps-support-after-hours' alerts no counselor" in e for e in errors)


def test_commitment_life_safety_ack_is_refused_naming_the_step_line():
    slow = DEMO_TEXT.replace(
        "              - {contact: slps-safety-desk}\n"
        "            channels: [voice, sms]\n"
        "            ack_within: 5m\n",
        "              - {contact: slps-safety-desk}\n"
        "            channels: [voice, sms]\n"
        "            ack_within: 20m\n", 1)
    assert slow != DEMO_TEXT
    errors = errors_of(slow)
    assert any("rule 'slps-life-safety-support' takes life-safety tips, but its first step "
               "waits 20 minutes for an acknowledgement; district slps commits to a human "
               "acknowledgement within 5 minutes" in e for e in errors), errors
    once = DEMO_TEXT.replace(
        "              - {contact: slpd-liaison}\n"
        "            channels: [voice, sms]\n"
        "            ack_within: 5m\n"
        "            repeat_every: 2m\n",
        "              - {contact: slpd-liaison}\n"
        "            channels: [voice, sms]\n"
        "            ack_within: 5m\n", 1)
    assert once != DEMO_TEXT
    errors = errors_of(once)
    line = line_of(once, "name: slps-life-safety-violence") + 5  # the first step's line
    assert any(e.startswith(f"p.yaml:{line}: rule 'slps-life-safety-violence' takes "
                            "life-safety tips, but its first step has no repeat_every")
               for e in errors), errors


def test_commitments_field_errors_name_the_line():
    bad = DEMO_TEXT.replace("      life_safety_ack_within: 5m\n",
                            "      life_safety_ack_within: 5m\n      no_sros: true\n", 1)
    assert any("unknown field 'no_sros' in commitments" in e for e in errors_of(bad))
    bad = DEMO_TEXT.replace("support_roles: [counselor,", "support_roles: [police_liaison,", 1)
    assert any("'police_liaison' is not a student-support role" in e for e in errors_of(bad))


def test_engine_holds_police_back_for_committed_categories(db_session, demo_directory):
    # a stored policy that predates a check still cannot alert police for them
    from tipline.routing.engine import _guards, police_blocked

    policy = parse_policy(DEMO_TEXT, "p.yaml")
    assert "commitments, no police for" in str(
        police_blocked("basic_needs", _guards([policy.districts["slps"]], [])))
    assert police_blocked("weapon", _guards([policy.districts["slps"]], [])) is None


def test_time_helpers_are_local():
    assert ROTA.handover == time(17, 0)


def test_policy_check_warns_about_a_rota_gap_before_it_begins(db_session, demo_directory):
    from tipline.routing.policy import policy_warnings

    policy = parse_policy(DEMO_TEXT, "policy.demo.yaml")
    assert not any("rota" in w for w in policy_warnings(db_session, policy))
    rota = db_session.execute(
        select(OnCallRota).where(OnCallRota.key == "slps-nights")).scalar_one()
    soon = (datetime.now(UTC) + timedelta(days=3)).date()
    rota.holidays = [{"date": soon.isoformat(), "contact": None}]
    db_session.flush()
    (warning,) = [w for w in policy_warnings(db_session, policy) if "rota" in w]
    assert warning.startswith(f"policy.demo.yaml: warning: rota slps-nights has nobody on call "
                              f"from {soon:%a %Y-%m-%d} 17:00")


def test_every_category_is_a_metrics_label():
    """A new category (revision 0014) is counted under its own name, not as "other"."""
    from tipline.ops.metrics import TIP_CATEGORIES
    from tipline.tips.models import Category

    assert {c.value for c in Category} == TIP_CATEGORIES


def test_delivered_alerts_withhold_the_school_from_a_partner_and_name_the_language(
        db_session, vault, queue, demo_directory):
    from tests.routing.delivery_support import RecordingSender, StepSpec, deliveries, route
    from tipline.db import utcnow
    from tipline.routing.services import deliver_alert
    from tipline.tips.models import Tip

    secret = "PANGOLIN-17 sleeps in the car"
    r = route(db_session, vault, queue, [StepSpec(("slps-hopewell", "slps-bjc-crisis",
                                                   "slps-roosevelt-counselor"),
                                                  channels=("sms",), include_content=True)],
              body=secret)
    db_session.get(Tip, r.tip_id).language = "bs"
    db_session.commit()
    senders = {"sms": RecordingSender(), "voice": RecordingSender(), "email": RecordingSender()}
    for d in deliveries(db_session, r.tip_id):
        deliver_alert(db_session, d.id, senders, utcnow())
    by_number = {a.recipient: a.text for a in senders["sms"].sent}
    hopewell, bjc, counselor = (by_number["+13145550132"], by_number["+13145550131"],
                                by_number["+13145550101"])
    assert "Roosevelt High School" in hopewell  # its agreement names the school
    assert "Roosevelt" not in bjc and WITHHELD in bjc  # the default agreement does not
    assert "Roosevelt High School" in counselor
    for text in (hopewell, bjc, counselor):
        assert "The reporter wrote in Bosnian." in text
    # include_content reaches the district's counselor only, never a partner without it
    assert secret in counselor and secret not in hopewell and secret not in bjc


def test_rota_and_language_syntax_errors_name_the_line(db_session, demo_directory):
    unknown = DEMO_TEXT.replace("{rota: slps-nights}, {role: counselor}, {contact: slps-oncall}",
                                "{rota: slps-days}, {role: counselor}, {contact: slps-oncall}", 1)
    assert unknown != DEMO_TEXT
    errors = errors_of(unknown, db_session)
    assert any(e.startswith(f"p.yaml:{line_of(unknown, '{rota: slps-days}')}: rule "
                            "'slps-self-harm-after-hours': unknown rota 'slps-days'")
               for e in errors), errors
    both = DEMO_TEXT.replace("{rota: slps-nights}, {role: counselor}, {contact: slps-oncall}",
                             "{rota: slps-nights, role: counselor}, {contact: slps-oncall}", 1)
    assert any("names exactly one of role, contact or rota" in e for e in errors_of(both))
    speaks = DEMO_TEXT.replace("{role: counselor, speaks: reporter}",
                               "{role: counselor, speaks: Bosnian}", 1)
    assert any("speaks is a language code like bs" in e for e in errors_of(speaks))
    lang = DEMO_TEXT.replace("languages: [bs]", "languages: [Bosnian]", 1)
    assert any("languages are codes like en, es, bs" in e for e in errors_of(lang))
    # a language rule that overlaps others without a higher priority is refused
    overlap = DEMO_TEXT.replace("        priority: 50\n        match:\n          languages: [bs]",
                                "        priority: 10\n        match:\n          languages: [bs]",
                                1)
    assert overlap != DEMO_TEXT
    assert any("rule 'slps-bosnian' overlaps" in e or "overlaps rule 'slps-bosnian'" in e
               for e in errors_of(overlap))
