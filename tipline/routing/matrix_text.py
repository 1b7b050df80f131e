"""The routing matrix as a Markdown table: per category and severity, who a policy alerts at
one school in school hours and after hours, step by step, with police cells marked.

``docs/routing.md`` carries the SLPS demo's table between two markers; ``tipline route matrix
--school slps-roosevelt --week-of 2026-11-23`` prints it again, and a test fails when the file
and the policy disagree. Every cell is the rule engine's own plan (``plan_for``); nothing is
written.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from tipline.routing.engine import plan_for
from tipline.routing.policy import CATEGORIES, Policy
from tipline.tips.labels import CATEGORY_LABELS, SEVERITY_LABELS, role_label

POLICE_ROLE = "police_liaison"


def sample_times(week_of: date, tz: ZoneInfo) -> dict[str, datetime]:
    """Tuesday 10:00 (school hours) and Saturday 02:00 (after hours) of ``week_of``'s week."""
    monday = week_of - timedelta(days=week_of.weekday())
    return {
        "school_hours": datetime.combine(monday + timedelta(days=1), time(10, 0), tzinfo=tz),
        "after_hours": datetime.combine(monday + timedelta(days=5), time(2, 0), tzinfo=tz),
    }


def _cell(ex: dict[str, object]) -> tuple[str, bool]:
    steps: dict[int, list[str]] = {}
    police = False
    for c in ex.get("contacts", []):  # type: ignore[attr-defined]
        if not c.get("alerted"):
            continue
        label = role_label(str(c["role"]))
        if "on call in rota" in str(c.get("why")):
            label = f"on-call {label} (rota)"
        elif "fallback contact" in str(c.get("why")):
            label = f"{label} (fallback)"
        if c.get("partner"):
            label = f"{c['name']} (partner)"
        if c["role"] == POLICE_ROLE:
            police = True
            label = f"**{label}**"
        names = steps.setdefault(int(c["step"]), [])
        if label not in names:
            names.append(label)
    text = "; ".join(f"{n}. {', '.join(sorted(v))}" for n, v in sorted(steps.items()))
    return text or "nobody", police


def markdown_matrix(session: Session, policy: Policy, school_code: str,
                    times: dict[str, datetime], language: str = "en") -> str:
    header = [
        "| category | severity | school hours "
        f"({times['school_hours']:%a %H:%M}) | after hours ({times['after_hours']:%a %H:%M}) "
        "| police |",
        "|---|---|---|---|---|",
    ]
    rows = []
    for cat in CATEGORIES:
        for sev in (4, 3, 2, 1):
            cells = [_cell(plan_for(session, policy, school_code=school_code,
                                    district_code=None, category=cat, severity=sev, at=at,
                                    language=language).explanation)
                     for at in (times["school_hours"], times["after_hours"])]
            police = "yes" if any(p for _t, p in cells) else "never"
            rows.append(f"| {CATEGORY_LABELS.get(cat, cat)} | {sev} "
                        f"({SEVERITY_LABELS[sev].lower()}) | {cells[0][0]} | {cells[1][0]} "
                        f"| {police} |")
    return "\n".join(header + rows) + "\n"
