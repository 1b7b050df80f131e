"""The routing policy: a YAML file a district administrator can read, validated line by line.

``parse_policy`` checks the file on its own (syntax, names, durations, times, overlapping and
unreachable rules, a default rule per district); ``validate_policy`` checks it against the
directory in the database (districts, schools, contacts, and that every step reaches someone).
Both report every problem at once, each message naming the file and line, because the person
fixing it is an administrator in a text editor or the dashboard's policy editor, not a
developer. Nothing here imports Flask. The format is documented in ``docs/routing.md``.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tipline.directory.loader import ROLES
from tipline.directory.models import Contact, District, OnCallRota, School, contact_schools
from tipline.directory.police import POLICE_ROLE, describe_guard, is_police, police_guard
from tipline.routing.commitments import (
    Commitments,
    check_commitments,
    parse_commitments,
)
from tipline.routing.models import RoutingPolicy
from tipline.routing.statements import ACTIVE_POLICY_HEAD
from tipline.tips.models import Category

CATEGORIES: tuple[str, ...] = tuple(c.value for c in Category)
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4)
SLOTS: tuple[str, ...] = ("school_hours", "after_hours")
CHANNELS: tuple[str, ...] = ("sms", "voice", "email")
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
OTHER_SCHOOLS = "*"  # stands for every school a rule does not name, in overlap checks
OTHER_LANGUAGES = "*"  # every language a rule does not name, likewise
REPORTER = "reporter"  # ``speaks: reporter``: the language the reporter used
MAX_RULE_NAME = 60
MAX_POLICY_CHARS = 200_000  # the demo policy is about 10,000


class PolicyError(Exception):
    """The policy is invalid. ``errors`` holds one message per problem, each naming its line."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


# -- the parsed policy -----------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    """A weekly time window in local time; ``end <= start`` wraps past midnight."""

    days: frozenset[int]  # 0 = Monday
    start: time
    end: time

    def contains(self, local: datetime) -> bool:
        t = local.time().replace(tzinfo=None)
        if self.start < self.end:
            return local.weekday() in self.days and self.start <= t < self.end
        # overnight: the part after start belongs to the listed day, the part before end to
        # the day after it.
        if t >= self.start:
            return local.weekday() in self.days
        return t < self.end and (local.weekday() - 1) % 7 in self.days


@dataclass(frozen=True)
class Target:
    line: int
    contact: str | None = None
    role: str | None = None
    on_call_only: bool = False
    rota: str | None = None  # whoever the district's on-call rota names at that moment
    speaks: str | None = None  # a language code, or "reporter": the tip's language
    otherwise: bool = False  # only if the step's earlier targets found no one

    def describe(self) -> str:
        role = (self.role or "").replace("_", " ")
        if self.rota:
            what = f"on call in rota {self.rota}"
        elif self.contact:
            what = f"contact {self.contact}"
        else:
            what = f"every {role} of the school"
        if self.speaks:
            what += " who speaks " + ("the reporter's language" if self.speaks == REPORTER
                                      else self.speaks)
        if self.otherwise:
            what += " (as no one above in this step could be)"
        return what + (" (when on call)" if self.on_call_only else "")


@dataclass(frozen=True)
class Step:
    line: int
    targets: tuple[Target, ...]
    channels: tuple[str, ...]
    ack_within: timedelta
    repeat_every: timedelta | None = None
    include_content: bool = False


@dataclass(frozen=True)
class Match:
    categories: frozenset[str] | None = None  # None: any
    severities: frozenset[int] | None = None
    schools: frozenset[str] | None = None
    slot: str | None = None  # school_hours | after_hours | None (any time)
    languages: frozenset[str] | None = None  # the reporter's language (None: any)


@dataclass(frozen=True)
class Rule:
    name: str
    line: int
    district: str
    match: Match
    steps: tuple[Step, ...]
    priority: int | None = None
    default: bool = False
    description: str = ""

    def cells(self, schools: Iterable[str], languages: Iterable[str] = (OTHER_LANGUAGES,)
              ) -> set[tuple[str, str, int, str, str]]:
        """Every (school, category, severity, slot, language) this rule matches."""
        m = self.match
        return set(itertools.product(
            [s for s in schools if m.schools is None or s in m.schools],
            [c for c in CATEGORIES if m.categories is None or c in m.categories],
            [v for v in SEVERITIES if m.severities is None or v in m.severities],
            [t for t in SLOTS if m.slot is None or t == m.slot],
            [g for g in languages if m.languages is None or g in m.languages],
        ))

    def targets(self) -> Iterator[Target]:
        for s in self.steps:
            yield from s.targets


@dataclass(frozen=True)
class DistrictPolicy:
    code: str
    line: int
    school_hours: tuple[Window, ...]
    fallback: tuple[str, ...]
    fallback_line: int
    rules: tuple[Rule, ...]  # ordered by precedence: priority high to low, default last
    police_only_for: frozenset[str] | None = None
    # A police liaison's acknowledgement stops only police alerts unless this is true.
    police_ack_stops_school_alerts: bool = False
    police_only_for_line: int = 0
    # Who hears of a reporter's later message (routing.notices): "working" (the assignee and
    # whoever acknowledged) or "off".
    reporter_message_alerts: str = "working"
    # Surge grouping (tipline.surge): whether later tips of a threat being worked are folded
    # into its alert chain, and how often the people working it hear "N more tips".
    surge_grouping: bool = True
    surge_notice_every: timedelta = timedelta(minutes=15)
    # The district's statement of what its plans always do (routing.commitments), or None.
    commitments: Commitments | None = None


