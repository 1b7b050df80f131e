"""District statistics: counts and response times, computed in SQL from tip metadata only.

Nothing here reads a sealed column: only category, school, channel, timestamps. Counts are
``GROUP BY`` queries and the percentiles are PostgreSQL's ``percentile_cont`` (linear
interpolation), so the database does the work even with 100,000 tips. SQLite (the embedded
default) has no percentile aggregate: there the durations are fetched in one column and the
same interpolation is done in Python; its months are UTC months.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.orm import Session

from tipline.directory.models import School
from tipline.tips.models import Tip

PERCENTILES = (0.5, 0.9)
NO_SCHOOL = "(no school)"


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


def _where(q: StatsQuery) -> ColumnElement[bool]:
    parts: list[ColumnElement[bool]] = [Tip.district_id == q.district_id]
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
    done = and_(_where(q), end_column.is_not(None))
    if _is_pg(session):
        pg_seconds = func.extract("epoch", end_column - Tip.created_at)
        row = session.execute(
            select(func.count(Tip.id),
                   *[func.percentile_cont(p).within_group(pg_seconds) for p in PERCENTILES])
            .where(done)
        ).one()
        count = int(row[0])
        median, p90 = (None if v is None else float(v) for v in row[1:])
        return Timing(count, median, p90)
    seconds = (func.julianday(end_column) - func.julianday(Tip.created_at)) * 86400.0
    values = [float(v) for v in session.execute(
        select(seconds).where(done).order_by(seconds)).scalars()]
    return Timing(len(values), interpolate(values, 0.5), interpolate(values, 0.9))


def district_stats(session: Session, q: StatsQuery) -> Stats:
    """Every aggregate the statistics page and the CSV export show."""
    by_category = sorted(_grouped(session, q, Tip.category), key=lambda kv: (-kv[1], kv[0]))
    by_channel = sorted(_grouped(session, q, Tip.channel), key=lambda kv: (-kv[1], kv[0]))
    by_month = sorted(_grouped(session, q, _month_column(session, q)), key=lambda kv: kv[0])
    school_rows = session.execute(
        select(School.code, School.name, func.count(Tip.id))
        .select_from(Tip).outerjoin(School, School.id == Tip.school_id)
        .where(_where(q)).group_by(School.code, School.name)
    ).all()
    by_school = sorted(
        (Bucket(code or "", name or NO_SCHOOL, int(n)) for code, name, n in school_rows),
        key=lambda b: (-b.count, b.label),
    )
    total = sum(n for _k, n in by_category)
    return Stats(
        total=total,
        by_category=[Bucket(k, k.replace("_", " "), n) for k, n in by_category],
        by_school=by_school,
        by_channel=[Bucket(k, k.upper() if k == "sms" else k, n) for k, n in by_channel],
        by_month=[Bucket(str(k), str(k), n) for k, n in by_month],
        acknowledge=_timing(session, q, Tip.acknowledged_at),
        close=_timing(session, q, Tip.closed_at),
        query=q,
    )


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
    for measure, buckets in (("tips_by_category", stats.by_category),
                             ("tips_by_school", stats.by_school),
                             ("tips_by_channel", stats.by_channel),
                             ("tips_by_month", stats.by_month)):
        for b in buckets:
            writer.writerow((measure, _cell(b.key or NO_SCHOOL), b.count))
    for measure, timing in (("seconds_to_acknowledge", stats.acknowledge),
                            ("seconds_to_close", stats.close)):
        writer.writerow((measure, "tips", timing.count))
        writer.writerow((measure, "median", _round(timing.median)))
        writer.writerow((measure, "p90", _round(timing.p90)))
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
