"""``tipline policy ...`` and ``tipline route explain`` on the embedded default (SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from tests.conftest import DEMO_DIRECTORY
from tipline import migrations
from tipline.cli import main
from tipline.db import Database
from tipline.directory.loader import load_directory_file
from tipline.routing.models import Dispatch, RoutingJob, RoutingPolicy

POLICY_FILE = Path(__file__).resolve().parents[2] / "config" / "policy.demo.yaml"


@pytest.fixture
def cli_env(tmp_path, key_file):
    """A migrated SQLite database with the demo directory, and the env that points at it."""
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    migrations.upgrade(url)
    db = Database(url)
    with db.session() as s:
        load_directory_file(s, DEMO_DIRECTORY)
    db.dispose()
    env = {"TIPLINE_DATA_DIR": str(tmp_path), "TIPLINE_DATABASE_URL": url,
           "TIPLINE_KEY_FILE": str(key_file), "TIPLINE_MODE": "embedded"}
    return env, url


def run(env, *args):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def count(url, model):
    db = Database(url)
    try:
        with db.session() as s:
            return s.execute(select(func.count()).select_from(model)).scalar_one()
    finally:
        db.dispose()


def test_check_load_show_explain(cli_env):
    env, url = cli_env
    res = run(env, "policy", "check", str(POLICY_FILE))
    assert res.exit_code == 0, res.output
    assert res.output.strip() == "policy.demo.yaml: ok (2 districts, 20 rules)"
    assert count(url, RoutingPolicy) == 0  # check changes nothing

    res = run(env, "route", "explain", "--school", "slps-roosevelt", "--category", "weapon",
              "--severity", "3")
    assert res.exit_code != 0 and "no routing policy is loaded" in res.output

    res = run(env, "policy", "load", str(POLICY_FILE), "--by", "it@district")
    assert res.exit_code == 0, res.output
    assert res.output.startswith("policy version 1 loaded from policy.demo.yaml")

    res = run(env, "policy", "show")
    assert res.exit_code == 0, res.output
    assert "policy version 1: policy.demo.yaml" in res.output and "by it@district" in res.output
    assert "  slps-life-safety-violence priority 100 [line 40]: other, threat, weapon; " \
           "severity 4" in res.output
    assert "repeat every 2m" in res.output
    res = run(env, "policy", "show", "--source")
    assert res.output == POLICY_FILE.read_text(encoding="utf-8")


def test_explain_prints_rule_and_each_contact_and_creates_nothing(cli_env):
    env, url = cli_env
    run(env, "policy", "load", str(POLICY_FILE))
    res = run(env, "route", "explain", "--school", "slps-roosevelt", "--category", "bullying",
              "--severity", "2", "--at", "2026-11-28T02:00")
    assert res.exit_code == 0, res.output
    out = res.output
    assert "Time:    Sat 2026-11-28 02:00 America/Chicago (after hours)" in out
    assert "Rule:    slps-support-after-hours (line 216)" in out
    assert "  no    slps-life-safety-violence (line 40): category bullying not in other, " \
           "threat, weapon" in out
    assert "  MATCH slps-support-after-hours (line 216): matched" in out
    # the rota slps-nights: a swap gave that week to Carmen Flores
    assert "  step 1  slps-night-flores (social_worker) via sms: rule " \
           "slps-support-after-hours step 1: on call in rota slps-nights (swap 2026-11-23 to " \
           "2026-11-29)" in out
    assert "  step 2  slps-support-lead (district_oncall)" in out
    assert "  slpd-liaison (police_liaison): rule slps-support-after-hours does not alert " \
           "police" in out
    assert "  2. after 1h: 1 contact(s) by sms/email; acknowledge within 2h" in out
    assert count(url, RoutingJob) == 0 and count(url, Dispatch) == 0


def test_explain_json_and_life_safety(cli_env):
    env, _ = cli_env
    run(env, "policy", "load", str(POLICY_FILE))
    res = run(env, "route", "explain", "--school", "cty-northview", "--category", "threat",
              "--severity", "4", "--at", "2026-11-24T10:00:00-06:00", "--json")
    assert res.exit_code == 0, res.output
    ex = json.loads(res.output)
    assert ex["rule"] == "cty-life-safety-violence" and ex["time"] == "school_hours"
    alerted = {c["contact"] for c in ex["contacts"] if c["alerted"]}
    assert "stlco-liaison" in alerted and "slpd-liaison" not in alerted
    assert ex["steps"][0]["repeat_every"] == "2m"


def test_explain_unknown_school_and_bad_time(cli_env):
    env, _ = cli_env
    run(env, "policy", "load", str(POLICY_FILE))
    res = run(env, "route", "explain", "--school", "nowhere", "--category", "threat",
              "--severity", "3")
    assert res.exit_code == 1 and "unknown school 'nowhere'" in res.output
    res = run(env, "route", "explain", "--school", "slps-soldan", "--category", "threat",
              "--severity", "3", "--at", "friday")
    assert res.exit_code == 2 and "not an ISO 8601 time" in res.output


def test_check_and_load_report_errors_with_lines(cli_env, tmp_path):
    env, url = cli_env
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY_FILE.read_text(encoding="utf-8").replace(
        "{contact: slpd-liaison}", "{contact: slpd-liason}", 1), encoding="utf-8")
    res = CliRunner().invoke(main, ["policy", "check", str(bad)], env=env)
    assert res.exit_code == 1
    assert "bad.yaml:50: unknown contact 'slpd-liason'" in res.output
    res = CliRunner().invoke(main, ["policy", "check", "--no-directory", str(bad)], env=env)
    assert res.exit_code == 0  # the file alone is well formed
    res = CliRunner().invoke(main, ["policy", "load", str(bad)], env=env)
    assert res.exit_code == 1 and "nothing was changed" in res.output
    assert count(url, RoutingPolicy) == 0


def test_explain_without_school_shows_the_fallback(cli_env):
    env, _ = cli_env
    run(env, "policy", "load", str(POLICY_FILE))
    res = run(env, "route", "explain", "--district", "stlco-demo", "--category", "threat",
              "--severity", "4", "--at", "2026-11-28T02:00")
    assert res.exit_code == 0, res.output
    assert "Rule:    no-school" in res.output
    assert "Fallback: the district's fallback contacts are alerted" in res.output
    assert "  step 1  cty-oncall (district_oncall) via sms, voice, email: fallback: the tip " \
           "names no school in stlco-demo" in res.output
    assert "repeat every 2m until acknowledged" in res.output


def test_a_file_that_is_not_utf8_is_a_clear_error(cli_env, tmp_path):
    env, url = cli_env
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes(POLICY_FILE.read_text(encoding="utf-8").replace(
        "policy: St. Louis demo policy", "policy: Política").encode("latin-1", "replace"))
    for command in ("check", "load"):
        res = CliRunner().invoke(main, ["policy", command, str(latin)], env=env)
        assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
        assert "latin1.yaml: not UTF-8 text" in res.output
    assert count(url, RoutingPolicy) == 0


def test_check_and_load_hold_slps_to_its_directory_guard(cli_env, tmp_path):
    # SLPS's directory record says police_involvement: limited. Deleting police_only_for and
    # sending bullying to the city police is refused by check and by load, naming the line.
    env, url = cli_env
    demo = POLICY_FILE.read_text(encoding="utf-8")
    lines = demo.replace("    police_only_for: [weapon, threat, other]\n", "", 1) \
        .splitlines(keepends=True)
    start = next(n for n, line in enumerate(lines) if "name: slps-support-high-after-hours" in line)
    rule_line = next(n for n in range(start, len(lines)) if "- alert:" in lines[n]) + 1
    lines[rule_line - 1] = lines[rule_line - 1].replace(
        "alert: [", "alert: [{contact: slpd-liaison}, ")
    bad = tmp_path / "policy.yaml"
    bad.write_text("".join(lines), encoding="utf-8")
    for command in ("check", "load"):
        res = run(env, "policy", command, str(bad))
        assert res.exit_code == 1, res.output
        assert f"policy.yaml:{rule_line}: rule " in res.output
        assert "alerts police (slpd-liaison) for abuse, bullying, family_crisis, self_harm, " \
               "substance, but district slps: its directory record says police_involvement: " \
               "limited" in res.output
    assert count(url, RoutingPolicy) == 0
    # the command line is installation-level: it may change the installation-wide settings
    wide = tmp_path / "wide.yaml"
    wide.write_text(demo.replace("ack_within: 10m\n  life_safety_repeat_every: 2m",
                                 "ack_within: 5m\n  life_safety_repeat_every: 1m", 1),
                    encoding="utf-8")
    assert wide.read_text(encoding="utf-8") != demo
    res = run(env, "policy", "load", str(wide))
    assert res.exit_code == 0, res.output


def test_show_prints_each_districts_police_guard_and_ack_option(cli_env):
    """The guard that holds comes from the directory, so ``policy show`` prints it (and the
    file's own narrowing), and whether a police acknowledgement stops the school's alerts."""
    env, _url = cli_env
    text = POLICY_FILE.read_text(encoding="utf-8")
    anchor = "  stlco-demo:\n"
    assert anchor in text
    policy = Path(env["TIPLINE_DATA_DIR"]) / "policy.yaml"
    policy.write_text(text.replace(anchor, anchor + "    police_ack_stops_school_alerts: true\n"),
                      encoding="utf-8")
    assert run(env, "policy", "load", str(policy)).exit_code == 0
    out = run(env, "policy", "show").output
    slps, county = out.split("\ndistrict slps")[1].split("\ndistrict stlco-demo")
    assert "police guard (directory): police_involvement: limited (police only for other, " \
           "threat, weapon)" in slps
    assert "police_only_for in this file: other, threat, weapon" in slps
    assert "police_ack_stops_school_alerts: false" in slps
    assert "police guard (directory): police_involvement: partnership" in county
    assert "police_ack_stops_school_alerts: true" in county


def test_explain_shows_language_rota_partner_agreement_and_commitments(cli_env):
    env, url = cli_env
    run(env, "policy", "load", str(POLICY_FILE))
    res = run(env, "route", "explain", "--school", "slps-roosevelt", "--category", "self_harm",
              "--severity", "3", "--at", "2026-11-28T02:00", "--language", "bs")
    assert res.exit_code == 0, res.output
    out = res.output
    assert "Language: the reporter wrote in bs" in out
    assert "Rule:    slps-self-harm-after-hours" in out
    assert "Commitment (checked): no police for abuse, basic_needs, bullying" in out
    # who is on call at that moment, by the rota
    assert "  step 1  slps-night-flores (social_worker) via voice, sms: rule " \
           "slps-self-harm-after-hours step 1: on call in rota slps-nights" in out
    assert "  step 2  slps-bjc-crisis (outside_partner)" in out
    assert "          partner agreement: BJC Behavioral Health: no tip content; no school " \
           "name; reference only (opens nothing without a staff account)" in out
    # a week later someone else is on call
    later = run(env, "route", "explain", "--school", "slps-roosevelt", "--category",
                "self_harm", "--severity", "3", "--at", "2026-12-05T02:00")
    assert "  step 1  slps-night-brown (social_worker)" in later.output
    assert count(url, RoutingJob) == 0 and count(url, Dispatch) == 0


def test_explain_refuses_a_policy_file_that_breaks_a_commitment(cli_env, tmp_path):
    env, _ = cli_env
    bad = tmp_path / "bad.yaml"
    text = POLICY_FILE.read_text(encoding="utf-8").replace(
        "          - alert: [{role: transition_team}, {role: counselor}]\n",
        "          - alert: [{role: transition_team}, {role: counselor}, "
        "{contact: slpd-liaison}]\n", 1)
    bad.write_text(text, encoding="utf-8")
    res = CliRunner().invoke(main, ["route", "explain", "--school", "slps-roosevelt",
                                    "--category", "basic_needs", "--severity", "2",
                                    "--policy", str(bad)], env=env)
    assert res.exit_code == 1
    line = next(n for n, t in enumerate(text.splitlines(), start=1) if "slpd-liaison}]" in t
                and "transition_team" in t)
    assert f"bad.yaml:{line}: rule 'slps-basic-needs-day' alerts police (slpd-liaison) for " \
           "basic_needs" in res.output
    assert "district slps commits to no police for them" in res.output
    res = CliRunner().invoke(main, ["policy", "check", str(bad)], env=env)
    assert res.exit_code == 1 and "commits to no police for them" in res.output
