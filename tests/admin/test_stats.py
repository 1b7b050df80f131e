from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from tests.admin.helpers import World, make_world
from tests.factories import make_tip
from tipline.admin import stats
from tipline.tips.models import Category, Channel, Severity, Tip

T0 = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


def _known_tips(db_session, vault, queue, w: World) -> list[Tip]:
    """Seven tips in the district (one at 03:00 UTC on 1 March = February in Chicago), one
    outside it. Acknowledged after 60, 120, 180, 240, 600 s; closed after 1 h and 2 h."""
    a, b = w.schools[0].code, w.schools[1].code
    specs = [
        (a, Category.WEAPON, Channel.WEB, T0, 60, 3600),
        (a, Category.WEAPON, Channel.SMS, T0, 120, None),
        (a, Category.BULLYING, Channel.WEB, T0, 180, 7200),
        (b, Category.BULLYING, Channel.VOICE, T0, 240, None),
        (b, Category.BULLYING, Channel.WEB, T0, 600, None),
        (b, Category.SELF_HARM, Channel.SMS, datetime(2026, 3, 1, 3, 0, tzinfo=UTC), None, None),
        (None, Category.OTHER, Channel.WEB, datetime(2026, 1, 5, 12, 0, tzinfo=UTC), None, None),
    ]
    tips = []
    for school, cat, channel, created, ack, close in specs:
        r = make_tip(db_session, vault, queue, body="<script>x</script> words", school_code=school,
                     category=cat, channel=channel)
        tip = db_session.get(Tip, r.tip_id)
        tip.district_id = w.district.id
        tip.created_at = created
        tip.acknowledged_at = None if ack is None else created + timedelta(seconds=ack)
        tip.closed_at = None if close is None else created + timedelta(seconds=close)
        tips.append(tip)
    outside = make_tip(db_session, vault, queue, school_code=w.other_school.code)
    db_session.get(Tip, outside.tip_id).acknowledged_at = T0
    db_session.flush()
    return tips


def test_counts_and_percentiles_are_exact(db_session, vault, queue) -> None:
    w = make_world(db_session, vault)
    _known_tips(db_session, vault, queue, w)
    s = stats.district_stats(db_session, stats.StatsQuery(w.district.id))
    assert s.total == 7
    assert [(b.key, b.count) for b in s.by_category] == [
        ("bullying", 3), ("weapon", 2), ("other", 1), ("self_harm", 1)]
    assert [(b.key, b.count) for b in s.by_channel] == [("web", 4), ("sms", 2), ("voice", 1)]
    assert [(b.label, b.count) for b in s.by_school] == [
        ("Alpha High", 3), ("Beta Middle", 3), (stats.NO_SCHOOL, 1)]
    assert [(b.key, b.count) for b in s.by_month] == [
        ("2026-01", 1), ("2026-02", 1), ("2026-03", 5)]
    assert s.acknowledge == stats.Timing(5, 180.0, pytest.approx(456.0))
    assert s.close == stats.Timing(2, 5400.0, pytest.approx(6840.0))
    assert [(b.label, b.count) for b in s.by_category][:2] == [("Bullying", 3), ("Weapon", 2)]
    assert [(b.label, b.count) for b in s.by_channel] == [("Web", 4), ("SMS", 2), ("Voice", 1)]


def test_period_filter(db_session, vault, queue) -> None:
    w = make_world(db_session, vault)
    _known_tips(db_session, vault, queue, w)
    q = stats.StatsQuery(w.district.id, start=datetime(2026, 3, 1, tzinfo=UTC),
                         end=datetime(2026, 4, 1, tzinfo=UTC))
    s = stats.district_stats(db_session, q)
    assert s.total == 6 and s.acknowledge.count == 5
    empty = stats.district_stats(db_session, stats.StatsQuery(w.other_district.id + 1000))
    assert empty.total == 0 and empty.acknowledge == stats.Timing(0, None, None)


def test_csv_has_aggregates_only(db_session, vault, queue) -> None:
    w = make_world(db_session, vault)
    _known_tips(db_session, vault, queue, w)
    text = stats.stats_csv(stats.district_stats(db_session, stats.StatsQuery(w.district.id)))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(stats.CSV_HEADER)
    assert {r[0] for r in rows[1:]} == {
        "tips_total", "tips_by_category", "tips_by_severity", "tips_by_school",
        "tips_by_channel", "tips_by_month", "seconds_to_acknowledge", "seconds_to_close",
        "tips_in_groups_of_related_tips", "groups_of_related_tips",
        "seconds_to_first_alert_delivered"}
    assert ["seconds_to_acknowledge", "p90", "456"] in rows
    # The groups are the page's labels, and each breakdown adds up to the total.
    assert ["tips_by_school", "Alpha High", "3"] in rows
    assert ["tips_by_school", "No school named", "1"] in rows
    assert ["tips_by_category", "Self-harm or suicide", "1"] in rows
    assert ["tips_by_severity", "High", "7"] in rows
    assert ["seconds_to_acknowledge", "High: median", "180"] in rows
    for measure in ("tips_by_category", "tips_by_severity", "tips_by_school",
                    "tips_by_channel", "tips_by_month"):
        assert sum(int(r[2]) for r in rows if r[0] == measure) == 7, measure
    assert "words" not in text and "script" not in text


