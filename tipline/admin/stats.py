"""District statistics: counts and response times, computed in SQL from tip metadata only.

The tips counted are exactly those a district admin's queue lists with "All" statuses: the
district's, and the tips that name no district (a reporter who named no school; every district
admin's queue shows them, so every district's statistics count them, under "No school named").
Every tip is counted once in each breakdown, so each breakdown adds up to the total.

Nothing here reads a sealed column: only category, severity, school, channel, timestamps. On
PostgreSQL two statements do all the work, each one scan of the tips: the five breakdowns with
``GROUP BY GROUPING SETS`` and the response times (overall and per severity) with
``percentile_cont`` (linear interpolation). SQLite (the embedded default) has neither grouping
sets nor a percentile aggregate: there each breakdown is its own ``GROUP BY`` and the
durations are fetched as one sorted column and interpolated the same way in Python; its
months are UTC months.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, tuple_
from sqlalchemy.orm import Session

from tipline.directory.models import School
from tipline.routing.models import AlertDelivery, Dispatch
from tipline.tips.labels import (
    NO_SCHOOL_LABEL,
    SEVERITY_LABELS,
    category_label,
    channel_label,
)
from tipline.tips.models import Severity, Tip

PERCENTILES = (0.5, 0.9)
LIFE_SAFETY = int(Severity.LIFE_SAFETY)
NO_SCHOOL = NO_SCHOOL_LABEL


@dataclass(frozen=True)
class Bucket:
    key: str
    label: str
    count: int


@dataclass(frozen=True)
class Timing:
    """Seconds from a tip's creation to an event; ``None`` when no tip has reached it."""

    count: int
    median: float | None
    p90: float | None


@dataclass(frozen=True)
class SeverityTiming:
    """Time to acknowledge the tips of one severity (``tips``: all of that severity)."""

    severity: int
    label: str
    tips: int
    acknowledge: Timing


@dataclass(frozen=True)
class DeliveryTiming:
    """Seconds from a tip's arrival to its first alert that reached a phone (the provider's
    "delivered" for a text, the answer for a call), over the tips that have one."""

    label: str
    count: int
    median: float | None
    p99: float | None


@dataclass(frozen=True)
class StatsQuery:
    district_id: int
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    timezone: str = "America/Chicago"


@dataclass(frozen=True)
class Stats:
    total: int
    by_category: list[Bucket]
    by_school: list[Bucket]
    by_channel: list[Bucket]
    by_month: list[Bucket]
    acknowledge: Timing
    close: Timing
    query: StatsQuery = field(repr=False, default=StatsQuery(0))
    by_severity: list[Bucket] = field(default_factory=list)  # life safety first, zeros kept
    # Surge groups (tipline.surge): the counted tips that are in a group of related tips (two
    # or more), and how many such groups they make; separate threats = total - grouped + groups.
    grouped_tips: int = 0
    groups: int = 0
    acknowledge_by_severity: list[SeverityTiming] = field(default_factory=list)
    delivered: list[DeliveryTiming] = field(default_factory=list)


def _where(q: StatsQuery) -> ColumnElement[bool]:
    # The same tips as the district admin's queue (tipline.triage.scope).
    parts: list[ColumnElement[bool]] = [or_(Tip.district_id == q.district_id,
                                            Tip.district_id.is_(None))]
    if q.start is not None:
        parts.append(Tip.created_at >= q.start)
    if q.end is not None:
        parts.append(Tip.created_at < q.end)
    return and_(*parts)


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _grouped(session: Session, q: StatsQuery, column: Any) -> list[tuple[Any, int]]:
    stmt: Select[Any] = (
        select(column.label("k"), func.count(Tip.id)).where(_where(q)).group_by(column)
    )
    return [(k, int(n)) for k, n in session.execute(stmt).all()]


def _month_column(session: Session, q: StatsQuery) -> Any:
    if _is_pg(session):
        return func.to_char(func.timezone(q.timezone, Tip.created_at), "YYYY-MM")
    return func.strftime("%Y-%m", Tip.created_at)


