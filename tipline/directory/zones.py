"""The time zone staff read times in, and times written in it with the zone named.

Times are stored in UTC; staff work in their district's local time. A district admin or an
auditor reads in their district's zone, school staff in their first school's district's, a
police liaison in their contact's district's. An account with no district (an installation
administrator, a liaison of an agency serving several districts) reads in the one zone all
districts share, or UTC when they differ: never a zone that is right for one district and
silently wrong for another. Every time shown names its zone ("CST", "CDT", "UTC").
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from tipline.directory.models import Contact, District

log = logging.getLogger(__name__)

__all__ = ["installation_zone", "local_text", "staff_zone", "zone"]


def zone(name: str | None) -> ZoneInfo:
    """The zone called ``name``; UTC (logged) for a name the system does not know."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        log.error("unknown time zone %r; showing UTC", name)
        return ZoneInfo("UTC")


def installation_zone(session: Session) -> ZoneInfo:
    """The zone every district shares; UTC when there are none or they differ."""
    names = set(session.execute(select(District.timezone).distinct()).scalars())
    return zone(names.pop()) if len(names) == 1 else ZoneInfo("UTC")


def _district_id(session: Session, user: Any) -> int | None:
    if getattr(user, "district_id", None):
        return int(user.district_id)
    schools = [s.district_id for s in getattr(user, "schools", None) or []]
    if schools:
        return min(schools)  # one school's district; staff of several districts are rare
    contact_id = getattr(user, "contact_id", None)
    if contact_id:
        found = session.execute(select(Contact.district_id).where(Contact.id == contact_id)
                                ).scalar_one_or_none()
        return int(found) if found else None
    return None


def staff_zone(session: Session, user: Any) -> ZoneInfo:
    """The zone ``user`` (a StaffUser, or None before sign-in) reads times in."""
    district_id = _district_id(session, user) if user is not None else None
    if district_id is not None:
        name = session.execute(select(District.timezone).where(District.id == district_id)
                               ).scalar_one_or_none()
        if name:
            return zone(name)
    return installation_zone(session)


def local_text(value: datetime | None, tz: ZoneInfo, *, seconds: bool = False) -> str:
    """``2026-12-01 14:05 CST``: the stored UTC time in ``tz``, zone named; "—" for none."""
    if value is None:
        return "—"
    if value.tzinfo is None:  # SQLite hands back naive UTC
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(tz)
    return local.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")
