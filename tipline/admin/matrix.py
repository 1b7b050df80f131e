"""The routing matrix: who the active policy alerts, for every category by severity, in school
hours and after hours, at one school. A district admin reads it (and prints it) instead of the
YAML; it is also the record of which tips can ever reach police.

Each cell is the plan the rule engine makes (``routing.engine.plan_for_place``, the same call
``tipline route explain`` and routing itself make) for a tip at the chosen school at one
representative time of each slot: nothing is written, nothing is sent. Slots other than these
two times can differ only by contacts' own on-call hours, which the page says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tipline.directory.models import Contact, District, School
from tipline.directory.police import describe_guard, is_police
from tipline.directory.zones import zone
from tipline.routing.engine import plan_for_place
from tipline.routing.policy import DistrictPolicy, Policy, Window
from tipline.tips.labels import CATEGORY_LABELS, SEVERITY_LABELS, role_label
from tipline.tips.models import Category, Severity

SLOTS = (("school_hours", "School hours"), ("after_hours", "After hours"))
# Tried in order for the after-hours example: the 2 a.m. weekend case first.
AFTER_HOURS_CANDIDATES = ((5, time(2, 0)), (2, time(21, 0)), (6, time(14, 0)))


class NoSchool(LookupError):
    """The district has no school (a matrix is per school: rules alert a school's roles)."""


@dataclass(frozen=True)
class Person:
    name: str
    role: str
    channels: tuple[str, ...]
    police: bool


@dataclass(frozen=True)
class Step:
    number: int
    starts: str  # "at once", "after 15m"
    ack_within: str
    repeat_every: str | None
    people: tuple[Person, ...]


@dataclass(frozen=True)
class Cell:
    rule: str
    steps: tuple[Step, ...]
    fallback: bool
    police_held_back: tuple[str, ...]  # police contacts the guard kept out, by name

    @property
    def police(self) -> bool:
        return any(p.police for s in self.steps for p in s.people)


@dataclass(frozen=True)
class Row:
    category: str
    label: str
    cells: dict[int, dict[str, Cell]]  # severity -> slot -> cell

    @property
    def police(self) -> bool:
        return any(c.police for by_slot in self.cells.values() for c in by_slot.values())


@dataclass(frozen=True)
class Matrix:
    district: District
    school: School
    policy_name: str
    policy_version: int | None
    guard: str
    times: dict[str, datetime]  # slot -> the local time used
    severities: tuple[tuple[int, str], ...]
    rows: tuple[Row, ...]

    @property
    def police_categories(self) -> list[str]:
        return [r.label for r in self.rows if r.police]

    @property
    def never_police_categories(self) -> list[str]:
        return [r.label for r in self.rows if not r.police]


def _week_start(now: datetime) -> date:
    """Monday of the week after ``now`` (a whole week ahead: one fixed week per page)."""
    today = now.date()
    return today + timedelta(days=7 - today.weekday())


def slot_times(dp: DistrictPolicy, now_local: datetime) -> dict[str, datetime]:
    """One local time inside the district's school hours and one outside them."""
    monday = _week_start(now_local)
    tz = now_local.tzinfo

    def at(day: int, t: time) -> datetime:
        return datetime.combine(monday + timedelta(days=day), t, tzinfo=tz)

    def inside(when: datetime) -> bool:
        return any(w.contains(when) for w in dp.school_hours)

    out: dict[str, datetime] = {}
    for w in sorted(dp.school_hours, key=lambda w: (min(w.days, default=0), w.start)):
        when = at(min(w.days, default=0), _middle(w))
        if inside(when):
            out["school_hours"] = when
            break
    for day, t in AFTER_HOURS_CANDIDATES:
        if not inside(at(day, t)):
            out["after_hours"] = at(day, t)
            break
    else:  # school hours around the clock on those days: any hour of the week outside them
        out["after_hours"] = next((at(h // 24, time(h % 24)) for h in range(7 * 24)
                                   if not inside(at(h // 24, time(h % 24)))), at(5, time(2)))
    return out


def _middle(w: Window) -> time:
    start = w.start.hour * 60 + w.start.minute
    end = w.end.hour * 60 + w.end.minute
    if end <= start:
        end += 24 * 60
    mid = (start + (end - start) // 2) % (24 * 60)
    return time(mid // 60, mid % 60)


def _cell(ex: dict[str, Any], police_ids: set[int]) -> Cell:
    people: dict[int, list[Person]] = {}
    held: list[str] = []
    for c in ex.get("contacts", []):
        if c.get("alerted"):
            role = role_label(str(c["role"]))
            # "Dana Reyes (counselor)" already says the role: not "(counselor) (counselor)".
            people.setdefault(int(c["step"]), []).append(Person(
                c["name"], "" if role.lower() in str(c["name"]).lower() else role,
                tuple(c.get("channels") or ()), c["contact_id"] in police_ids))
        elif c["contact_id"] in police_ids and "police are never alerted" in str(c.get("why")):
            held.append(c["name"])
    steps = tuple(
        Step(int(s["step"]), s["starts_after"], s["ack_within"], s.get("repeat_every"),
             tuple(people.get(int(s["step"]), ())))
        for s in ex.get("steps", []) if "step" in s)
    return Cell(str(ex.get("rule", "")), steps, bool(ex.get("fallback_used")), tuple(held))


def schools_of(session: Session, district: District) -> list[School]:
    return list(session.execute(select(School).where(School.district_id == district.id)
                                .order_by(School.active.desc(), School.name)).scalars())


def routing_matrix(session: Session, policy: Policy, district: District, school: School,
                   now: datetime) -> Matrix:
    """Every category by severity by slot at ``school`` under ``policy``; writes nothing."""
    dp = policy.districts.get(district.code)
    tz = zone(district.timezone)
    times = slot_times(dp, now.astimezone(tz)) if dp is not None else {
        "school_hours": now.astimezone(tz), "after_hours": now.astimezone(tz)}
    severities = tuple((int(s), SEVERITY_LABELS[int(s)]) for s in sorted(Severity, reverse=True))
    explanations: dict[tuple[str, int, str], dict[str, Any]] = {}
    for cat in Category:
        for sev, _label in severities:
            for slot, _slot_label in SLOTS:
                plan = plan_for_place(session, policy, school, district, cat.value, sev,
                                      times[slot])
                explanations[(cat.value, sev, slot)] = plan.explanation
    ids = {c["contact_id"] for ex in explanations.values() for c in ex.get("contacts", [])}
    police_ids = {c.id for c in session.execute(
        select(Contact).where(Contact.id.in_(sorted(ids)))).scalars() if is_police(c)}
    rows = tuple(
        Row(cat.value, CATEGORY_LABELS.get(cat.value, cat.value),
            {sev: {slot: _cell(explanations[(cat.value, sev, slot)], police_ids)
                   for slot, _l in SLOTS} for sev, _label in severities})
        for cat in Category)
    return Matrix(district, school, policy.name, policy.version,
                  describe_guard(district.police_involvement), times, severities, rows)
