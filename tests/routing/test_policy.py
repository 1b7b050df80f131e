"""Policy files: parsing, every kind of validation error (with its line), loading, versions."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tipline.routing.models import RoutingPolicy
from tipline.routing.policy import (
    PolicyError,
    active_policy,
    load_policy,
    load_policy_file,
    parse_clock,
    parse_days,
    parse_duration,
    parse_policy,
    policy_warnings,
    validate_policy,
)

POLICY_FILE = Path(__file__).resolve().parents[2] / "config" / "policy.demo.yaml"

# A small valid policy against the demo directory; tests break one line at a time.
BASE = """\
policy: test
districts:
  slps:
    school_hours:
      - {days: mon-fri, start: "07:00", end: "17:00"}
    fallback: [slps-oncall]
    police_only_for: [weapon, threat]
    rules:
      - name: violence
        match: {categories: [weapon, threat]}
        steps:
          - alert: [{role: safety_team}, {contact: slpd-liaison}]
            channels: [sms, voice]
            ack_within: 10m
      - name: support
        match: {categories: [bullying, self_harm]}
        steps:
          - alert: [{role: counselor}]
            ack_within: 30m
      - name: fallback-rule
        default: true
        steps:
          - alert: [{contact: slps-oncall}]
            ack_within: 30m