def interpolate(sorted_values: list[float], fraction: float) -> float | None:
    """The same answer as PostgreSQL's ``percentile_cont`` on already sorted values."""
    if not sorted_values:
        return None
    pos = fraction * (len(sorted_values) - 1)
    low = int(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def _timing(session: Session, q: StatsQuery, end_column: Any) -> Timing:
    """SQLite: the durations in one sorted column, interpolated here."""
    done = and_(_where(q), end_column.is_not(None))
    seconds = (func.julianday(end_column) - func.julianday(Tip.created_at)) * 86400.0
    values = [float(v) for v in session.execute(
        select(seconds).where(done).order_by(seconds)).scalars()]
    return Timing(len(values), interpolate(values, 0.5), interpolate(values, 0.9))


def _severity_timings(session: Session, q: StatsQuery) -> dict[int, Timing]:
    """SQLite: time to acknowledge per severity, from one sorted column."""
    done = and_(_where(q), Tip.acknowledged_at.is_not(None))
    seconds = (func.julianday(Tip.acknowledged_at) - func.julianday(Tip.created_at)) * 86400.0
    values: dict[int, list[float]] = {}
    for sev, secs in session.execute(select(Tip.severity, seconds).where(done)
                                     .order_by(Tip.severity, seconds)).all():
        values.setdefault(int(sev), []).append(float(secs))
    return {sev: Timing(len(v), interpolate(v, 0.5), interpolate(v, 0.9))
            for sev, v in values.items()}


def _pg_counts(session: Session, q: StatsQuery) -> dict[str, list[tuple[Any, int]]]:
    """All five breakdowns from one scan: ``GROUP BY GROUPING SETS``."""
    month = _month_column(session, q)
    dims = {"category": Tip.category, "channel": Tip.channel, "school": Tip.school_id,
            "severity": Tip.severity, "month": month}
    stmt = (
        select(*dims.values(), *[func.grouping(c) for c in dims.values()], func.count(Tip.id))
        .where(_where(q))
        .group_by(func.grouping_sets(*[tuple_(c) for c in dims.values()]))
    )
    out: dict[str, list[tuple[Any, int]]] = {name: [] for name in dims}
    names = list(dims)
    n = len(names)
    for row in session.execute(stmt).all():
        values, flags, count = row[:n], row[n:2 * n], int(row[2 * n])
        for i, name in enumerate(names):
            if flags[i] == 0:  # grouped by this dimension in this row
                out[name].append((values[i], count))
                break
    return out


def _counts(session: Session, q: StatsQuery) -> dict[str, list[tuple[Any, int]]]:
    if _is_pg(session):
        return _pg_counts(session, q)
    return {"category": _grouped(session, q, Tip.category),
            "channel": _grouped(session, q, Tip.channel),
            "school": _grouped(session, q, Tip.school_id),
            "severity": _grouped(session, q, Tip.severity),
            "month": _grouped(session, q, _month_column(session, q))}


def _pg_timings(session: Session, q: StatsQuery) -> tuple[Timing, Timing, dict[int, Timing]]:
    """Both response times, and time to acknowledge per severity, in one scan
    (``GROUPING SETS ((), (severity))``; percentile_cont skips the NULLs of open tips)."""
    columns: list[Any] = [Tip.severity, func.grouping(Tip.severity)]
    for end in (Tip.acknowledged_at, Tip.closed_at):
        seconds = func.extract("epoch", end - Tip.created_at)
        columns += [func.count(end),
                    *[func.percentile_cont(p).within_group(seconds) for p in PERCENTILES]]
    stmt = select(*columns).where(_where(q)).group_by(
        func.grouping_sets(tuple_(), tuple_(Tip.severity)))

    def timing(count: Any, median: Any, p90: Any) -> Timing:
        return Timing(int(count), None if median is None else float(median),
                      None if p90 is None else float(p90))

    overall = (Timing(0, None, None), Timing(0, None, None))
    per_severity: dict[int, Timing] = {}
    for row in session.execute(stmt).all():
        if row[1]:  # the grand total row
            overall = (timing(*row[2:5]), timing(*row[5:8]))
        else:
            per_severity[int(row[0])] = timing(*row[2:5])
    return overall[0], overall[1], per_severity


DELIVERY_ROWS = (("sms", False, "Text message"), ("voice", False, "Call (answered)"),
                 ("any", False, "First of either"), ("any", True, "First of either, "
                                                            "life-safety tips"))


def delivery_timings(session: Session, q: StatsQuery) -> list[DeliveryTiming]:
    """Tip arrival -> first alert delivered, per channel (issue 18): what a phone saw, not
    what Twilio accepted. One statement: each tip's first delivery per channel."""
    first = func.min(AlertDelivery.delivered_at)
    rows = session.execute(
        select(Tip.id, Tip.severity, Tip.created_at, AlertDelivery.channel, first)
        .join(Dispatch, Dispatch.tip_id == Tip.id)
        .join(AlertDelivery, AlertDelivery.dispatch_id == Dispatch.id)
        .where(_where(q), AlertDelivery.delivered_at.is_not(None),
               AlertDelivery.channel.in_(("sms", "voice")))
        .group_by(Tip.id, Tip.severity, Tip.created_at, AlertDelivery.channel)).all()
    per: dict[tuple[str, bool], list[float]] = {}
    any_first: dict[int, tuple[bool, float]] = {}
    for tip_id, severity, created, channel, at in rows:
        if at is None:
            continue
        seconds = max(0.0, (_aware(at) - _aware(created)).total_seconds())
        per.setdefault((channel, False), []).append(seconds)
        life = int(severity) >= LIFE_SAFETY
        if tip_id not in any_first or seconds < any_first[tip_id][1]:
            any_first[tip_id] = (life, seconds)
    per[("any", False)] = [v for _life, v in any_first.values()]
    per[("any", True)] = [v for life, v in any_first.values() if life]
    out = []
    for channel, life_only, label in DELIVERY_ROWS:
        values = sorted(per.get((channel, life_only), []))
        out.append(DeliveryTiming(label, len(values), interpolate(values, 0.5),
                                  interpolate(values, 0.99)))
    return out


def _aware(at: datetime) -> datetime:
    """SQLite returns naive UTC datetimes."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def district_stats(session: Session, q: StatsQuery) -> Stats:
    """Every aggregate the statistics page and the CSV export show."""
    counts = _counts(session, q)
    by_category = sorted(counts["category"], key=lambda kv: (-kv[1], kv[0]))
    by_channel = sorted(counts["channel"], key=lambda kv: (-kv[1], kv[0]))
    by_month = sorted(counts["month"], key=lambda kv: kv[0])
    ids = [sid for sid, _n in counts["school"] if sid is not None]
    names = {sid: (code, name) for sid, code, name in session.execute(
        select(School.id, School.code, School.name).where(School.id.in_(ids)))} if ids else {}
    by_school = sorted(
        (Bucket(*names.get(sid, ("", NO_SCHOOL)), n) for sid, n in counts["school"]),
        key=lambda b: (b.label == NO_SCHOOL, -b.count, b.label),
    )
    if _is_pg(session):
        acknowledge, close, ack_by_sev = _pg_timings(session, q)
    else:
        acknowledge = _timing(session, q, Tip.acknowledged_at)
        close = _timing(session, q, Tip.closed_at)
        ack_by_sev = _severity_timings(session, q)
    severity_counts = {int(k): n for k, n in counts["severity"]}
    levels = sorted(set(SEVERITY_LABELS) | set(severity_counts), reverse=True)
    total = sum(n for _k, n in by_category)
    grouped, groups = group_counts(session, q)
    return Stats(
        total=total,
        by_category=[Bucket(k, category_label(k), n) for k, n in by_category],
        by_school=by_school,
        by_channel=[Bucket(k, channel_label(k), n) for k, n in by_channel],
        by_month=[Bucket(str(k), str(k), n) for k, n in by_month],
        acknowledge=acknowledge,
        close=close,
        query=q, grouped_tips=grouped, groups=groups,
        by_severity=[Bucket(str(sev), SEVERITY_LABELS.get(sev, str(sev)),
                            severity_counts.get(sev, 0)) for sev in levels],
        acknowledge_by_severity=[
            SeverityTiming(sev, SEVERITY_LABELS.get(sev, str(sev)), severity_counts.get(sev, 0),
                           ack_by_sev.get(sev, Timing(0, None, None))) for sev in levels],
        delivered=delivery_timings(session, q),
    )


def group_counts(session: Session, q: StatsQuery) -> tuple[int, int]:
    """Counted tips in a group of two or more, and the number of those groups (one query)."""
    from tipline.surge.models import TipGroup, TipSignature

    grouped, groups = session.execute(
        select(func.count(Tip.id), func.count(func.distinct(TipSignature.group_id)))
        .join(TipSignature, TipSignature.tip_id == Tip.id)
        .join(TipGroup, TipGroup.id == TipSignature.group_id)
        .where(_where(q), TipGroup.tip_count > 1)).one()
    return int(grouped), int(groups)


def _cell(value: Any) -> str:
    """No cell may start like a spreadsheet formula."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


CSV_HEADER = ("measure", "group", "value")


def stats_csv(stats: Stats) -> str:
    """Aggregates only: a count per group and the timing figures. No tip, no content."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    writer.writerow(("tips_total", "all", stats.total))
    writer.writerow(("tips_in_groups_of_related_tips", "all", stats.grouped_tips))
    writer.writerow(("groups_of_related_tips", "all", stats.groups))
    for measure, buckets in (("tips_by_category", stats.by_category),
                             ("tips_by_severity", stats.by_severity),
                             ("tips_by_school", stats.by_school),
                             ("tips_by_channel", stats.by_channel),
                             ("tips_by_month", stats.by_month)):
        for b in buckets:  # the labels the page shows
            writer.writerow((measure, _cell(b.label), b.count))
    timings = [("seconds_to_acknowledge", "", stats.acknowledge),
               ("seconds_to_close", "", stats.close)]
    timings += [("seconds_to_acknowledge", f"{t.label}: ", t.acknowledge)
                for t in stats.acknowledge_by_severity]
    for measure, prefix, timing in timings:
        writer.writerow((measure, prefix + "tips", timing.count))
        writer.writerow((measure, prefix + "median", _round(timing.median)))
        writer.writerow((measure, prefix + "p90", _round(timing.p90)))
    for d in stats.delivered:
        writer.writerow(("seconds_to_first_alert_delivered", f"{d.label}: tips", d.count))
        writer.writerow(("seconds_to_first_alert_delivered", f"{d.label}: median",
                         _round(d.median)))
        writer.writerow(("seconds_to_first_alert_delivered", f"{d.label}: p99", _round(d.p99)))
    return out.getvalue()


def _round(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def human_duration(seconds: float | None) -> str:
    """'2 h 05 min', '4 min 10 s', '3 d 4 h': readable at a glance."""
    if seconds is None:
        return "no data"
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"
