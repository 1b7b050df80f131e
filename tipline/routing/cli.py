"""``tipline policy check|load|show`` and ``tipline route explain``.

These only read or store the policy; ``route explain`` prints what the engine would do for a
tip and creates nothing (no tip, no job, no alert).
"""

from __future__ import annotations

import json
import re
import sys
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from tipline.directory.models import District
from tipline.directory.police import describe_guard
from tipline.routing.policy import (
    CATEGORIES,
    Policy,
    PolicyError,
    active_policy,
    format_duration,
    load_policy,
    parse_policy,
    policy_warnings,
    validate_policy,
)

SEVERITY_NAMES = {1: "low", 2: "medium", 3: "high", 4: "life-safety"}


def database_session() -> AbstractContextManager[Session]:
    """The CLI's shared session (imported late: ``tipline.cli`` loads this module)."""
    from tipline.cli import database_session as shared

    return shared()


def _read(path: Path) -> str:
    """The file's text; a file that is not UTF-8 is a policy error, not a traceback."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        _fail([f"{path.name}: not UTF-8 text (byte {exc.start}); save it as UTF-8"])
        raise  # pragma: no cover - _fail exits


def _fail(errors: list[str]) -> None:
    for line in errors:
        click.echo(line, err=True)
    click.echo(f"tipline: {len(errors)} problem(s) in the policy; nothing was changed", err=True)
    sys.exit(1)


@click.group("policy")
def policy_group() -> None:
    """The routing policy: check a file, load it, show the active one."""


@policy_group.command("check")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--no-directory", is_flag=True,
              help="Check the file alone, without the database's directory.")
def policy_check(path: Path, no_directory: bool) -> None:
    """Validate a policy file; every problem is printed with its line. Changes nothing."""
    text = _read(path)
    try:
        policy = parse_policy(text, path.name)
        warnings: list[str] = []
        if not no_directory:
            with database_session() as session:
                validate_policy(session, policy)
                warnings = policy_warnings(session, policy)
    except PolicyError as exc:
        _fail(exc.errors)
        return
    for w in warnings:
        click.echo(w, err=True)
    rules = sum(len(d.rules) for d in policy.districts.values())
    click.echo(f"{path.name}: ok ({len(policy.districts)} districts, {rules} rules)")


@policy_group.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--by", "loaded_by", default="cli", show_default=True,
              help="Who loads it (kept with the version).")
def policy_load(path: Path, loaded_by: str) -> None:
    """Validate a policy file and make it the active policy (a new version)."""
    text = _read(path)
    try:
        with database_session() as session:
            row = load_policy(session, text, path.name, loaded_by)
            version, sha = row.version, row.sha256
            warnings = policy_warnings(session, parse_policy(text, path.name))
    except PolicyError as exc:
        _fail(exc.errors)
        return
    for w in warnings:
        click.echo(w, err=True)
    click.echo(f"policy version {version} loaded from {path.name} (sha256 {sha[:12]}); "
               "new tips are routed by it")


@policy_group.command("show")
@click.option("--source", is_flag=True, help="Print the policy file as it was loaded.")
def policy_show(source: bool) -> None:
    """Show the active policy: version, who loaded it, and its rules in order."""
    from tipline.routing.models import RoutingPolicy

    with database_session() as session:
        row = session.execute(
            select(RoutingPolicy).where(RoutingPolicy.active.is_(True))
            .order_by(RoutingPolicy.version.desc()).limit(1)
        ).scalar_one_or_none()
        if row is None:
            click.echo("no routing policy is loaded: tips are routed by the directory default "
                       "(each school's student-support and safety contacts, then on-call; "
                       "never police)")
            return
        if source:
            click.echo(row.source_text, nl=False)
            return
        policy = active_policy(session)
        click.echo(f"policy version {row.version}: {row.source_name}, loaded "
                   f"{row.loaded_at:%Y-%m-%d %H:%M} UTC by {row.loaded_by}, "
                   f"sha256 {row.sha256[:12]}")
        involvement = dict(session.execute(
            select(District.code, District.police_involvement)).tuples().all())
    assert policy is not None  # noqa: S101 - the row exists and was validated when stored
    for d in policy.districts.values():
        click.echo(f"\ndistrict {d.code}  (fallback: {', '.join(d.fallback)})")
        # The guard that holds is the directory's, whatever the file says (directory.police).
        click.echo(f"  police guard (directory): {describe_guard(involvement.get(d.code))}")
        if d.police_only_for is not None:
            click.echo("  police_only_for in this file: "
                       f"{', '.join(sorted(d.police_only_for)) or '(none)'}")
        click.echo("  police_ack_stops_school_alerts: "
                   f"{'true' if d.police_ack_stops_school_alerts else 'false'}")
        for r in d.rules:
            prio = f" priority {r.priority}" if r.priority is not None else ""
            click.echo(f"  {r.name}{prio} [line {r.line}]: {_match_text(r)}")
            for n, s in enumerate(r.steps, start=1):
                who = ", ".join(t.describe() for t in s.targets)
                rep = f", repeat every {format_duration(s.repeat_every)}" if s.repeat_every \
                    else ""
                click.echo(f"    {n}. {who} by {'/'.join(s.channels)}; ack within "
                           f"{format_duration(s.ack_within)}{rep}")


def _match_text(rule: Any) -> str:
    if rule.default:
        return "default (everything else)"
    m = rule.match
    parts = [
        "any category" if m.categories is None else ", ".join(sorted(m.categories)),
        "any severity" if m.severities is None
        else "severity " + ",".join(map(str, sorted(m.severities))),
    ]
    if m.schools is not None:
        parts.append("schools " + ", ".join(sorted(m.schools)))
    if m.slot is not None:
        parts.append(m.slot.replace("_", " "))
    return "; ".join(parts)


@click.group("route")
def route_group() -> None:
    """Routing of tips."""


@route_group.command("explain")
@click.option("--school", "school_code", default=None, help="School code, e.g. slps-roosevelt.")
@click.option("--district", "district_code", default=None,
              help="District code (for a tip that names no school).")
@click.option("--category", required=True, type=click.Choice(CATEGORIES))
@click.option("--severity", required=True, type=click.IntRange(1, 4),
              help="1 low, 2 medium, 3 high, 4 life-safety.")
@click.option("--at", "at_text", default=None,
              help="When the tip arrives, ISO 8601 (e.g. 2026-11-28T02:00). Without an offset "
                   "it is the district's local time. Default: now.")
@click.option("--language", default="en", show_default=True,
              help="The reporter's language (en, es, bs): rules may match it.")
@click.option("--policy", "policy_file", default=None, type=click.Path(dir_okay=False),
              help="Explain by this file instead of the active policy; it is checked first "
                   "(with the district's commitments) and refused with its lines if it fails.")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
def route_explain(school_code: str | None, district_code: str | None, category: str,
                  severity: int, at_text: str | None, language: str, policy_file: str | None,
                  as_json: bool) -> None:
    """Print who would be alerted for such a tip, when and how, and why; creates nothing."""
    from tipline.directory.models import District, School
    from tipline.routing.engine import UnknownPlace, plan_for

    if not re.fullmatch(r"[a-z]{2,3}", language):
        raise click.BadParameter("a language code like en, es or bs", param_hint="--language")
    with database_session() as session:
        policy: Policy | None
        if policy_file is not None:
            path = Path(policy_file)
            try:
                policy = parse_policy(path.read_text(encoding="utf-8"), path.name)
                validate_policy(session, policy)
            except OSError as exc:
                raise click.ClickException(f"cannot read {policy_file}: {exc}") from None
            except PolicyError as exc:
                for err in exc.errors:
                    click.echo(err, err=True)
                raise click.ClickException(
                    f"{len(exc.errors)} problem(s) in the policy; nothing explained") from None
        else:
            policy = active_policy(session)
        if policy is None:
            raise click.ClickException("no routing policy is loaded (tipline policy load FILE)")
        tz_name = "UTC"
        if school_code:
            school = session.execute(
                select(School).where(School.code == school_code)).scalar_one_or_none()
            tz_name = school.district.timezone if school else tz_name
        elif district_code:
            district = session.execute(
                select(District).where(District.code == district_code)).scalar_one_or_none()
            tz_name = district.timezone if district else tz_name
        at = _parse_at(at_text, tz_name)
        try:
            plan = plan_for(session, policy, school_code=school_code,
                            district_code=district_code, category=category,
                            severity=severity, at=at, language=language)
        except UnknownPlace as exc:
            raise click.ClickException(str(exc)) from None
        session.rollback()  # nothing is written; make sure of it
    if as_json:
        click.echo(json.dumps(plan.explanation, indent=2, ensure_ascii=False))
    else:
        click.echo(explanation_text(plan.explanation))


@route_group.command("matrix")
@click.option("--school", "school_code", required=True, help="A school code, e.g. slps-roosevelt.")
@click.option("--week-of", "week_of", default=None,
              help="A day of the week to sample (Tuesday 10:00 and Saturday 02:00, district "
                   "time); default: this week.")
@click.option("--language", default="en", show_default=True, help="The reporter's language.")
def route_matrix(school_code: str, week_of: str | None, language: str) -> None:
    """Print who the active policy alerts at a school, per category and severity, as a
    Markdown table (docs/routing.md carries the SLPS demo's)."""
    from datetime import date

    from tipline.directory.models import School
    from tipline.directory.zones import zone
    from tipline.routing.matrix_text import markdown_matrix, sample_times

    try:
        day = date.fromisoformat(week_of) if week_of else datetime.now(UTC).date()
    except ValueError:
        raise click.BadParameter("a date like 2026-11-23", param_hint="--week-of") from None
    with database_session() as session:
        policy = active_policy(session)
        if policy is None:
            raise click.ClickException("no routing policy is loaded (tipline policy load FILE)")
        school = session.execute(
            select(School).where(School.code == school_code)).scalar_one_or_none()
        if school is None:
            raise click.ClickException(f"unknown school {school_code!r}")
        times = sample_times(day, zone(school.district.timezone))
        text = markdown_matrix(session, policy, school_code, times, language)
        session.rollback()
    click.echo(text, nl=False)


def _parse_at(text: str | None, tz_name: str) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time like 2026-11-28T02:00",
                                 param_hint="--at") from None
    if at.tzinfo is None:
        try:
            at = at.replace(tzinfo=ZoneInfo(tz_name))
        except (KeyError, ValueError):
            at = at.replace(tzinfo=UTC)
    return at


