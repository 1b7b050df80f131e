"""A district's statement of its commitments, checked against every rule of its section.

SLPS's, for example: no police for the non-violent categories; a counselor or specialist in
every plan for them; a human acknowledgement within five minutes for life-safety tips. A
district writes it once, under ``commitments:`` in its policy section, and ``tipline policy
check``, ``load``, the dashboard's Save and ``tipline route explain`` refuse a policy that
breaks any of it, naming the rule and the line. It is the district's proof that its own rules
keep its promises; the engine also holds police back for the categories it names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from tipline.directory.police import POLICE_ROLE
from tipline.tips.models import Category

CATEGORIES = tuple(c.value for c in Category)
SEVERITY_LIFE_SAFETY = 4
DEFAULT_SUPPORT_ROLES = ("counselor", "social_worker", "family_specialist", "transition_team")
FIELDS = {"no_police_for", "support_for", "support_roles", "life_safety_ack_within"}

# For a contact key: (its role, whether it is police), or None if it is not in the directory.
RoleOf = Callable[[str], tuple[str, bool] | None]


class _Adds(Protocol):
    def add(self, line: int, message: str) -> None: ...


@dataclass(frozen=True)
class Commitments:
    line: int
    district: str
    no_police_for: frozenset[str] = frozenset()
    support_for: frozenset[str] = frozenset()
    support_roles: frozenset[str] = frozenset(DEFAULT_SUPPORT_ROLES)
    life_safety_ack_within: timedelta | None = None

    def describe(self) -> list[str]:
        out = []
        if self.no_police_for:
            out.append(f"no police for {', '.join(sorted(self.no_police_for))}")
        if self.support_for:
            out.append(f"a {' or '.join(sorted(self.support_roles))} in every plan for "
                       f"{', '.join(sorted(self.support_for))}")
        if self.life_safety_ack_within is not None:
            mins = int(self.life_safety_ack_within.total_seconds() // 60)
            out.append(f"life-safety alerts repeat until a person acknowledges, the first "
                       f"step within {mins} minutes")
        return out


def _cats(e: _Adds, value: Any, line: int, what: str) -> frozenset[str]:
    items = value if isinstance(value, list) else [value]
    bad = [x for x in items if x not in CATEGORIES]
    if bad:
        e.add(line, f"commitments {what}: unknown category {bad[0]!r} "
                    f"(known: {', '.join(CATEGORIES)})")
    return frozenset(str(x) for x in items if x in CATEGORIES)


def parse_commitments(e: _Adds, body: Any, line: int, district: str) -> Commitments | None:
    from tipline.directory.validation import ROLES
    from tipline.routing.policy import parse_duration

    if not isinstance(body, dict) or not body:
        e.add(line, "commitments must be a mapping (no_police_for, support_for, "
                    "support_roles, life_safety_ack_within)")
        return None
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        e.add(line, f"unknown field {unknown[0]!r} in commitments (expected one of: "
                    f"{', '.join(sorted(FIELDS))})")
    roles = frozenset(DEFAULT_SUPPORT_ROLES)
    if "support_roles" in body:
        raw = body["support_roles"] if isinstance(body["support_roles"], list) else \
            [body["support_roles"]]
        bad = [r for r in raw if r not in ROLES or r == POLICE_ROLE]
        if bad:
            e.add(line, f"commitments support_roles: {bad[0]!r} is not a student-support role")
        roles = frozenset(str(r) for r in raw if r in ROLES and r != POLICE_ROLE)
    ack = None
    if "life_safety_ack_within" in body:
        try:
            ack = parse_duration(body["life_safety_ack_within"])
        except ValueError as exc:
            e.add(line, f"commitments life_safety_ack_within: {exc}")
    return Commitments(
        line, district,
        _cats(e, body.get("no_police_for", []), line, "no_police_for"),
        _cats(e, body.get("support_for", []), line, "support_for"),
        roles, ack)


def check_commitments(d: Any, c: Commitments, role_of: RoleOf | None) -> list[tuple[int, str]]:
    """Every (line, message) where district section ``d`` breaks ``c``.

    Without ``role_of`` (the file alone) only what the file itself shows is checked: role
    targets and durations. With it (against the directory) only what needs the directory:
    rules that name contacts by key, and the fallback.
    """
    out: list[tuple[int, str]] = []
    says = f"district {d.code} commits to"
    where = f"(commitments, line {c.line})"
    life_safety = _takes_life_safety(d)
    for r in d.rules:
        cats = frozenset(CATEGORIES) if r.default or r.match.categories is None \
            else r.match.categories
        # Contacts and rotas are read from the directory (``role_of`` takes "rota:KEY").
        by_key = [t for t in r.targets() if t.contact or t.rota]
        quiet = cats & c.no_police_for
        if quiet:
            for t in r.targets():
                if role_of is None and t.role == POLICE_ROLE:
                    out.append((t.line, f"rule {r.name!r} alerts police (role {POLICE_ROLE}) "
                                f"for {', '.join(sorted(quiet))}, but {says} no police for "
                                f"them {where}"))
                elif role_of is not None and (t.contact or t.rota) \
                        and (facts := role_of(_key(t))) and facts[1]:
                    out.append((t.line, f"rule {r.name!r} alerts police ({_key(t)}) for "
                                f"{', '.join(sorted(quiet))}, but {says} no police for them "
                                f"{where}"))
        needs = cats & c.support_for
        if needs and (role_of is None) == (not by_key):
            found = any(t.role in c.support_roles for t in r.targets()) or any(
                (facts := role_of(_key(t))) is not None and facts[0] in c.support_roles
                for t in by_key if role_of is not None)
            if not found:
                out.append((r.line, f"rule {r.name!r} alerts no "
                            f"{' or '.join(sorted(c.support_roles))} for "
                            f"{', '.join(sorted(needs))}, but {says} one in every plan for "
                            f"them {where}"))
        if role_of is None and c.life_safety_ack_within is not None \
                and r.name in life_safety and r.steps:
            first = r.steps[0]
            if first.ack_within > c.life_safety_ack_within or first.repeat_every is None:
                limit = int(c.life_safety_ack_within.total_seconds() // 60)
                out.append((first.line, f"rule {r.name!r} takes life-safety tips, but its "
                            f"first step " + ("has no repeat_every (alerts must repeat until "
                                              "someone acknowledges)"
                                              if first.repeat_every is None else
                                              f"waits {_mins(first.ack_within)} for an "
                                              "acknowledgement")
                            + f"; {says} a human acknowledgement within {limit} minutes "
                            f"{where}"))
    if role_of is not None and c.no_police_for:
        for key in d.fallback:
            facts = role_of(key)
            if facts is not None and facts[1]:
                out.append((d.fallback_line, f"fallback contact {key!r} is police, but {says} "
                            f"no police for {', '.join(sorted(c.no_police_for))} (the fallback "
                            f"takes every category) {where}"))
    return out


def _takes_life_safety(d: Any) -> set[str]:
    """Names of the rules that take some life-safety tip: a rule's own matches less those of
    the rules before it in precedence order (the default rule takes only what is left)."""
    from tipline.routing.policy import OTHER_LANGUAGES, OTHER_SCHOOLS

    schools = [*sorted({s for r in d.rules for s in (r.match.schools or ())}), OTHER_SCHOOLS]
    langs = [*sorted({g for r in d.rules for g in (r.match.languages or ())}), OTHER_LANGUAGES]
    taken: set[tuple[str, str, int, str, str]] = set()
    out: set[str] = set()
    for r in d.rules:
        mine = r.cells(schools, langs) - taken
        if any(cell[2] == SEVERITY_LIFE_SAFETY for cell in mine):
            out.add(r.name)
        taken |= mine
    return out


def _key(t: Any) -> str:
    return str(t.contact) if t.contact else f"rota:{t.rota}"


def _mins(value: timedelta) -> str:
    return f"{int(value.total_seconds() // 60)} minutes"