"""


def errors_of(text: str, session=None) -> list[str]:
    with pytest.raises(PolicyError) as info:
        policy = parse_policy(text, "p.yaml")
        if session is not None:
            validate_policy(session, policy)
    assert info.value.errors, "a PolicyError always lists its errors"
    return info.value.errors


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_base_policy_is_valid(db_session, demo_directory):
    policy = parse_policy(BASE, "p.yaml")
    validate_policy(db_session, policy)
    assert [r.name for r in policy.districts["slps"].rules] == [
        "violence", "support", "fallback-rule"]
    assert policy.districts["slps"].rules[0].steps[0].ack_within == timedelta(minutes=10)


def test_demo_policy_is_valid_and_loads(db_session, demo_directory):
    row = load_policy_file(db_session, POLICY_FILE, loaded_by="test")
    assert row.active and row.version == 1 and len(row.sha256) == 64
    policy = active_policy(db_session)
    assert policy is not None and set(policy.districts) == {"slps", "stlco-demo"}
    assert policy.version == 1


def test_unknown_category_names_the_line():
    text = BASE.replace("[bullying, self_harm]", "[bullying, selfharm]")
    assert errors_of(text) == [
        f"p.yaml:{line_of(text, 'selfharm')}: unknown category 'selfharm' "
        "(known: weapon, threat, self_harm, bullying, abuse, substance, family_crisis, "
        "basic_needs, dating_violence, other)"]


def test_unknown_role_names_the_line():
    text = BASE.replace("{role: counselor}", "{role: counsellor}")
    (err,) = errors_of(text)
    assert err.startswith(f"p.yaml:{line_of(text, 'counsellor')}: unknown role 'counsellor'")


def test_unknown_contact_names_the_line(db_session, demo_directory):
    text = BASE.replace("{contact: slpd-liaison}", "{contact: slpd-liason}")
    assert errors_of(text, db_session) == [
        f"p.yaml:{line_of(text, 'slpd-liason')}: unknown contact 'slpd-liason'"]


def test_unknown_fallback_contact(db_session, demo_directory):
    text = BASE.replace("fallback: [slps-oncall]", "fallback: [nobody]")
    assert errors_of(text, db_session) == [
        f"p.yaml:{line_of(text, 'fallback: [nobody]')}: unknown contact 'nobody' in fallback"]


def test_unknown_district_names_the_line(db_session, demo_directory):
    text = BASE.replace("  slps:\n", "  slpss:\n")
    (err,) = errors_of(text, db_session)
    assert err.startswith(f"p.yaml:{line_of(text, 'slpss')}: unknown district 'slpss'")


def test_unknown_school_and_school_of_another_district(db_session, demo_directory):
    text = BASE.replace("match: {categories: [bullying, self_harm]}",
                        "match: {categories: [bullying, self_harm], "
                        "schools: [slps-nowhere, cty-northview]}")
    line = line_of(text, "- name: support")
    assert errors_of(text, db_session) == [
        f"p.yaml:{line}: rule 'support': school 'cty-northview' is not in this district",
        f"p.yaml:{line}: rule 'support': school 'slps-nowhere' is unknown",
    ]


def test_overlapping_rules_without_priority():
    text = BASE.replace("[bullying, self_harm]", "[bullying, threat]")
    assert errors_of(text) == [
        f"p.yaml:{line_of(text, '- name: support')}: rule 'support' overlaps rule 'violence' "
        f"(line {line_of(text, '- name: violence')}), e.g. threat severity 1 during after "
        "hours at any other school; give both a different priority (higher wins) or narrow one"]


def test_overlap_resolved_by_priority_and_higher_wins(db_session, demo_directory):
    text = BASE.replace("[bullying, self_harm]", "[bullying, threat]").replace(
        "      - name: violence\n", "      - name: violence\n        priority: 10\n").replace(
        "      - name: support\n", "      - name: support\n        priority: 5\n")
    policy = parse_policy(text, "p.yaml")
    assert [r.name for r in policy.districts["slps"].rules][:2] == ["violence", "support"]


def test_overlap_with_equal_priority_is_an_error():
    text = BASE.replace("[bullying, self_harm]", "[bullying, threat]").replace(
        "      - name: violence\n", "      - name: violence\n        priority: 5\n").replace(
        "      - name: support\n", "      - name: support\n        priority: 5\n")
    (err,) = errors_of(text)
    assert "rule 'support' overlaps rule 'violence'" in err


def test_unreachable_rule_shadowed_by_higher_priority():
    text = BASE.replace(
        "      - name: violence\n", "      - name: violence\n        priority: 10\n").replace(
        "      - name: support\n",
        "      - name: guns-at-roosevelt\n        priority: 5\n"
        "        match: {categories: [weapon], schools: [slps-roosevelt], severity: 4}\n"
        "        steps:\n          - alert: [{role: counselor}]\n            ack_within: 5m\n"
        "      - name: support\n")
    assert errors_of(text) == [
        f"p.yaml:{line_of(text, 'guns-at-roosevelt')}: rule 'guns-at-roosevelt' is unreachable:"
        " every tip it matches is taken by higher-priority rules (violence)"]


def test_school_specific_rule_with_priority_is_reachable():
    text = BASE.replace(
        "      - name: violence\n", "      - name: violence\n        priority: 5\n").replace(
        "      - name: support\n",
        "      - name: guns-at-roosevelt\n        priority: 10\n"
        "        match: {categories: [weapon], schools: [slps-roosevelt]}\n"
        "        steps:\n          - alert: [{role: counselor}]\n            ack_within: 5m\n"
        "      - name: support\n")
    policy = parse_policy(text, "p.yaml")
    assert policy.districts["slps"].rules[0].name == "guns-at-roosevelt"


def test_step_with_no_contacts():
    text = BASE.replace("          - alert: [{role: counselor}]\n", "          - alert: []\n")
    (err,) = errors_of(text)
    assert err.startswith(f"p.yaml:{line_of(text, 'alert: []')}: rule support: a step with "
                          "no contacts")


def test_step_that_reaches_nobody_at_some_school(db_session, demo_directory):
    # only Roosevelt has a social worker
    text = BASE.replace("{role: counselor}", "{role: social_worker}")
    errs = errors_of(text, db_session)
    line = line_of(text, "{role: social_worker}")
    assert f"p.yaml:{line}: rule 'support' step 1 alerts nobody at school slps-vashon " \
           "(no active social_worker there)" in errs
    assert not any("slps-roosevelt" in e for e in errs)


def test_missing_ack_deadline():
    text = BASE.replace("            ack_within: 10m\n", "")
    (err,) = errors_of(text)
    assert err == (f"p.yaml:{line_of(text, 'alert: [{role: safety_team}')}: rule violence: "
                   "a step needs ack_within (how long before escalating)")


def test_bad_duration():
    text = BASE.replace("ack_within: 10m", "ack_within: 10")
    (err,) = errors_of(text)
    assert err.startswith(f"p.yaml:{line_of(text, 'ack_within: 10')}: ack_within: bad "
                          "duration 10")


def test_bad_times():
    text = BASE.replace('start: "07:00", end: "17:00"', 'start: "25:00", end: "17:61"')
    errs = errors_of(text)
    assert errs == ["p.yaml:5: school_hours: bad time '25:00': use 24-hour HH:MM, like "
                    "\"07:00\" or \"17:30\""]
    text = BASE.replace("days: mon-fri", "days: mon-fry")
    assert errors_of(text)[0].startswith("p.yaml:5: school_hours: bad days 'mon-fry'")


def test_missing_default_rule():
    text = BASE.split("      - name: fallback-rule")[0]
    (err,) = errors_of(text)
    assert err == (f"p.yaml:{line_of(text, '    rules:')}: district slps has no default "
                   "rule: add one with 'default: true' so every tip reaches someone")


def test_police_for_a_non_violent_category_is_refused(db_session, demo_directory):
    text = BASE.replace("          - alert: [{role: counselor}]\n",
                        "          - alert: [{role: counselor}, {contact: slpd-liaison}]\n")
    errs = errors_of(text, db_session)
    assert errs == [
        f"p.yaml:{line_of(text, '{role: counselor}, {contact: slpd')}: rule 'support' alerts "
        "police (slpd-liaison) for bullying, self_harm, but district slps allows police only "
        "for threat, weapon"]
    text = BASE.replace("          - alert: [{role: counselor}]\n",
                        "          - alert: [{role: police_liaison}]\n")
    (err,) = errors_of(text)
    assert "rule 'support' alerts police for bullying, self_harm" in err


def test_not_yaml_and_duplicate_keys_name_the_line():
    (err,) = errors_of(BASE.replace("    rules:\n", "    rules: [\n"))
    assert err.startswith("p.yaml:") and "not valid YAML" in err
    text = BASE.replace("    fallback: [slps-oncall]\n",
                        "    fallback: [slps-oncall]\n    fallback: [slps-oncall]\n")
    assert errors_of(text) == ["p.yaml:7: 'fallback' is given twice"]


def test_unknown_field_and_duplicate_rule_name():
    text = BASE.replace("        default: true\n", "        default: true\n        colour: red\n")
    (err,) = errors_of(text)
    assert err.startswith(f"p.yaml:{line_of(text, 'colour')}: unknown field 'colour' in a rule")
    text = BASE.replace("name: support", "name: violence")
    (err,) = errors_of(text)
    assert err == (f"p.yaml:{line_of(text, 'categories: [bullying') - 1}: rule name 'violence' "
                   f"is already used on line {line_of(text, '- name: violence')}")


def test_every_error_is_reported_at_once():
    text = BASE.replace("[bullying, self_harm]", "[bullyng]").replace(
        "ack_within: 10m", "ack_within: soon").replace("{role: counselor}", "{role: coach}")
    assert len(errors_of(text)) == 3


def test_small_parsers():
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("2h") == timedelta(hours=2)
    with pytest.raises(ValueError):
        parse_duration("0m")
    assert parse_clock("7:05") == time(7, 5)
    assert parse_clock(420) == time(7, 0)  # YAML 1.1 reads unquoted 07:00 as 420
    with pytest.raises(ValueError):
        parse_clock("24:00")
    assert parse_days("fri-mon") == frozenset({4, 5, 6, 0})
    assert parse_days("sat,sun") == frozenset({5, 6})
    assert parse_days("daily") == frozenset(range(7))


def test_unquoted_times_in_yaml_are_read_right():
    text = BASE.replace('start: "07:00", end: "17:00"', "start: 07:30, end: 16:45")
    w = parse_policy(text, "p.yaml").districts["slps"].school_hours[0]
    assert (w.start, w.end) == (time(7, 30), time(16, 45))


def test_load_policy_versions_and_keeps_one_active(db_session, demo_directory):
    first = load_policy(db_session, BASE, "p.yaml", "admin@x")
    second = load_policy_file(db_session, POLICY_FILE, "admin@x")
    rows = db_session.execute(select(RoutingPolicy).order_by(RoutingPolicy.version)).scalars()
    assert [(r.version, r.active) for r in rows] == [(1, False), (2, True)]
    assert first.source_text == BASE and second.loaded_by == "admin@x"
    assert active_policy(db_session).name == "St. Louis demo policy"


def test_invalid_policy_is_not_stored(db_session, demo_directory):
    load_policy(db_session, BASE, "p.yaml", "cli")
    with pytest.raises(PolicyError):
        load_policy(db_session, BASE.replace("slpd-liaison", "ghost"), "p.yaml", "cli")
    rows = db_session.execute(select(RoutingPolicy)).scalars().all()
    assert [(r.version, r.active) for r in rows] == [(1, True)]


def test_load_is_audited(db_session, demo_directory):
    from tipline.audit.models import AuditEvent

    load_policy(db_session, BASE, "p.yaml", "admin@x")
    (event,) = db_session.execute(
        select(AuditEvent).where(AuditEvent.action == "policy.load")).scalars()
    assert event.actor == "admin@x" and event.object_id == "1"
    assert event.detail["source"] == "p.yaml" and len(event.detail["sha256"]) == 64


def test_warning_for_a_district_the_policy_omits(db_session, demo_directory):
    policy = parse_policy(BASE, "p.yaml")
    assert policy_warnings(db_session, policy) == [
        "p.yaml: warning: district 'stlco-demo' is in the directory but not in the policy; "
        "its tips go to every district's fallback contacts"]
    demo = parse_policy(POLICY_FILE.read_text(encoding="utf-8"), "demo.yaml")
    assert policy_warnings(db_session, demo) == []


def test_police_in_the_fallback_of_a_guarded_district_is_refused(db_session, demo_directory):
    # The fallback is used for a tip of any category, so police cannot be in it when the
    # district keeps police out of some categories.
    text = BASE.replace("    fallback: [slps-oncall]\n",
                        "    fallback: [slps-oncall, slpd-liaison]\n")
    assert errors_of(text, db_session) == [
        f"p.yaml:{line_of(text, 'fallback:')}: fallback contact 'slpd-liaison' is police, but "
        "district slps allows police only for threat, weapon"]
    # without the file's guard, SLPS's directory record still keeps police out; a district
    # whose record sets no guard (partnership) may choose it
    unguarded = text.replace("    police_only_for: [weapon, threat]\n", "")
    (err,) = errors_of(unguarded, db_session)
    assert "fallback contact 'slpd-liaison' is police, but district slps: its directory" in err
    _set_involvement(db_session, "slps", "partnership")
    policy = parse_policy(unguarded, "p.yaml")
    validate_policy(db_session, policy)
    assert policy.districts["slps"].fallback == ("slps-oncall", "slpd-liaison")


LAUGHS = "policy: x\n" + "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10 if i else ['lol'] * 10)}]\n"
    for i in range(9)
) + "districts: {}\n"


@pytest.mark.parametrize(("text", "message"), [
    # expands to 10**9 items if converted: refused at the first alias, at once
    (LAUGHS, "p.yaml:2: YAML anchors and aliases (& and *) are not supported"),
    ("districts: &a\n  x: *a\n", "p.yaml:1: YAML anchors and aliases"),
    ("districts: " + "[" * 5000 + "]" * 5000, "p.yaml:1: the policy is nested too deeply"),
    ("districts:\n  a: \x00\n", "not valid YAML"),
    ("#" * 200_001, "p.yaml:1: the policy has 200,001 characters; at most 200,000"),
    ("? [a, b]\n: 1\n", "p.yaml:1: a key must be a plain name, not a list or a mapping"),
    ("districts:\n  ? {x: 1}\n  : {}\n", "p.yaml:2: a key must be a plain name"),
    # PyYAML's int() refuses more than 4,300 digits with a ValueError (the editor's 500)
    ("policy: x\nversion: " + "9" * 5000 + "\n", "p.yaml:1: not a value a policy can hold"),
])
def test_hostile_yaml_is_a_policy_error_not_a_crash(text, message):
    import time

    started = time.monotonic()
    (err,) = errors_of(text)
    assert message in err
    assert time.monotonic() - started < 10  # (10**9 items would take hours and all memory)


@pytest.mark.parametrize("value", ["99999999999999999999s", "3000000d", "31d", "9" * 5000 + "m",
                                   "0" * 5000 + "99d"])
def test_a_duration_past_a_month_is_an_error(value):
    """The first was an OverflowError in the editor (a 500); the second passed and then failed
    in the routing job, for every tip that reached the step (no alert planned)."""
    text = BASE.replace("ack_within: 10m", f"ack_within: {value}", 1)
    (err,) = errors_of(text)
    assert err.startswith(f"p.yaml:{line_of(text, 'ack_within: ' + value[:20])}: ack_within: "
                          "bad duration")
    assert "at most 30d" in err and len(err) < 200


def test_a_month_is_the_longest_duration():
    policy = parse_policy(BASE.replace("ack_within: 10m", "ack_within: 30d", 1), "p.yaml")
    assert policy.districts["slps"].rules[0].steps[0].ack_within == timedelta(days=30)
    policy = parse_policy(BASE.replace("ack_within: 10m", "ack_within: 0000010m", 1), "p.yaml")
    assert policy.districts["slps"].rules[0].steps[0].ack_within == timedelta(minutes=10)


def test_a_list_where_a_role_name_belongs_is_an_error():
    text = BASE.replace("{role: safety_team}", "{role: [safety_team]}")
    (err,) = errors_of(text)
    assert err.startswith(f"p.yaml:{line_of(text, '[safety_team]')}: unknown role")


def test_unicode_names_round_trip(db_session, demo_directory):
    text = BASE.replace("name: fallback-rule", "name: défaut-ñ-😀").replace(
        "policy: test", "policy: Política ÉÑ")
    row = load_policy(db_session, text, "política.yaml", "test")
    db_session.flush()
    policy = active_policy(db_session)
    assert policy is not None and policy.name == "Política ÉÑ"
    assert policy.rule("défaut-ñ-😀") is not None and row.source_text == text


def test_police_ack_stops_school_alerts_is_a_checked_district_option():
    """Off unless a district says so; anything but true/false is refused with its line."""
    assert parse_policy(BASE, "p.yaml").districts["slps"].police_ack_stops_school_alerts \
        is False
    on = BASE.replace("    police_only_for: [weapon, threat]\n",
                      "    police_only_for: [weapon, threat]\n"
                      "    police_ack_stops_school_alerts: true\n")
    assert parse_policy(on, "p.yaml").districts["slps"].police_ack_stops_school_alerts is True
    bad = on.replace("police_ack_stops_school_alerts: true",
                     "police_ack_stops_school_alerts: sometimes")
    assert errors_of(bad) == [
        f"p.yaml:{line_of(bad, 'sometimes')}: police_ack_stops_school_alerts must be true or "
        "false"]


# -- the police guard comes from the directory (police_involvement) --------------------------
UNGUARDED = BASE.replace("    police_only_for: [weapon, threat]\n", "")
GUARD_TEXT = "its directory record says police_involvement: limited (police only for other, " \
    "threat, weapon)"
SUPPORT_TO_POLICE = UNGUARDED.replace("          - alert: [{role: counselor}]\n",
                                      "          - alert: [{role: counselor}, "
                                      "{contact: slpd-liaison}]\n")
POLICE_IN_FALLBACK = UNGUARDED.replace("    fallback: [slps-oncall]\n",
                                       "    fallback: [slps-oncall, slpd-liaison]\n")


def _set_involvement(db_session, code: str, value: str) -> None:
    from tipline.directory.models import District

    db_session.execute(select(District).where(District.code == code)).scalar_one() \
        .police_involvement = value
    db_session.flush()


def test_guard_holds_without_police_only_for_in_the_file(db_session, demo_directory):
    # Deleting police_only_for from SLPS's section must not let a support rule alert police.
    assert "police_only_for" not in UNGUARDED
    by_contact = SUPPORT_TO_POLICE
    assert errors_of(by_contact, db_session) == [
        f"p.yaml:{line_of(by_contact, 'counselor}, {contact: slpd')}: rule 'support' alerts "
        f"police (slpd-liaison) for bullying, self_harm, but district slps: {GUARD_TEXT}"]
    by_role = UNGUARDED.replace("          - alert: [{role: counselor}]\n",
                                "          - alert: [{role: counselor}, "
                                "{role: police_liaison}]\n")
    assert errors_of(by_role, db_session) == [
        f"p.yaml:{line_of(by_role, '{role: police_liaison}')}: rule 'support' alerts police "
        f"(role police_liaison) for bullying, self_harm, but district slps: {GUARD_TEXT}"]
    # the default rule takes every category, so police there is refused as well
    in_default = UNGUARDED.replace("          - alert: [{contact: slps-oncall}]\n",
                                   "          - alert: [{contact: slps-oncall}, "
                                   "{contact: slpd-liaison}]\n")
    (err,) = errors_of(in_default, db_session)
    assert err.startswith(f"p.yaml:{line_of(in_default, 'slps-oncall}, {contact: slpd')}: "
                          "rule 'fallback-rule' alerts police (slpd-liaison) for abuse, "
                          "basic_needs, bullying, dating_violence, family_crisis, self_harm, "
                          "substance, but district slps")
    assert errors_of(POLICE_IN_FALLBACK, db_session) == [
        f"p.yaml:{line_of(POLICE_IN_FALLBACK, 'fallback:')}: fallback contact 'slpd-liaison' is "
        f"police, but district slps: {GUARD_TEXT}"]
    # weapons and threats may still go to police without any police_only_for
    validate_policy(db_session, parse_policy(UNGUARDED, "p.yaml"))


def test_load_refuses_what_the_directory_guard_forbids(db_session, demo_directory):
    with pytest.raises(PolicyError) as info:
        load_policy(db_session, SUPPORT_TO_POLICE, "p.yaml", "cli")
    assert "rule 'support' alerts police (slpd-liaison)" in info.value.errors[0]
    assert db_session.execute(select(RoutingPolicy)).scalars().all() == []


def test_police_only_for_may_narrow_the_guard_but_not_widen_it(db_session, demo_directory):
    wider = BASE.replace("police_only_for: [weapon, threat]",
                         "police_only_for: [weapon, threat, bullying]")
    assert errors_of(wider, db_session) == [
        f"p.yaml:{line_of(wider, 'police_only_for')}: police_only_for lists bullying, but "
        f"district slps: {GUARD_TEXT}; the file can only narrow that"]
    # narrower than the directory (no "other") is the file's own choice
    validate_policy(db_session, parse_policy(BASE, "p.yaml"))


def test_a_partnership_district_has_no_guard(db_session, demo_directory):
    for value in ("partnership", "full"):
        _set_involvement(db_session, "slps", value)
        validate_policy(db_session, parse_policy(POLICE_IN_FALLBACK, "p.yaml"))
        validate_policy(db_session, parse_policy(SUPPORT_TO_POLICE, "p.yaml"))


def test_police_involvement_none_keeps_police_out_of_everything(db_session, demo_directory):
    _set_involvement(db_session, "slps", "none")
    errs = errors_of(UNGUARDED, db_session)
    assert errs == [
        f"p.yaml:{line_of(UNGUARDED, '{contact: slpd-liaison}')}: rule 'violence' alerts police "
        "(slpd-liaison) for threat, weapon, but district slps: its directory record says "
        "police_involvement: none (police are never alerted)"]


def test_a_contact_of_a_police_agency_counts_as_police(db_session, demo_directory):
    # A district admin cannot dodge the guard by giving a police desk another role.
    from tipline.directory.models import Contact

    liaison = db_session.execute(
        select(Contact).where(Contact.key == "slpd-liaison")).scalar_one()
    liaison.role = "district_oncall"
    db_session.flush()
    (err,) = errors_of(SUPPORT_TO_POLICE, db_session)
    assert "rule 'support' alerts police (slpd-liaison) for bullying, self_harm" in err


@pytest.mark.parametrize("value", ["limited", "partnership", "full", "none"])
def test_directory_accepts_the_documented_involvement_values(db_session, value):
    from tipline.directory.loader import load_directory
    from tipline.directory.models import District

    load_directory(db_session, {"districts": [
        {"code": "d1", "name": "D1", "police_involvement": value}]})
    row = db_session.execute(select(District).where(District.code == "d1")).scalar_one()
    assert row.police_involvement == value


def test_directory_refuses_an_unknown_involvement_and_defaults_to_limited(db_session):
    from tipline.directory.loader import DirectoryError, load_directory
    from tipline.directory.models import District

    with pytest.raises(DirectoryError) as info:
        load_directory(db_session, {"districts": [
            {"code": "d1", "name": "D1", "police_involvement": "sometimes"}]}, source="dir.yaml")
    assert str(info.value) == ("dir.yaml: district d1: police_involvement must be one of "
                               "limited, partnership, full, none (not 'sometimes')")
    load_directory(db_session, {"districts": [{"code": "d2", "name": "D2"}]})
    assert db_session.execute(select(District.police_involvement).where(
        District.code == "d2")).scalar_one() == "limited"


@pytest.mark.parametrize(("old", "new", "message"), [
    ("{contact: slpd-liaison}", "{contact: cty-oncall}",
     "rule 'violence' alerts contact 'cty-oncall', a contact of district stlco-demo"),
    ("{contact: slpd-liaison}", "{contact: stlco-liaison}",
     "rule 'violence' alerts contact 'stlco-liaison', of police agency stlco-pd, which does "
     "not serve district slps"),
    ("fallback: [slps-oncall]", "fallback: [slps-oncall, cty-oncall]",
     "fallback contact 'cty-oncall' is a contact of district stlco-demo"),
])
def test_a_district_names_only_its_own_contacts_and_its_agencies(db_session, demo_directory,
                                                                 old, new, message):
    """A section that names another district's contact, or a police agency that does not
    serve the district, would send the district's tips (and open them, through that contact's
    accounts) to people outside it: refused, like a contact under such an agency."""
    text = BASE.replace(old, new)
    errors = errors_of(text, db_session)
    assert any(message in e for e in errors), errors