def explanation_text(ex: dict[str, Any]) -> str:
    """The explanation as an administrator reads it."""
    sev = int(ex.get("severity") or 0)
    out = [
        f"Tip:     {ex.get('category')}, severity {sev} ({SEVERITY_NAMES.get(sev, '?')}), "
        f"school {ex.get('school') or '(none)'}, district {ex.get('district') or '(none)'}",
    ]
    if ex.get("local_time"):
        out.append(f"Time:    {ex['local_time']} {ex.get('timezone', '')} "
                   f"({str(ex.get('time', '')).replace('_', ' ')})")
    else:
        out.append(f"Time:    {ex.get('at')}")
    if ex.get("language"):
        out.append(f"Language: the reporter wrote in {ex['language']}")
    out.append(f"Policy:  {ex.get('policy')} (version {ex.get('policy_version')})")
    for promise in ex.get("commitments") or []:
        out.append(f"Commitment (checked): {promise}")
    line = f" (line {ex['rule_line']})" if ex.get("rule_line") else ""
    out.append(f"Rule:    {ex.get('rule')}{line}")
    out.append(f"Because: {ex.get('matched_because')}")
    if ex.get("considered"):
        out.append("Rules tried, in order:")
        for c in ex["considered"]:
            mark = "MATCH" if c["matched"] else "no   "
            out.append(f"  {mark} {c['rule']} (line {c['line']}): {c['why']}")
    if ex.get("fallback_used"):
        out.append("Fallback: the district's fallback contacts are alerted")
    out.append("Steps:")
    for s in ex.get("steps", []):
        if s.get("skipped"):
            out.append(f"  (rule step {s['rule_step']} skipped: {s['why']})")
            continue
        if "note" in s:
            out.append(f"  (note: {s['note']})")
            continue
        rep = f", repeat every {s['repeat_every']} until acknowledged" if s.get("repeat_every") \
            else ""
        chans = f" by {'/'.join(s['channels'])}" if s.get("channels") else ""
        content = "; alert includes tip content" if s.get("include_content") else ""
        when = s["starts_after"] if s["starts_after"] == "at once" else f"after {s['starts_after']}"
        out.append(f"  {s['step']}. {when}: {s['contacts']} contact(s){chans}; "
                   f"acknowledge within {s['ack_within']}{rep}{content}")
    alerted = [c for c in ex.get("contacts", []) if c["alerted"]]
    others = [c for c in ex.get("contacts", []) if not c["alerted"]]
    out.append("Alerted:")
    for c in alerted:
        out.append(f"  step {c['step']}  {c['contact']} ({c['role']}) via "
                   f"{', '.join(c['channels'])}: {c['why']}")
        if c.get("agreement"):
            out.append(f"          partner {c['agreement']}")
    if not alerted:
        out.append("  NOBODY (check the directory and the policy)")
    out.append("Not alerted:")
    for c in others:
        out.append(f"  {c['contact']} ({c['role']}): {c['why']}")
        if c.get("agreement"):
            out.append(f"      partner {c['agreement']}")
    out.append("(explanation only: nothing was sent or stored)")
    return "\n".join(out)


def register(main: click.Group) -> None:
    main.add_command(policy_group)
    existing = main.commands.get("route")
    if isinstance(existing, click.Group):
        existing.add_command(route_explain)
        existing.add_command(route_matrix)
    else:
        main.add_command(route_group)