def test_interpolation_matches_postgres_definition() -> None:
    assert stats.interpolate([], 0.5) is None
    assert stats.interpolate([5.0], 0.9) == 5.0
    assert stats.interpolate([60, 120, 180, 240, 600], 0.9) == pytest.approx(456.0)
    assert stats.interpolate([1, 2, 3, 4], 0.5) == 2.5


def test_csv_cells_cannot_start_a_formula() -> None:
    s = stats.Stats(1, [], [stats.Bucket("x", "=HYPERLINK(1)", 1)], [], [],
                    stats.Timing(0, None, None), stats.Timing(0, None, None))
    assert "'=HYPERLINK(1)" in stats.stats_csv(s)


def test_human_duration() -> None:
    assert stats.human_duration(None) == "no data"
    assert stats.human_duration(42) == "42 s"
    assert stats.human_duration(456) == "7 min 36 s"
    assert stats.human_duration(5400) == "1 h 30 min"
    assert stats.human_duration(2 * 86400 + 3 * 3600) == "2 d 3 h"


def _on_sqlite(tmp_path, vault, queue, fill) -> stats.Stats:
    """The district's statistics on a fresh embedded (SQLite) database filled by ``fill``."""
    from tipline import migrations
    from tipline.db import Database

    url = f"sqlite:///{tmp_path / 'stats.sqlite3'}"
    migrations.upgrade(url)
    db = Database(url)
    with db.session() as s:
        w = make_world(s, vault)
        fill(s, vault, queue, w)
        result = stats.district_stats(s, stats.StatsQuery(w.district.id))
    db.dispose()
    return result


def test_same_figures_on_sqlite(tmp_path, vault, queue) -> None:
    """The embedded default has no percentile_cont: the Python fallback gives the same answer
    (months there are UTC months, so the 1 March 03:00 UTC tip counts in March)."""
    result = _on_sqlite(tmp_path, vault, queue, _known_tips)
    assert result.total == 7
    assert [(b.key, b.count) for b in result.by_month] == [("2026-01", 1), ("2026-03", 6)]
    assert result.acknowledge == stats.Timing(5, pytest.approx(180.0), pytest.approx(456.0))
    assert result.close == stats.Timing(2, pytest.approx(5400.0), pytest.approx(6840.0))


def _severity_tips(db_session, vault, queue, w: World) -> None:
    """Life-safety tips acknowledged after 30 and 90 s (one open), high ones after 600 s."""
    for sev, ack in ((Severity.LIFE_SAFETY, 30), (Severity.LIFE_SAFETY, 90),
                     (Severity.LIFE_SAFETY, None), (Severity.HIGH, 600), (Severity.LOW, None)):
        r = make_tip(db_session, vault, queue, school_code=w.schools[0].code, severity=sev)
        tip = db_session.get(Tip, r.tip_id)
        tip.created_at = T0
        tip.acknowledged_at = None if ack is None else T0 + timedelta(seconds=ack)
    db_session.flush()


def _check_severity(result: stats.Stats) -> None:
    assert [(b.label, b.count) for b in result.by_severity] == [
        ("Life safety", 3), ("High", 1), ("Medium", 0), ("Low", 1)]
    by = {t.label: t for t in result.acknowledge_by_severity}
    assert by["Life safety"].tips == 3
    assert by["Life safety"].acknowledge == stats.Timing(
        2, pytest.approx(60.0), pytest.approx(84.0))
    assert by["High"].acknowledge == stats.Timing(1, pytest.approx(600.0), pytest.approx(600.0))
    assert by["Low"].acknowledge == stats.Timing(0, None, None) and by["Low"].tips == 1
    assert by["Medium"].tips == 0


def test_severity_breakdown_and_time_to_acknowledge(db_session, vault, queue) -> None:
    w = make_world(db_session, vault)
    _severity_tips(db_session, vault, queue, w)
    _check_severity(stats.district_stats(db_session, stats.StatsQuery(w.district.id)))


def test_severity_figures_on_sqlite(tmp_path, vault, queue) -> None:
    _check_severity(_on_sqlite(tmp_path, vault, queue, _severity_tips))


def test_total_equals_the_district_admins_queue(db_session, vault, queue) -> None:
    """The page's total is the queue's count for the same account: tips that name no school
    (and so no district) are counted, once, under "No school named"; another district's are
    not."""
    from tipline.triage import services as triage

    w = make_world(db_session, vault)
    for code in (w.schools[0].code, w.schools[1].code, None, None, w.other_school.code):
        make_tip(db_session, vault, queue, school_code=code)
    closed = make_tip(db_session, vault, queue, school_code=w.schools[0].code)
    db_session.get(Tip, closed.tip_id).status = "closed"
    db_session.flush()
    page = triage.list_queue(db_session, w.admin, triage.QueueFilters(status="all"))
    result = stats.district_stats(db_session, stats.StatsQuery(w.district.id))
    assert result.total == page.total == 5
    assert ("No school named", 2) in [(b.label, b.count) for b in result.by_school]
    for buckets in (result.by_category, result.by_severity, result.by_school,
                    result.by_channel, result.by_month):
        assert sum(b.count for b in buckets) == result.total