@dataclass(frozen=True)
class Policy:
    source: str
    name: str
    districts: dict[str, DistrictPolicy]
    no_school_ack_within: timedelta = timedelta(minutes=15)
    no_school_repeat_every: timedelta = timedelta(minutes=5)
    sha256: str = ""
    version: int | None = None

    def rules(self) -> Iterator[Rule]:
        for d in self.districts.values():
            yield from d.rules

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules() if r.name == name), None)


# -- YAML with line numbers ------------------------------------------------------------------
class _Map(dict[str, Any]):
    """A mapping that remembers its own line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[str, int]


class _Seq(list[Any]):
    line: int = 0
    item_lines: list[int]


def _load_yaml(text: str, source: str) -> Any:
    """Compose the YAML, refusing what a policy never needs and an attacker could abuse.

    A policy is a few hundred lines; a size cap, no anchors/aliases (a "billion laughs" file
    expands exponentially when converted) and a nesting limit keep a pasted or uploaded file
    from tying up a web worker, and every refusal is a ``PolicyError`` the editor can show.
    """
    if len(text) > MAX_POLICY_CHARS:
        raise PolicyError([f"{source}:1: the policy has {len(text):,} characters; at most "
                           f"{MAX_POLICY_CHARS:,} are accepted"])
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # the reader refuses control characters here already
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_aliases(node, source)
        return _convert(loader, node, source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise PolicyError([f"{source}:{line}: not valid YAML: {exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise PolicyError([f"{source}:1: not valid YAML: {exc}"]) from None
    except RecursionError:
        raise PolicyError([f"{source}:1: the policy is nested too deeply"]) from None
    except ValueError as exc:  # PyYAML's int() of a number of over 4,300 digits
        raise PolicyError([f"{source}:1: not a value a policy can hold: {exc}"]) from None
    finally:
        if loader is not None:
            loader.dispose()


def _refuse_aliases(root: yaml.Node, source: str) -> None:
    """An alias (``*name``) is the same node object twice in the composed tree."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            raise PolicyError([f"{source}:{node.start_mark.line + 1}: YAML anchors and "
                               "aliases (& and *) are not supported; write the value out"])
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack += [key, value]
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _convert(loader: yaml.SafeLoader, node: yaml.Node, source: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        out = _Map()
        out.line = node.start_mark.line + 1
        out.key_lines = {}
        for k_node, v_node in node.value:
            line = k_node.start_mark.line + 1
            if not isinstance(k_node, yaml.ScalarNode):
                raise PolicyError([f"{source}:{line}: a key must be a plain name, not a list "
                                   "or a mapping (a YAML complex key, '? ...')"])
            key = loader.construct_object(k_node)
            if key == "<<":
                raise PolicyError([f"{source}:{line}: YAML merge keys (<<) are not supported"])
            key = str(key)
            if key in out:
                raise PolicyError([f"{source}:{line}: {key!r} is given twice"])
            out[key] = _convert(loader, v_node, source)
            out.key_lines[key] = line
        return out
    if isinstance(node, yaml.SequenceNode):
        seq = _Seq()
        seq.line = node.start_mark.line + 1
        seq.item_lines = []
        for item in node.value:
            seq.append(_convert(loader, item, source))
            seq.item_lines.append(item.start_mark.line + 1)
        return seq
    return loader.construct_object(node)


# -- small parsers ---------------------------------------------------------------------------
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
# The longest wait a policy may name (the longest in the shipped policies is 2h).
MAX_DURATION = timedelta(days=30)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
_LANG = re.compile(r"^[a-z]{2,3}$")


class _Errors:
    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, line: int, message: str) -> None:
        self.items.append(f"{self.source}:{line}: {message}")


def parse_duration(value: Any) -> timedelta:
    """``"90s"``, ``"5m"``, ``"2h"``, ``"1d"``; a bare number is refused (which unit?), and
    so is one over ``MAX_DURATION``: routing adds these to the time of a tip, and a value
    past what a date can hold failed there, for every tip that reached the step."""
    m = _DURATION.match(value) if isinstance(value, str) else None
    if m and m.group(1).strip("0"):  # a number above zero
        number = m.group(1).lstrip("0")
        if len(number) <= 9:  # else past any limit, and past what int() reads
            found = timedelta(seconds=int(number) * _UNIT[m.group(2)])
            if found <= MAX_DURATION:
                return found
        raise ValueError(f"bad duration {value[:40]!r}: at most {MAX_DURATION.days}d")
    shown = repr(value[:40]) if isinstance(value, str) else repr(value)[:40]
    raise ValueError(f"bad duration {shown}: write a number and a unit, like 5m, 90s or 2h")


