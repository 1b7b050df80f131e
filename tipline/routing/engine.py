"""The rule engine: from (district, school, category, severity, time) to a routing plan.

``plan_for`` is a pure decision over the parsed policy and the directory rows it reads; it
writes nothing, so ``tipline route explain`` and the dashboard's dry run call it freely, and
``PolicyPlanner`` hands the same plan (and explanation) to ``route_job``. Every tip reaches
someone: a district's ``fallback`` contacts are alerted when the matched rule finds nobody,
and a tip without a school goes to every district's fallback contacts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from tipline.directory.models import Contact, District, OnCallRota, School
from tipline.directory.partners import agreement_of, content_allowed
from tipline.directory.police import describe_guard, is_police, police_guard
from tipline.directory.rotas import RotaError, RotaSpec, on_call, spec_of
from tipline.routing import statements as sql
from tipline.routing.policy import (
    REPORTER,
    DistrictPolicy,
    Policy,
    Rule,
    Step,
    Target,
    contact_windows,
    format_duration,
)
from tipline.routing.services import (
    ContactFacts,
    DirectoryPlanner,
    Plan,
    PlanEntry,
    PlanStep,
    contact_channels,
)
from tipline.tips.models import Category, Tip

CATEGORY_VALUES = tuple(c.value for c in Category)

log = logging.getLogger(__name__)

FALLBACK_ACK = timedelta(minutes=15)
LIFE_SAFETY = 4


class UnknownPlace(LookupError):
    """A school or district code that is not in the directory."""


@dataclass
class _Draft:
    """Contacts chosen so far, in step order, and what was said about everyone else."""

    steps: list[PlanStep] = field(default_factory=list)
    step_info: list[dict[str, Any]] = field(default_factory=list)
    alerted: dict[int, int] = field(default_factory=dict)  # contact id -> step number (1-based)
    notes: dict[int, dict[str, Any]] = field(default_factory=dict)  # contact id -> entry


def plan_for(
    session: Session,
    policy: Policy,
    *,
    school_code: str | None,
    district_code: str | None,
    category: str,
    severity: int,
    at: datetime,
    language: str | None = None,
) -> Plan:
    """The plan for a tip described by codes (the CLI and the dashboard's dry run)."""
    school = district = None
    if school_code:
        school = session.execute(
            select(School).where(School.code == school_code)
        ).scalar_one_or_none()
        if school is None:
            raise UnknownPlace(f"unknown school {school_code!r}")
        district = school.district
    if district_code:
        d = session.execute(
            select(District).where(District.code == district_code)
        ).scalar_one_or_none()
        if d is None:
            raise UnknownPlace(f"unknown district {district_code!r}")
        if district is not None and d.id != district.id:
            raise UnknownPlace(f"school {school_code!r} is not in district {district_code!r}")
        district = d
    return plan_for_place(session, policy, school, district, category, severity, at,
                          language=language)


def plan_for_place(
    session: Session,
    policy: Policy,
    school: School | None,
    district: District | None,
    category: str,
    severity: int,
    at: datetime,
    *,
    language: str | None = None,
) -> Plan:
    """``language``: the reporter's (``tips.language``, stored unsealed at intake for this)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    if school is not None and district is None:
        district = school.district
    head: dict[str, Any] = {
        "policy": policy.name,
        "policy_version": policy.version,
        "policy_sha256": policy.sha256[:12],
        "district": district.code if district else None,
        "school": school.code if school else None,
        "category": category,
        "severity": severity,
        "language": language or "en",
        "at": at.astimezone(UTC).isoformat(timespec="seconds"),
    }
    dp = policy.districts.get(district.code) if district else None
    if district is None or dp is None or school is None:
        return _plan_without_school(session, policy, district, dp, category, severity, at,
                                    head)
    tz = _zone(district.timezone)
    local = at.astimezone(tz)
    slot = "school_hours" if any(w.contains(local) for w in dp.school_hours) else "after_hours"
    head |= {"timezone": str(tz), "local_time": local.strftime("%a %Y-%m-%d %H:%M"),
             "time": slot}
    lang = language or "en"
    rule, considered = _match(dp, school.code, category, severity, slot, lang)
    contacts = _Contacts.load(session, dp, school, rule)
    draft = _Draft()
    police_block = police_blocked(category, _guards([dp], [district]))
    ctx = _StepContext(local, police_block, category, lang, dp)
    for n, step in enumerate(rule.steps, start=1):
        _add_step(contacts, draft, rule, n, step, ctx)
    fallback_used = False
    if not draft.steps:
        fallback_used = True
        _add_fallback(session, draft, [dp], f"rule {rule.name} found no one to alert",
                      rule.steps[0].ack_within if rule.steps else FALLBACK_ACK, severity,
                      policy.no_school_repeat_every, category, police_block,
                      known=contacts.by_key)
    _note_others(contacts, draft, dp, school, rule)
    explanation = head | {
        "rule": rule.name,
        "rule_line": rule.line,
        "rule_description": rule.description,
        "matched_because": _why_matched(rule, school.code, category, severity, slot, lang),
        "commitments": dp.commitments.describe() if dp.commitments else [],
        "considered": considered,
        "fallback_used": fallback_used,
        "steps": draft.step_info,
        "contacts": _contact_list(draft),
    }
    return Plan(rule.name, tuple(draft.steps), explanation)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.error("district timezone %r unknown; using UTC", name)
        return ZoneInfo("UTC")


# -- matching --------------------------------------------------------------------------------
def _mismatch(rule: Rule, school: str, category: str, severity: int, slot: str,
              language: str = "en") -> str | None:
    m = rule.match
    if m.languages is not None and language not in m.languages:
        return f"language {language} not in {', '.join(sorted(m.languages))}"
    if m.categories is not None and category not in m.categories:
        return f"category {category} not in {', '.join(sorted(m.categories))}"
    if m.severities is not None and severity not in m.severities:
        return f"severity {severity} not in {', '.join(map(str, sorted(m.severities)))}"
    if m.schools is not None and school not in m.schools:
        return f"school {school} not in {', '.join(sorted(m.schools))}"
    if m.slot is not None and slot != m.slot:
        return f"time is {slot.replace('_', ' ')}, rule is for {m.slot.replace('_', ' ')}"
    return None


def _match(
    dp: DistrictPolicy, school: str, category: str, severity: int, slot: str,
    language: str = "en",
) -> tuple[Rule, list[dict[str, Any]]]:
    considered: list[dict[str, Any]] = []
    for rule in dp.rules:  # precedence order: priority high to low, the default rule last
        why_not = None if rule.default else _mismatch(rule, school, category, severity, slot,
                                                      language)
        considered.append({"rule": rule.name, "line": rule.line, "matched": why_not is None,
                           "why": why_not or ("default rule" if rule.default else "matched")})
        if why_not is None:
            return rule, considered
    raise AssertionError("a parsed policy always has a default rule")  # pragma: no cover


def _why_matched(rule: Rule, school: str, category: str, severity: int, slot: str,
                 language: str = "en") -> str:
    if rule.default:
        return "no other rule of the district matched, so its default rule applies"
    m = rule.match
    parts = [
        f"category {category}" + ("" if m.categories is None else " is listed"),
        f"severity {severity}" + ("" if m.severities is None else " is listed"),
    ]
    if m.schools is not None:
        parts.append(f"school {school} is listed")
    if m.languages is not None:
        parts.append(f"the reporter wrote in {language}, which is listed")
    parts.append(slot.replace("_", " ") + ("" if m.slot is None else " as required"))
    prio = f" (priority {rule.priority})" if rule.priority is not None else ""
    return f"rule {rule.name}{prio}: " + "; ".join(parts)


# -- contacts --------------------------------------------------------------------------------
Guard = tuple[frozenset[str] | None, str]  # categories police may get (None: any), and why


def _guards(dps: list[DistrictPolicy], districts: list[District]) -> list[Guard]:
    """The directory records' guards (``police_involvement``), the files' own, and the
    districts' commitments (``no_police_for``)."""
    out: list[Guard] = [(police_guard(d.police_involvement),
                         f"district {d.code}: {describe_guard(d.police_involvement)}")
                        for d in districts]
    out += [(frozenset(CATEGORY_VALUES) - dp.commitments.no_police_for,
             f"district {dp.code}: commitments, no police for "
             f"{', '.join(sorted(dp.commitments.no_police_for))}")
            for dp in dps if dp.commitments is not None and dp.commitments.no_police_for]
    return out + [(dp.police_only_for, f"district {dp.code}: police_only_for") for dp in dps]


def police_blocked(category: str, guards: list[Guard]) -> str | None:
    """Why police may not be alerted for ``category`` (None: they may).

    The checker enforces the guard when a policy is loaded or saved, but a district's
    ``police_involvement`` or a contact's role can change in the directory afterwards, a
    policy stored before the guard came from the directory was never checked against it, and
    a fallback list is used for every category; the engine therefore checks again on every
    plan, so no edit can send a self-harm tip to police. A tip whose district is unknown is
    held to every district's guard.
    """
    return next((why for allowed, why in guards
                 if allowed is not None and category not in allowed), None)


def _police_note(c: ContactFacts, category: str, where: str) -> dict[str, Any]:
    return _entry(c, alerted=False, why=f"police are never alerted for {category} ({where})")


def _channels(c: ContactFacts, wanted: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    have = {"sms": c.sms_number, "voice": c.voice_number, "email": c.email}
    chosen = tuple(ch for ch in wanted if have.get(ch))
    if chosen:
        return chosen, ""
    fallback = contact_channels(c)
    if fallback:
        return fallback, f"has no {'/'.join(wanted)}; using {'/'.join(fallback)}"
    return (), "has no number or email"


def _on_call(c: ContactFacts, local: datetime) -> bool:
    try:
        windows = contact_windows(c.on_call)
    except ValueError:
        log.error("contact %s has unreadable on-call hours; treated as on call", c.key)
        return True
    if windows is None:
        return True
    tz_name = (c.on_call or {}).get("tz")
    when = local.astimezone(_zone(tz_name)) if tz_name else local
    return any(w.contains(when) for w in windows)


@dataclass(frozen=True)
class _Contacts:
    """Every directory contact a plan for one school can name, read in one query.

    That is the school's contacts, its district's, and every contact the district's rules
    and fallback name by key: all that ``_add_step``, the fallback and ``_note_others`` look
    at. Routing plans a tip of a surge in a few statements instead of one per rule target.
    """

    ordered: tuple[ContactFacts, ...]  # by priority, then id
    by_key: dict[str, ContactFacts]
    at_school: frozenset[int]  # ids of the contacts linked to the tip's school
    # The on-call rotas the matched rule names (one more statement, only for such a rule).
    rotas: dict[str, RotaSpec | str] = field(default_factory=dict)  # str: why unreadable

    @classmethod
    def load(cls, session: Session, dp: DistrictPolicy, school: School,
             rule: Rule | None = None) -> _Contacts:
        named = {t.contact for r in dp.rules for s in r.steps for t in s.targets if t.contact}
        named |= set(dp.fallback)
        rota_keys = sorted({t.rota for t in rule.targets() if t.rota}) if rule else []
        rotas: dict[str, RotaSpec | str] = {}
        if rota_keys:
            for row in session.execute(select(OnCallRota).where(
                    OnCallRota.key.in_(rota_keys),
                    OnCallRota.district_id == school.district_id)).scalars():
                try:
                    rotas[row.key] = spec_of(row)
                except RotaError as exc:
                    rotas[row.key] = str(exc)
            for r in rotas.values():
                if not isinstance(r, str):
                    named |= {*r.members, *(w for _s, _e, w in r.swaps),
                              *(w for _d, w in r.holidays if w)}
        rows = session.connection().execute(sql.PLAN_CONTACTS, {
            "b_school": school.id, "b_district": school.district_id, "b_named": sorted(named),
        }).all()
        ordered = tuple(cast(ContactFacts, r) for r in rows)
        return cls(ordered, {c.key: c for c in ordered},
                   frozenset(r.id for r in rows if r.here), rotas)

    def resolve(self, target: Target, ctx: _StepContext) -> tuple[list[ContactFacts], str]:
        """The contacts a rule target names (one by key, the school's of a role, or whoever
        a rota has on call), and a note when there is nobody."""
        if target.rota is not None:
            return self._on_rota(target.rota, ctx)
        if target.contact is not None:
            c = self.by_key.get(target.contact)
            found = [c] if c is not None else []
        else:
            found = [c for c in self.ordered if c.id in self.at_school and c.role == target.role]
        if target.speaks is not None:
            lang = ctx.language if target.speaks == REPORTER else target.speaks
            found = [c for c in found if lang in _languages(c)]
            if not found:
                return [], f"nobody who speaks {lang} ({target.describe()})"
        return found, ""

    def _on_rota(self, key: str, ctx: _StepContext) -> tuple[list[ContactFacts], str]:
        r = self.rotas.get(key)
        if r is None or isinstance(r, str):
            return [], f"rota {key} " + ("is not in the directory" if r is None
                                         else f"is unreadable ({r})")
        who, why = on_call(r, ctx.local)
        c = self.by_key.get(who) if who else None
        if c is None or not c.active or not contact_channels(c):
            state = why if who is None else f"{who} ({why}) cannot be alerted"
            return [], f"rota {key} has nobody on call at {ctx.local:%a %Y-%m-%d %H:%M}: {state}"
        return [c], f"on call in rota {key} ({why})"


def _entry(c: ContactFacts, **kw: Any) -> dict[str, Any]:
    return {"contact": c.key, "contact_id": c.id, "name": c.name, "role": c.role} | kw


@dataclass(frozen=True)
class _StepContext:
    """What every step of one plan shares: the tip's local time, language and guards."""

    local: datetime
    police_block: str | None
    category: str
    language: str
    dp: DistrictPolicy


def _languages(c: ContactFacts) -> set[str]:
    return {x.strip() for x in str(getattr(c, "languages", "") or "").split(",") if x.strip()}


def _agreement_entry(c: ContactFacts) -> dict[str, Any]:
    a = agreement_of(getattr(c, "kind", None), getattr(c, "agreement", None))
    return {} if a is None else {"partner": True, "agreement": a.describe()}


def _content_allowed(c: ContactFacts) -> bool:
    """A partner gets tip content only if its agreement says so; staff as the step says."""
    return content_allowed(getattr(c, "kind", None), getattr(c, "agreement", None))


def _add_step(
    contacts: _Contacts,
    draft: _Draft,
    rule: Rule,
    number: int,
    step: Step,
    ctx: _StepContext,
) -> None:
    entries: list[PlanEntry] = []
    found_any = False
    for target in step.targets:
        if target.otherwise and found_any:
            continue
        found, empty_note = contacts.resolve(target, ctx)
        if not found and target.contact is not None and not empty_note:
            draft.step_info.append({"note": f"contact {target.contact} is not in the directory"})
        elif empty_note and not found:
            draft.step_info.append({"note": f"rule {rule.name} step {number}: {empty_note}"})
        gap = target.rota is not None and not found
        if gap:
            # A rota's gap at alert time: the district's fallback contacts, never nobody.
            found = [c for k in ctx.dp.fallback if (c := contacts.by_key.get(k)) is not None]
        for c in found:
            if c.id in draft.alerted:
                found_any = True
                continue
            if not c.active:
                draft.notes[c.id] = _entry(c, alerted=False, why=f"inactive (named by rule "
                                           f"{rule.name} step {number})")
                continue
            if ctx.police_block and is_police(c):
                draft.notes[c.id] = _police_note(c, ctx.category, ctx.police_block)
                continue
            if target.on_call_only and not _on_call(c, ctx.local):
                draft.notes[c.id] = _entry(c, alerted=False, why=f"not on call at "
                                           f"{ctx.local:%a %H:%M} (rule {rule.name} step "
                                           f"{number})")
                continue
            channels, note = _channels(c, step.channels)
            if not channels:
                draft.notes[c.id] = _entry(c, alerted=False, why=note)
                continue
            reason = f"rule {rule.name} step {number}: {target.describe()}"
            if gap:
                reason += f"; {empty_note}, so the district's fallback contact"
            elif target.rota is not None:
                reason = f"rule {rule.name} step {number}: {empty_note}"
            partner = _agreement_entry(c)
            content = step.include_content and _content_allowed(c)
            entries.append(PlanEntry(c.id, channels, reason, content))
            found_any = True
            draft.alerted[c.id] = len(draft.steps) + 1
            draft.notes[c.id] = _entry(
                c, alerted=True, step=len(draft.steps) + 1, channels=list(channels),
                why=reason + (f" ({note})" if note else ""), **partner,
            )
    if not entries:
        draft.step_info.append({"rule_step": number, "skipped": True,
                                "why": "no one to alert in this step"})
        return
    delay = sum((s.ack_within or timedelta(0) for s in draft.steps), timedelta(0))
    draft.steps.append(PlanStep(tuple(entries), step.ack_within, delay=delay,
                                repeat_every=step.repeat_every))
    draft.step_info.append({
        "step": len(draft.steps), "rule_step": number, "contacts": len(entries),
        "channels": list(step.channels), "ack_within": format_duration(step.ack_within),
        "starts_after": format_duration(delay) if delay else "at once",
        "repeat_every": format_duration(step.repeat_every),
        "include_content": step.include_content,
    })


def _add_fallback(
    session: Session,
    draft: _Draft,
    districts: list[DistrictPolicy],
    why: str,
    ack: timedelta,
    severity: int,
    repeat: timedelta,
    category: str,
    police_block: str | None,
    known: dict[str, ContactFacts] | None = None,
) -> None:
    """Alert the districts' fallback contacts (``known``: contacts already read, by key)."""
    keys = [k for dp in districts for k in dp.fallback]
    if known is not None:
        contacts = known
    elif keys:
        contacts = {c.key: c for c in session.execute(
            select(Contact).where(Contact.key.in_(keys))
        ).scalars()}
    else:
        contacts = {}
    entries: list[PlanEntry] = []
    for key in keys:
        c = contacts.get(key)
        if c is None or c.id in draft.alerted:
            continue
        if police_block and is_police(c):
            draft.notes[c.id] = _police_note(c, category, f"fallback contact; {police_block}")
            continue
        channels, note = _channels(c, ("sms", "voice", "email"))
        if not c.active or not channels:
            draft.notes[c.id] = _entry(c, alerted=False, why="fallback contact, but "
                                       + ("inactive" if not c.active else note))
            continue
        reason = f"fallback: {why}"
        entries.append(PlanEntry(c.id, channels, reason))
        draft.alerted[c.id] = len(draft.steps) + 1
        draft.notes[c.id] = _entry(c, alerted=True, step=len(draft.steps) + 1,
                                   channels=list(channels), why=reason)
    if not entries:
        log.error("no fallback contact can be alerted (%s)", why)
        return
    rep = repeat if severity >= LIFE_SAFETY else None
    draft.steps.append(PlanStep(tuple(entries), ack, repeat_every=rep))
    draft.step_info.append({
        "step": len(draft.steps), "fallback": True, "contacts": len(entries),
        "ack_within": format_duration(ack), "starts_after": "at once",
        "repeat_every": format_duration(rep), "include_content": False,
    })


def _note_others(
    contacts: _Contacts, draft: _Draft, dp: DistrictPolicy, school: School, rule: Rule
) -> None:
    """Say why each contact of the school and district (and each named one) was not alerted."""
    rows = contacts.ordered
    roles = {t.role for s in rule.steps for t in s.targets if t.role}
    keys = {t.contact for s in rule.steps for t in s.targets if t.contact}
    for c in rows:
        if c.id in draft.notes:
            continue
        if is_police(c):
            why = f"rule {rule.name} does not alert police"
        elif c.role in roles and c.key not in keys:
            why = f"{c.role} of another school, not of {school.code}"
        elif c.key in dp.fallback:
            why = "district fallback contact; only alerted when a rule finds no one"
        else:
            why = f"rule {rule.name} does not alert {c.role.replace('_', ' ')}s"
        draft.notes[c.id] = _entry(c, alerted=False, why=why, **_agreement_entry(c))


def _contact_list(draft: _Draft) -> list[dict[str, Any]]:
    alerted = sorted((n for n in draft.notes.values() if n["alerted"]),
                     key=lambda n: (n["step"], n["contact"]))
    others = sorted((n for n in draft.notes.values() if not n["alerted"]),
                    key=lambda n: n["contact"])
    return alerted + others


def _plan_without_school(
    session: Session,
    policy: Policy,
    district: District | None,
    dp: DistrictPolicy | None,
    category: str,
    severity: int,
    at: datetime,
    head: dict[str, Any],
) -> Plan:
    """No school named (or a district the policy lacks): the fallback contacts, at once."""
    if dp is not None:
        why, scope = f"the tip names no school in {dp.code}", [dp]
    elif district is not None:
        why = f"district {district.code} has no section in the policy; every district's fallback"
        scope = list(policy.districts.values())
    else:
        why, scope = "the tip names no school; every district's fallback", \
            list(policy.districts.values())
    # Held to the guard of every district whose fallback it uses, and of its own district;
    # a tip that names no district, to every district's of the directory.
    others = {d.code for d in scope} - {district.code if district else ""}
    records = [district] if district is not None else []
    if district is None or others:
        records += session.execute(
            select(District) if district is None else
            select(District).where(District.code.in_(sorted(others)))).scalars()
    draft = _Draft()
    _add_fallback(session, draft, scope, why, policy.no_school_ack_within, severity,
                  policy.no_school_repeat_every, category,
                  police_blocked(category, _guards(scope, records)))
    explanation = head | {
        "rule": "no-school",
        "rule_line": None,
        "matched_because": why,
        "considered": [],
        "fallback_used": True,
        "steps": draft.step_info,
        "contacts": _contact_list(draft),
    }
    return Plan("no-school", tuple(draft.steps), explanation)


# -- the planner route_job uses ----------------------------------------------------------------
class PolicyPlanner:
    """Plans by the loaded policy; on an engine error, by the directory, so no tip is stuck."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def plan(self, session: Session, tip: Tip, now: datetime) -> Plan:
        try:
            plan = plan_for_place(session, self.policy, tip.school, tip.district,
                                  tip.category, int(tip.severity), now,
                                  language=tip.language)
        except Exception:
            log.exception("policy engine failed for tip %s; using the directory default",
                          tip.reference)
            return self._directory(session, tip, now, "policy engine error; directory default")
        if plan.steps:
            return plan
        # Even the fallback contacts could not be alerted (all inactive since the policy was
        # loaded): the directory default is better than nobody.
        log.error("policy found nobody for tip %s; using the directory default", tip.reference)
        return self._directory(session, tip, now, "policy found nobody; directory default",
                               plan.explanation)

    @staticmethod
    def _directory(session: Session, tip: Tip, now: datetime, note: str,
                   policy_explanation: dict[str, Any] | None = None) -> Plan:
        plan = DirectoryPlanner().plan(session, tip, now)
        extra: dict[str, Any] = {"note": note}
        if policy_explanation is not None:
            extra["policy_explanation"] = policy_explanation
        return Plan(plan.rule, plan.steps, plan.explanation | extra)
