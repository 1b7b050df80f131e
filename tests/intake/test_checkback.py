"""When the receipt tells a reporter to come back: severity first, then the district's hours."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from tests.conftest import REPO
from tipline.directory.models import District
from tipline.intake.checkback import CheckBack, SchoolHours, check_back, district_hours
from tipline.routing.policy import Window, load_policy_file
from tipline.tips.models import Severity

CHICAGO = ZoneInfo("America/Chicago")
WEEKDAYS = SchoolHours((Window(frozenset(range(5)), time(7, 0), time(17, 0)),), CHICAGO)


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    """December 2026 in Chicago (the 7th is a Monday), as UTC."""
    return datetime(2026, 12, day, hour, minute, tzinfo=CHICAGO).astimezone(UTC)


@pytest.mark.parametrize("severity", [Severity.HIGH, Severity.LIFE_SAFETY])
@pytest.mark.parametrize("when", [_at(7, 10), _at(11, 23), _at(13, 3)])
def test_high_and_life_safety_say_an_hour_at_any_time(severity, when) -> None:
    assert check_back(severity, WEEKDAYS, when) == CheckBack("hour")
    assert check_back(severity, None, when) == CheckBack("hour")


def test_in_school_hours_with_time_left_is_later_today() -> None:
    assert check_back(Severity.MEDIUM, WEEKDAYS, _at(7, 10)) == CheckBack("today")


def test_near_closing_is_the_next_school_morning() -> None:
    got = check_back(Severity.LOW, WEEKDAYS, _at(7, 16))  # Monday 4 pm: one hour left
    assert got.kind == "next_window" and got.days_ahead == 1
    assert got.at == datetime(2026, 12, 8, 7, 0, tzinfo=CHICAGO)


def test_early_morning_is_today_at_opening() -> None:
    got = check_back(Severity.MEDIUM, WEEKDAYS, _at(8, 5, 30))
    assert got.kind == "next_window" and got.days_ahead == 0
    assert got.at == datetime(2026, 12, 8, 7, 0, tzinfo=CHICAGO)


def test_friday_night_is_monday_morning() -> None:
    got = check_back(Severity.MEDIUM, WEEKDAYS, _at(11, 22))  # Friday 10 pm
    assert got.kind == "next_window" and got.days_ahead == 3
    assert got.at == datetime(2026, 12, 14, 7, 0, tzinfo=CHICAGO)


def test_the_districts_timezone_not_the_servers() -> None:
    # 12:30 UTC is 6:30 in Chicago (closed) and 7:30 in New York (open).
    now = datetime(2026, 12, 7, 12, 30, tzinfo=UTC)
    assert check_back(Severity.LOW, WEEKDAYS, now).kind == "next_window"
    east = SchoolHours(WEEKDAYS.windows, ZoneInfo("America/New_York"))
    assert check_back(Severity.LOW, east, now) == CheckBack("today")


def test_no_hours_known_promises_nothing_precise() -> None:
    assert check_back(Severity.LOW, None, _at(7, 10)) == CheckBack("unknown")
    assert check_back(Severity.LOW, SchoolHours((), CHICAGO), _at(7, 10)) == CheckBack("unknown")


def test_district_hours_come_from_the_active_policy(db_session, demo_directory) -> None:
    slps = db_session.execute(select(District).where(District.code == "slps")).scalar_one()
    assert district_hours(db_session, slps.id) is None  # no policy loaded yet
    assert district_hours(db_session, None) is None
    load_policy_file(db_session, REPO / "config" / "policy.demo.yaml", loaded_by="test")
    hours = district_hours(db_session, slps.id)
    assert hours is not None and str(hours.zone) == slps.timezone
    assert hours.windows[0].start == time(7, 0) and hours.windows[0].end == time(17, 0)