def format_duration(value: timedelta | None) -> str | None:
    if value is None:
        return None
    secs = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs and secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def parse_clock(value: Any) -> time:
    """``"07:30"``. Unquoted 07:30 is read by YAML 1.1 as the number 450; that is accepted."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{value // 60:02d}:{value % 60:02d}"
    m = _CLOCK.match(str(value).strip()) if isinstance(value, str) else None
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f"bad time {value!r}: use 24-hour HH:MM, like \"07:00\" or \"17:30\"")
    return time(int(m.group(1)), int(m.group(2)))


def parse_days(value: Any) -> frozenset[int]:
    """``"mon-fri"``, ``"sat,sun"``, ``"daily"`` or a list of day names."""
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"bad days {value!r}: use e.g. mon-fri, sat,sun or daily")
    text = value.strip().lower()
    if text in ("daily", "all", "every day"):
        return frozenset(range(7))
    out: set[int] = set()
    for part in text.split(","):
        ends = [p.strip()[:3] for p in part.split("-")]
        if len(ends) > 2 or any(e not in DAYS for e in ends):
            raise ValueError(f"bad days {value!r}: use e.g. mon-fri, sat,sun or daily")
        a, b = DAYS.index(ends[0]), DAYS.index(ends[-1])
        out.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(out)


def parse_window(item: Any) -> Window:
    if not isinstance(item, dict):
        raise ValueError("a time window needs days, start and end")
    missing = [k for k in ("days", "start", "end") if k not in item]
    if missing:
        raise ValueError(f"a time window needs {', '.join(missing)}")
    w = Window(parse_days(item["days"]), parse_clock(item["start"]), parse_clock(item["end"]))
    if w.start == w.end:
        raise ValueError("a time window's start and end are the same")
    return w


def contact_windows(on_call: Any) -> tuple[Window, ...] | None:
    """The on-call windows of a directory contact, or None for 'always reachable'."""
    if not on_call or not isinstance(on_call, dict) or not on_call.get("windows"):
        return None
    return tuple(parse_window(w) for w in on_call["windows"])


def _line(m: Any, key: str, default: int) -> int:
    return getattr(m, "key_lines", {}).get(key, getattr(m, "line", default))


def _known(e: _Errors, m: _Map, allowed: set[str], what: str) -> None:
    for key in m:
        if key not in allowed:
            e.add(m.key_lines[key], f"unknown field {key!r} in {what} "
                                    f"(expected one of: {', '.join(sorted(allowed))})")


# -- parse -----------------------------------------------------------------------------------
def parse_policy(text: str, source: str) -> Policy:
    """Parse and check a policy file on its own; raises PolicyError listing every problem."""
    data = _load_yaml(text, source)
    e = _Errors(source)
    if not isinstance(data, _Map):
        raise PolicyError([f"{source}:1: a policy is a mapping with at least 'districts:'"])
    _known(e, data, {"policy", "districts", "no_school"}, "the policy")
    no_school_ack, no_school_repeat = timedelta(minutes=15), timedelta(minutes=5)
    ns = data.get("no_school")
    if ns is not None:
        if not isinstance(ns, _Map):
            e.add(_line(data, "no_school", 1), "no_school must be a mapping")
        else:
            _known(e, ns, {"ack_within", "life_safety_repeat_every"}, "no_school")
            no_school_ack = _duration(e, ns, "ack_within", no_school_ack)
            no_school_repeat = _duration(e, ns, "life_safety_repeat_every", no_school_repeat)
    districts: dict[str, DistrictPolicy] = {}
    raw = data.get("districts")
    if not isinstance(raw, _Map) or not raw:
        e.add(_line(data, "districts", data.line),
              "'districts:' must map each district code to its rules")
        raw = _Map()
        raw.key_lines = {}
    names: dict[str, int] = {}
    for code, body in raw.items():
        line = raw.key_lines[code]
        if not isinstance(body, _Map):
            e.add(line, f"district {code!r} must be a mapping with rules")
            continue
        d = _parse_district(e, str(code), body, line, names)
        if d is not None:
            districts[d.code] = d
    if e.items:
        raise PolicyError(e.items)
    for d in districts.values():
        _check_rule_space(e, d)
    if e.items:
        raise PolicyError(e.items)
    return Policy(
        source=source,
        name=str(data.get("policy") or source),
        districts=districts,
        no_school_ack_within=no_school_ack,
        no_school_repeat_every=no_school_repeat,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


def _duration(e: _Errors, m: _Map, key: str, default: timedelta) -> timedelta:
    if key not in m:
        return default
    try:
        return parse_duration(m[key])
    except ValueError as exc:
        e.add(m.key_lines[key], f"{key}: {exc}")
        return default


SURGE_KEYS = ("surge_grouping", "surge_notice_every")


def _parse_district(
    e: _Errors, code: str, body: _Map, line: int, names: dict[str, int]
) -> DistrictPolicy | None:
    _known(e, body, {"school_hours", "fallback", "rules", "police_only_for", "description",
                     *SURGE_KEYS, "police_ack_stops_school_alerts", "reporter_message_alerts",
                     "commitments"},
           f"district {code}")
    commitments = None
    if "commitments" in body:
        commitments = parse_commitments(e, body["commitments"],
                                        _line(body, "commitments", line), code)
    reporter_alerts = body.get("reporter_message_alerts", "working")
    if reporter_alerts is False:  # YAML reads a bare off as false
        reporter_alerts = "off"
    if reporter_alerts not in ("working", "off"):
        e.add(_line(body, "reporter_message_alerts", line),
              "reporter_message_alerts must be 'working' (tell the assignee and whoever "
              "acknowledged when the reporter writes again) or 'off'")
        reporter_alerts = "working"
    surge_on = body.get("surge_grouping", True)
    if not isinstance(surge_on, bool):
        e.add(_line(body, "surge_grouping", line), "surge_grouping must be true or false")
        surge_on = True
    surge_every = _duration(e, body, "surge_notice_every", timedelta(minutes=15))
    if surge_every < timedelta(minutes=1):
        e.add(_line(body, "surge_notice_every", line), "surge_notice_every must be at least 1m")
        surge_every = timedelta(minutes=1)
    police_ack_stops = body.get("police_ack_stops_school_alerts", False)
    if not isinstance(police_ack_stops, bool):
        e.add(_line(body, "police_ack_stops_school_alerts", line),
              "police_ack_stops_school_alerts must be true or false")
        police_ack_stops = False
    windows: list[Window] = []
    sh = body.get("school_hours")
    if sh is None:
        e.add(line, f"district {code} has no school_hours (needed to tell after-hours tips)")
    elif not isinstance(sh, _Seq) or not sh:
        e.add(_line(body, "school_hours", line), "school_hours must be a list of "
              "{days, start, end} windows")
    else:
        for item, item_line in zip(sh, sh.item_lines, strict=True):
            try:
                windows.append(parse_window(item))
            except ValueError as exc:
                e.add(item_line, f"school_hours: {exc}")
    fallback: list[str] = []
    fb = body.get("fallback")
    fb_line = _line(body, "fallback", line)
    if fb is None:
        e.add(line, f"district {code} has no fallback contacts (who gets a tip when no one "
                    "else can be reached)")
    elif not isinstance(fb, _Seq) or not fb or not all(isinstance(x, str) for x in fb):
        e.add(fb_line, "fallback must be a non-empty list of contact keys")
    else:
        fallback = list(fb)
    police_only: frozenset[str] | None = None
    if "police_only_for" in body:
        police_only = frozenset(
            _categories(e, body["police_only_for"], _line(body, "police_only_for", line)) or ()
        )
    rules: list[Rule] = []
    raw_rules = body.get("rules")
    if not isinstance(raw_rules, _Seq) or not raw_rules:
        e.add(_line(body, "rules", line), f"district {code} needs a list of rules")
        raw_rules = _Seq()
        raw_rules.item_lines = []
    for item, item_line in zip(raw_rules, raw_rules.item_lines, strict=True):
        r = _parse_rule(e, code, item, item_line, names)
        if r is not None:
            rules.append(r)
    defaults = [r for r in rules if r.default]
    if not defaults and raw_rules:
        e.add(_line(body, "rules", line), f"district {code} has no default rule: add one with "
              "'default: true' so every tip reaches someone")
    for extra in defaults[1:]:
        e.add(extra.line, f"district {code} has more than one default rule "
              f"(the first is {defaults[0].name!r})")
    ordered = sorted(
        (r for r in rules if not r.default), key=lambda r: -(r.priority or 0)
    ) + defaults[:1]
    return DistrictPolicy(code, line, tuple(windows), tuple(fallback), fb_line,
                          tuple(ordered), police_only,
                          police_ack_stops_school_alerts=police_ack_stops,
                          reporter_message_alerts=reporter_alerts,
                          surge_grouping=surge_on, surge_notice_every=surge_every,
                          police_only_for_line=_line(body, "police_only_for", line),
                          commitments=commitments)


def _categories(e: _Errors, value: Any, line: int) -> frozenset[str] | None:
    items = value if isinstance(value, list) else [value]
    out: set[str] = set()
    for item in items:
        if item == "any":
            return None
        if item not in CATEGORIES:
            e.add(line, f"unknown category {item!r} (known: {', '.join(CATEGORIES)})")
        else:
            out.add(str(item))
    return frozenset(out)


def _severities(e: _Errors, value: Any, line: int) -> frozenset[int] | None:
    """``3``, ``[1, 2]``, ``"2-4"``, ``{min: 3}``, ``{min: 1, max: 2}`` or ``any``."""
    if value == "any":
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int):
            out = {value}
        elif isinstance(value, list):
            out = {int(v) for v in value if not isinstance(v, bool)}
        elif isinstance(value, str) and re.fullmatch(r"\s*\d\s*-\s*\d\s*", value):
            lo, hi = (int(x) for x in value.split("-"))
            out = set(range(lo, hi + 1))
        elif isinstance(value, dict) and set(value) <= {"min", "max"} and value:
            out = set(range(int(value.get("min", 1)), int(value.get("max", 4)) + 1))
        else:
            raise ValueError
    except (TypeError, ValueError):
        e.add(line, f"bad severity {value!r}: use 1-4, a list, a range like \"3-4\", "
                    "or {min: 3}")
        return frozenset()
    if not out or not out <= set(SEVERITIES):
        e.add(line, f"bad severity {value!r}: severities are 1 (low) to 4 (life-safety)")
        return frozenset()
    return frozenset(out)


def _parse_rule(
    e: _Errors, district: str, item: Any, line: int, names: dict[str, int]
) -> Rule | None:
    if not isinstance(item, _Map):
        e.add(line, "a rule is a mapping with name, match and steps")
        return None
    _known(e, item, {"name", "description", "match", "default", "priority", "steps"}, "a rule")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        e.add(line, "a rule needs a name")
        return None
    if len(name) > MAX_RULE_NAME:
        e.add(line, f"rule name {name!r} is longer than {MAX_RULE_NAME} characters")
    if name in names:
        e.add(line, f"rule name {name!r} is already used on line {names[name]}")
    names[name] = line
    default = item.get("default", False) is True
    priority = item.get("priority")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        e.add(_line(item, "priority", line), f"rule {name}: priority must be a whole number")
        priority = None
    match = Match()
    raw_match = item.get("match")
    if default and raw_match:
        e.add(_line(item, "match", line), f"rule {name}: a default rule matches everything "
              "the other rules do not; remove its match")
    elif default and priority is not None:
        e.add(_line(item, "priority", line), f"rule {name}: a default rule has no priority")
    elif not default:
        if not isinstance(raw_match, _Map) or not raw_match:
            e.add(_line(item, "match", line), f"rule {name} needs a match (or 'default: true')")
        else:
            match = _parse_match(e, name, raw_match)
    steps: list[Step] = []
    raw_steps = item.get("steps")
    if not isinstance(raw_steps, _Seq) or not raw_steps:
        e.add(_line(item, "steps", line), f"rule {name} needs at least one step")
    else:
        for step, step_line in zip(raw_steps, raw_steps.item_lines, strict=True):
            s = _parse_step(e, name, step, step_line)
            if s is not None:
                steps.append(s)
    return Rule(name, line, district, match, tuple(steps), priority, default,
                str(item.get("description") or ""))


def _parse_match(e: _Errors, name: str, m: _Map) -> Match:
    _known(e, m, {"categories", "category", "severity", "schools", "school", "time",
                  "languages", "language"},
           f"rule {name}'s match")
    langs = None
    for key in ("languages", "language"):
        if key in m:
            raw_l = m[key] if isinstance(m[key], list) else [m[key]]
            if not raw_l or not all(isinstance(x, str) and _LANG.match(x) for x in raw_l):
                e.add(m.key_lines[key], f"rule {name}: languages are codes like en, es, bs")
            langs = frozenset(str(x) for x in raw_l)
    cats = None
    for key in ("categories", "category"):
        if key in m:
            cats = _categories(e, m[key], m.key_lines[key])
    sev = _severities(e, m["severity"], m.key_lines["severity"]) if "severity" in m else None
    schools = None
    for key in ("schools", "school"):
        if key in m:
            raw = m[key] if isinstance(m[key], list) else [m[key]]
            if not raw or not all(isinstance(s, str) and s for s in raw):
                e.add(m.key_lines[key], f"rule {name}: schools must be a list of school codes")
            schools = frozenset(str(s) for s in raw)
    slot = m.get("time")
    if slot is not None and slot not in (*SLOTS, "any"):
        e.add(m.key_lines["time"], f"rule {name}: bad time {slot!r} (use school_hours, "
                                    "after_hours or any)")
        slot = None
    return Match(cats, sev, schools, None if slot in (None, "any") else str(slot), langs)


def _parse_step(e: _Errors, rule: str, item: Any, line: int) -> Step | None:
    if not isinstance(item, _Map):
        e.add(line, f"rule {rule}: a step is a mapping with alert, channels and ack_within")
        return None
    _known(e, item, {"alert", "channels", "ack_within", "repeat_every", "include_content"},
           f"a step of rule {rule}")
    targets: list[Target] = []
    raw = item.get("alert")
    if not isinstance(raw, _Seq) or not raw:
        e.add(_line(item, "alert", line), f"rule {rule}: a step with no contacts (give "
              "'alert:' a list of {role: ...} or {contact: ...})")
    else:
        for t, t_line in zip(raw, raw.item_lines, strict=True):
            target = _parse_target(e, rule, t, t_line)
            if target is not None:
                targets.append(target)
    channels = item.get("channels", ["sms", "voice", "email"])
    if isinstance(channels, str):
        channels = [channels]
    if not isinstance(channels, list) or not channels:
        e.add(_line(item, "channels", line), f"rule {rule}: channels must be a list")
        channels = []
    for ch in channels:
        if ch not in CHANNELS:
            e.add(_line(item, "channels", line), f"rule {rule}: unknown channel {ch!r} "
                  f"(use {', '.join(CHANNELS)})")
    ack = timedelta(0)
    if "ack_within" not in item:
        e.add(line, f"rule {rule}: a step needs ack_within (how long before escalating)")
    else:
        ack = _duration(e, item, "ack_within", ack)
    repeat = None
    if "repeat_every" in item:
        repeat = _duration(e, item, "repeat_every", timedelta(0)) or None
        if repeat is not None and repeat < timedelta(minutes=1):
            e.add(item.key_lines["repeat_every"], f"rule {rule}: repeat_every must be at "
                  "least 1m (people need time to answer)")
    include = item.get("include_content", False)
    if not isinstance(include, bool):
        e.add(_line(item, "include_content", line), "include_content must be true or false")
        include = False
    return Step(line, tuple(targets), tuple(c for c in channels if c in CHANNELS), ack,
                repeat, include)


def _parse_target(e: _Errors, rule: str, t: Any, line: int) -> Target | None:
    if not isinstance(t, _Map):
        e.add(line, f"rule {rule}: alert entries are {{role: ...}} or {{contact: ...}}")
        return None
    _known(e, t, {"role", "contact", "on_call_only", "rota", "speaks", "otherwise"},
           "an alert entry")
    on_call = t.get("on_call_only", False) is True
    otherwise = t.get("otherwise", False) is True
    speaks = t.get("speaks")
    if speaks is not None and not (isinstance(speaks, str) and (
            speaks == REPORTER or _LANG.match(speaks))):
        e.add(t.key_lines["speaks"], f"rule {rule}: speaks is a language code like bs, or "
              f"'{REPORTER}' (the language the reporter used)")
        speaks = None
    if sum(k in t for k in ("role", "contact", "rota")) != 1:
        e.add(line, f"rule {rule}: an alert entry names exactly one of role, contact or rota")
        return None
    if "rota" in t:
        if not isinstance(t["rota"], str) or not t["rota"]:
            e.add(t.key_lines["rota"], "rota must be an on-call rota key from the directory")
            return None
        return Target(line, rota=t["rota"], speaks=speaks, otherwise=otherwise)
    if "role" in t:
        if not isinstance(t["role"], str) or t["role"] not in ROLES:
            e.add(t.key_lines["role"], f"unknown role {t['role']!r} "
                  f"(known: {', '.join(sorted(ROLES))})")
            return None
        return Target(line, role=str(t["role"]), on_call_only=on_call, speaks=speaks,
                      otherwise=otherwise)
    if not isinstance(t["contact"], str) or not t["contact"]:
        e.add(t.key_lines["contact"], "contact must be a contact key from the directory")
        return None
    return Target(line, contact=t["contact"], on_call_only=on_call, speaks=speaks,
                  otherwise=otherwise)


def _describe_cell(cell: tuple[str, str, int, str, str]) -> str:
    school, cat, sev, slot, lang = cell
    where = "any other school" if school == OTHER_SCHOOLS else f"school {school}"
    said = "" if lang == OTHER_LANGUAGES else f" in language {lang}"
    return f"{cat} severity {sev} during {slot.replace('_', ' ')} at {where}{said}"


def _check_rule_space(e: _Errors, d: DistrictPolicy) -> None:
    """Overlapping rules need distinct priorities; a rule fully covered by others is dead."""
    named = {s for r in d.rules for s in (r.match.schools or ())}
    schools = [*sorted(named), OTHER_SCHOOLS]
    langs = [*sorted({g for r in d.rules for g in (r.match.languages or ())}), OTHER_LANGUAGES]
    plain = [r for r in d.rules if not r.default]
    cells = {r.name: r.cells(schools, langs) for r in plain}
    for a, b in itertools.combinations(sorted(plain, key=lambda r: r.line), 2):
        both = cells[a.name] & cells[b.name]
        if not both:
            continue
        if a.priority is None or b.priority is None or a.priority == b.priority:
            example = _describe_cell(min(both))
            e.add(b.line, f"rule {b.name!r} overlaps rule {a.name!r} (line {a.line}), e.g. "
                  f"{example}; give both a different priority (higher wins) or narrow one")
    for r in plain:
        if r.priority is None:
            continue
        above = [o for o in plain if o is not r and o.priority is not None
                 and o.priority > r.priority]
        covered: set[tuple[str, str, int, str, str]] = set()
        for o in above:
            covered |= cells[o.name]
        if cells[r.name] and cells[r.name] <= covered:
            e.add(r.line, f"rule {r.name!r} is unreachable: every tip it matches is taken by "
                  f"higher-priority rules ({', '.join(o.name for o in above)})")
        elif not cells[r.name]:
            e.add(r.line, f"rule {r.name!r} is unreachable: it matches no tip")
    for r in plain:
        if r.priority is None and not cells[r.name]:
            e.add(r.line, f"rule {r.name!r} is unreachable: it matches no tip")
    if d.police_only_for is not None:
        for r in d.rules:
            cats = set(CATEGORIES) if r.match.categories is None or r.default \
                else set(r.match.categories)
            outside = sorted(cats - d.police_only_for)
            if not outside:
                continue
            for s in r.steps:
                for t in s.targets:
                    if t.role == POLICE_ROLE:
                        e.add(t.line, f"rule {r.name!r} alerts police for {', '.join(outside)}, "
                              f"but district {d.code} allows police only for "
                              f"{', '.join(sorted(d.police_only_for))}")
    if d.commitments is not None:
        for line, message in check_commitments(d, d.commitments, None):
            e.add(line, message)


# -- checks against the directory ------------------------------------------------------------
def validate_policy(session: Session, policy: Policy) -> None:
    """Check every name against the directory and that every step reaches someone."""
    e = _Errors(policy.source)
    districts = {d.code: d for d in session.execute(select(District)).scalars()}
    contacts = {c.key: c for c in session.execute(select(Contact)).scalars()}
    school_rows = session.execute(select(School)).scalars().all()
    rotas = {r.key: r for r in session.execute(select(OnCallRota)).scalars()}

    def role_of(key: str) -> tuple[str, bool] | None:
        """A contact's role and whether it is police; for "rota:KEY", its members' role
        (if they share one) and whether any is police."""
        if key.startswith("rota:"):
            rota = rotas.get(key[5:])
            if rota is None:
                return None
            members = [contacts[m] for m in rota.members or [] if m in contacts]
            roles = {m.role for m in members}
            return (roles.pop() if len(roles) == 1 else "mixed",
                    any(is_police(m) for m in members))
        c = contacts.get(key)
        return None if c is None else (c.role, is_police(c))

    for code, dp in policy.districts.items():
        district = districts.get(code)
        if district is None:
            e.add(dp.line, f"unknown district {code!r} (known: {', '.join(sorted(districts))})")
            continue
        own_schools = {s.code: s for s in school_rows if s.district_id == district.id}
        guard = _PoliceGuard.of(dp, district)
        guard.check_file_guard(e, dp)
        for key in dp.fallback:
            c = contacts.get(key)
            if c is None:
                e.add(dp.fallback_line, f"unknown contact {key!r} in fallback")
            elif not c.active:
                e.add(dp.fallback_line, f"fallback contact {key!r} is inactive")
            elif not (c.sms_number or c.voice_number or c.email):
                e.add(dp.fallback_line, f"fallback contact {key!r} has no number or email")
            elif (outside := _outsider(c, district)) is not None:
                e.add(dp.fallback_line, f"fallback contact {key!r} is {outside}")
            elif is_police(c):
                # the fallback takes tips of every category
                refused = guard.refusal(frozenset(CATEGORIES), file_guard=True)
                if refused:
                    e.add(dp.fallback_line, f"fallback contact {key!r} is police, but "
                          f"{refused[1]}")
        for r in dp.rules:
            for s in sorted(r.match.schools or ()):
                if s not in own_schools:
                    other = next((x for x in school_rows if x.code == s), None)
                    why = "is not in this district" if other else "is unknown"
                    e.add(r.line, f"rule {r.name!r}: school {s!r} {why}")
            cats = frozenset(CATEGORIES) if r.default or r.match.categories is None \
                else r.match.categories
            for step in r.steps:
                for t in step.targets:
                    if t.rota is not None:
                        rota = rotas.get(t.rota)
                        if rota is None or rota.district_id != district.id:
                            e.add(t.line, f"rule {r.name!r}: unknown rota {t.rota!r} (a "
                                  f"district admin keeps {code}'s rotas in the dashboard)")
                        continue
                    _check_target(e, guard, r, t, cats, contacts)
                    named = contacts.get(t.contact) if t.contact else None
                    if named is not None and (outside := _outsider(named, district)):
                        e.add(t.line, f"rule {r.name!r} alerts contact {t.contact!r}, "
                              f"{outside}")
        if dp.commitments is not None:
            for line, message in check_commitments(dp, dp.commitments, role_of):
                e.add(line, message)
        if e.items:
            continue
        _check_steps_reach(session, e, dp, own_schools)
    if e.items:
        raise PolicyError(e.items)


@dataclass(frozen=True)
class _PoliceGuard:
    """A district's police guard: its directory record's, narrowed by the file's own."""

    code: str
    directory: frozenset[str] | None
    involvement: str
    file: frozenset[str] | None

    @classmethod
    def of(cls, dp: DistrictPolicy, district: District) -> _PoliceGuard:
        return cls(dp.code, police_guard(district.police_involvement),
                   district.police_involvement, dp.police_only_for)

    def _directory_text(self) -> str:
        return f"district {self.code}: its directory record says " \
            f"{describe_guard(self.involvement)}"

    def refusal(self, cats: frozenset[str], *, file_guard: bool) -> tuple[str, str] | None:
        """(the categories refused, why) if police may not be alerted for ``cats``.

        The file's own ``police_only_for`` is checked here only where the parser has not
        already checked it (contacts by key, the fallback); a role target is the parser's.
        """
        if file_guard and self.file is not None and cats - self.file:
            return ", ".join(sorted(cats - self.file)), \
                f"district {self.code} allows police only for {', '.join(sorted(self.file))}"
        if self.directory is not None and cats - self.directory:
            return ", ".join(sorted(cats - self.directory)), self._directory_text()
        return None

    def check_file_guard(self, e: _Errors, dp: DistrictPolicy) -> None:
        """``police_only_for`` may narrow the directory's guard, never widen it."""
        if self.file is None or self.directory is None or self.file <= self.directory:
            return
        e.add(dp.police_only_for_line or dp.line,
              f"police_only_for lists {', '.join(sorted(self.file - self.directory))}, but "
              f"{self._directory_text()}; the file can only narrow that")


