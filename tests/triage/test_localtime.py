"""Times staff read are in their district's zone, with the zone named (never bare UTC)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tests.staffsupport import make_staff, sign_in
from tests.triage.conftest import World
from tipline.directory import zones
from tipline.directory.models import District
from tipline.tips.models import Tip

WINTER = datetime(2026, 1, 15, 18, 5, tzinfo=UTC)
SUMMER = datetime(2026, 7, 15, 18, 5, tzinfo=UTC)
CHICAGO = ZoneInfo("America/Chicago")


def test_local_text_names_the_zone_and_follows_daylight_saving() -> None:
    assert zones.local_text(WINTER, CHICAGO) == "2026-01-15 12:05 CST"
    assert zones.local_text(SUMMER, CHICAGO) == "2026-07-15 13:05 CDT"
    assert zones.local_text(WINTER.replace(tzinfo=None), CHICAGO) == "2026-01-15 12:05 CST"
    assert zones.local_text(WINTER, CHICAGO, seconds=True) == "2026-01-15 12:05:00 CST"
    assert zones.local_text(None, CHICAGO) == "—"
    assert zones.zone("Not/AZone") == ZoneInfo("UTC")


def test_each_role_reads_in_its_districts_zone(db_session: Session, world: World,
                                               vault: Any) -> None:
    for account in (world.admin, world.staff, world.liaison, world.county_admin):
        assert zones.staff_zone(db_session, account.user) == CHICAGO
    installation, _p, _s = make_staff(db_session, vault, "installation_admin")
    # Every demo district is in Chicago: an account with no district reads Chicago time too.
    assert zones.staff_zone(db_session, installation) == CHICAGO
    assert zones.staff_zone(db_session, None) == CHICAGO
    # Districts in different zones: an account with no district reads UTC, named.
    db_session.execute(update(District).where(District.code == "stlco-demo")
                       .values(timezone="America/New_York"))
    assert zones.staff_zone(db_session, installation) == ZoneInfo("UTC")
    assert zones.staff_zone(db_session, world.county_admin.user) == ZoneInfo("America/New_York")
    assert zones.staff_zone(db_session, world.admin.user) == CHICAGO


def test_queue_tip_and_audit_log_show_chicago_time(client: Any, db_session: Session,
                                                   world: World) -> None:
    tip = world.tips["roosevelt"]
    db_session.execute(update(Tip).where(Tip.id == tip.id).values(created_at=WINTER))
    db_session.commit()
    sign_in(client, world.admin.user.email, world.admin.password, world.admin.secret)
    queue = client.get("/staff/?status=all").get_data(as_text=True)
    assert "2026-01-15 12:05 CST" in queue
    assert not re.search(r"\d\d:\d\d UTC", queue)
    page = client.get(f"/staff/tips/{tip.uid}").get_data(as_text=True)
    assert "2026-01-15 12:05 CST" in page
    assert not re.search(r"\d\d:\d\d UTC", page)
    audit = client.get("/staff/admin/audit").get_data(as_text=True)
    assert "When (America/Chicago)" in audit
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d C[SD]T", audit)
    account = client.get("/staff/account").get_data(as_text=True)
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d C[SD]T", account)
    ref = db_session.execute(select(Tip.reference).where(Tip.id == tip.id)).scalar_one()
    assert ref in queue
