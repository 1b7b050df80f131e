"""When the receipt tells a reporter to come back, from what routing actually knows.

The receipt must not promise "a day or two" for a weapon tip whose staff answer in minutes, nor
"soon" at 11 pm on a Friday for a bullying tip that staff read during school hours. The inputs
are the tip's final severity (after the danger answer and triage) and the school hours of the
tip's district in the active routing policy (``school_hours``, in the district's timezone):

- high or life-safety: staff are alerted at once, whatever the hour (the policy escalates
  and repeats those alerts), so "check back in about an hour";
- otherwise, inside school hours with at least ``SOON`` left: "later today";
- otherwise the start of the next school-hours window: "today/tomorrow/on Monday after 7:00";
- no district hours known (no school named, no policy): "in a few hours, and again tomorrow".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from tipline.directory.models import District
from tipline.routing.policy import Window, active_policy
from tipline.tips.models import Severity

# Inside school hours, "later today" only when staff still have this long before closing.
SOON = timedelta(hours=2)


@dataclass(frozen=True)
class SchoolHours:
    windows: tuple[Window, ...]
    zone: ZoneInfo


@dataclass(frozen=True)
class CheckBack:
    """``kind``: ``hour``, ``today``, ``next_window`` (at ``at``, local) or ``unknown``."""

    kind: Literal["hour", "today", "next_window", "unknown"]
    at: datetime | None = None
    days_ahead: int = 0  # for next_window: 0 today, 1 tomorrow, ...


def _open(windows: Sequence[Window], local: datetime) -> bool:
    return any(w.contains(local) for w in windows)


def _next_start(windows: Sequence[Window], local: datetime) -> datetime | None:
    """The first window start after ``local`` (within a week and a day), in local time."""
    starts = [
        datetime.combine(local.date() + timedelta(days=d), w.start, tzinfo=local.tzinfo)
        for d in range(9)
        for w in windows
        if (local.date() + timedelta(days=d)).weekday() in w.days
    ]
    later = [s for s in starts if s > local]
    return min(later) if later else None


def check_back(severity: int, hours: SchoolHours | None, now: datetime) -> CheckBack:
    """When to tell the reporter to come back (``now`` must be timezone-aware)."""
    if severity >= Severity.HIGH:
        return CheckBack("hour")
    if hours is None or not hours.windows:
        return CheckBack("unknown")
    local = now.astimezone(hours.zone)
    if _open(hours.windows, local) and _open(hours.windows, local + SOON):
        return CheckBack("today")
    start = _next_start(hours.windows, local)
    if start is None:
        return CheckBack("unknown")
    return CheckBack("next_window", start, (start.date() - local.date()).days)


def district_hours(session: Session, district_id: int | None) -> SchoolHours | None:
    """The school hours of a district in the active policy; None if unknown."""
    if district_id is None:
        return None
    policy = active_policy(session)
    district = session.get(District, district_id)
    if policy is None or district is None:
        return None
    dp = policy.districts.get(district.code)
    if dp is None:
        return None
    try:
        zone = ZoneInfo(district.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return SchoolHours(dp.school_hours, zone)