def _outsider(c: Contact, district: District) -> str | None:
    """Why a district's section may not name contact ``c``, or None if it may: a contact of
    another district, or of a police agency not tied to this one (``agency_districts``),
    would take this district's tips, and its accounts would read them."""
    if c.district_id is not None and c.district_id != district.id:
        other = c.district.code if c.district is not None else "?"
        return f"a contact of district {other}, not of {district.code}"
    if c.agency is not None and district.id not in {d.id for d in c.agency.districts}:
        return (f"of police agency {c.agency.code}, which does not serve district "
                f"{district.code} (the directory ties agencies to districts)")
    return None


def _check_target(e: _Errors, guard: _PoliceGuard, r: Rule, t: Target, cats: frozenset[str],
                  contacts: dict[str, Contact]) -> None:
    if t.contact is None:
        if t.role == POLICE_ROLE:
            refused = guard.refusal(cats, file_guard=False)
            if refused:
                e.add(t.line, f"rule {r.name!r} alerts police (role {POLICE_ROLE}) for "
                      f"{refused[0]}, but {refused[1]}")
        return
    c = contacts.get(t.contact)
    if c is None:
        e.add(t.line, f"unknown contact {t.contact!r}")
    elif is_police(c):
        refused = guard.refusal(cats, file_guard=True)
        if refused:
            e.add(t.line, f"rule {r.name!r} alerts police ({t.contact}) for {refused[0]}, "
                  f"but {refused[1]}")


def _check_steps_reach(
    session: Session, e: _Errors, dp: DistrictPolicy, schools: dict[str, School]
) -> None:
    """Every step of every rule alerts at least one active contact at every school it covers."""
    by_school: dict[int, set[str]] = {}
    for school_id, role in session.execute(
        select(contact_schools.c.school_id, Contact.role)
        .join(Contact, Contact.id == contact_schools.c.contact_id)
        .where(Contact.active.is_(True))
    ):
        by_school.setdefault(school_id, set()).add(role)
    active = set(session.execute(select(Contact.key).where(Contact.active.is_(True))).scalars())
    for r in dp.rules:
        scope = [s for code, s in sorted(schools.items())
                 if r.match.schools is None or code in r.match.schools]
        for n, step in enumerate(r.steps, start=1):
            named = [t.contact for t in step.targets if t.contact and t.contact in active]
            if named or any(t.rota for t in step.targets):  # a rota's gap: the fallback
                continue
            roles = {t.role for t in step.targets if t.role}
            for s in scope:
                if not roles & by_school.get(s.id, set()):
                    e.add(step.line, f"rule {r.name!r} step {n} alerts nobody at school "
                          f"{s.code} (no active {' or '.join(sorted(roles)) or 'contact'} "
                          "there)")


# -- storage ---------------------------------------------------------------------------------
def load_policy(session: Session, text: str, source_name: str, loaded_by: str) -> RoutingPolicy:
    """Parse, validate and store ``text`` as the new active policy version; does not commit."""
    policy = parse_policy(text, source_name)
    validate_policy(session, policy)
    last = session.execute(select(func.max(RoutingPolicy.version))).scalar_one_or_none() or 0
    for old in session.execute(
        select(RoutingPolicy).where(RoutingPolicy.active.is_(True))
    ).scalars():
        old.active = False
    row = RoutingPolicy(
        version=last + 1,
        source_name=source_name[:200],
        source_text=text,
        sha256=policy.sha256,
        active=True,
        loaded_by=loaded_by[:120],
    )
    session.add(row)
    session.flush()
    from tipline.audit.services import record

    record(session, "policy.load", actor=loaded_by[:120], object_type="routing_policy",
           object_id=row.version, detail={"source": row.source_name, "sha256": row.sha256})
    return row


def policy_warnings(session: Session, policy: Policy) -> list[str]:
    """Things that are allowed but worth a look: districts of the directory the policy omits.

    Their tips still reach someone (every district's fallback contacts), but not by a rule.
    """
    codes = session.execute(select(District.code).order_by(District.code)).scalars()
    out = [
        f"{policy.source}: warning: district {code!r} is in the directory but not in the "
        "policy; its tips go to every district's fallback contacts"
        for code in codes if code not in policy.districts
    ]
    named = {t.rota for r in policy.rules() for t in r.targets() if t.rota}
    if named:
        from tipline.directory.rotas import rota_gaps

        out += [f"{policy.source}: warning: {w}" for key in sorted(named)
                for w in rota_gaps(session, key, datetime.now(UTC))]
    return out


def load_policy_file(session: Session, path: Path | str, loaded_by: str) -> RoutingPolicy:
    p = Path(path)
    return load_policy(session, p.read_text(encoding="utf-8"), p.name, loaded_by)


@dataclass
class _Cache:
    sha: str = ""
    policy: Policy | None = None


_cache = _Cache()


def active_policy(session: Session) -> Policy | None:
    """The active policy, parsed once per version (rows are immutable once stored)."""
    head = session.connection().execute(ACTIVE_POLICY_HEAD).first()  # runs for every tip
    return policy_at_head(session, None if head is None else tuple(head))


def policy_at_head(session: Session, head: tuple[Any, ...] | None) -> Policy | None:
    """The parsed policy of an ``ACTIVE_POLICY_HEAD`` row (id, version, sha256) read by the
    caller, perhaps in a statement of its own (intake reads it with the read keys)."""
    if head is None:
        return None
    head_id, version, sha = head
    key = f"{version}:{sha}"
    if _cache.policy is None or _cache.sha != key:
        row = session.get(RoutingPolicy, head_id)
        assert row is not None  # noqa: S101 - just selected
        parsed = parse_policy(row.source_text, row.source_name)
        policy = Policy(parsed.source, parsed.name, parsed.districts,
                        parsed.no_school_ack_within, parsed.no_school_repeat_every,
                        parsed.sha256, row.version)
        _cache.sha, _cache.policy = key, policy
    return _cache.policy


def district_section(session: Session, district_id: int | None) -> DistrictPolicy | None:
    """The active policy's section for this district (None: no district, no policy, or no
    section). Raises PolicyError when the stored policy no longer parses; callers choose the
    safe default for their own option."""
    if district_id is None:
        return None
    code = session.execute(
        select(District.code).where(District.id == district_id)).scalar_one_or_none()
    policy = active_policy(session)
    return policy.districts.get(code) if policy is not None and code else None


def explain(
    session: Session,
    policy: Policy,
    *,
    school_code: str | None,
    district_code: str | None,
    category: str,
    severity: int,
    at: datetime,
    language: str | None = None,
) -> dict[str, Any]:
    """What the engine would do for such a tip, and why; creates nothing."""
    from tipline.routing.engine import plan_for

    return plan_for(session, policy, school_code=school_code, district_code=district_code,
                    category=category, severity=severity, at=at,
                    language=language).explanation
