"""On-call rotas a district admin keeps in the dashboard (``tipline.directory.rotas``).

A district admin lists, adds and edits only their own district's rotas, naming only their own
district's contacts; every save is audited (``admin.rota.save``, with what changed). A rota
whose turns would leave a gap (a holiday without cover, an inactive member) is saved with a
warning that names when the gap begins: at that moment routing alerts the district's fallback
contacts instead. Text fields keep the page usable without JavaScript: one member per line,
one swap per line ("2026-11-23 2026-11-29 KEY"), one holiday per line ("2026-12-24 KEY", or
"2026-12-25 -" for no cover).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tipline.accounts.models import StaffUser
from tipline.admin.services import NotFound, _actor, _require_admin
from tipline.audit.services import record
from tipline.directory.models import Contact, OnCallRota
from tipline.directory.rotas import RotaError, row_gaps, spec, spec_of, stored_entries
from tipline.directory.validation import DirectoryError, check_contact_key, check_name
from tipline.directory.zones import zone

MAX_TEXT = 5000


@dataclass(frozen=True)
class RotaInput:
    key: str
    name: str
    turn: str
    handover: str
    starts_on: str
    members: str  # one contact key per line
    swaps: str  # "FROM TO KEY" per line
    holidays: str  # "DATE KEY" or "DATE -" per line


def list_rotas(session: Session, district_id: int) -> list[OnCallRota]:
    return list(session.execute(select(OnCallRota).where(OnCallRota.district_id == district_id)
                                .order_by(OnCallRota.name)).scalars())


def get_rota(session: Session, district_id: int, rota_id: int) -> OnCallRota:
    row = session.get(OnCallRota, rota_id)
    if row is None or row.district_id != district_id:
        raise NotFound("no such rota")
    return row


def _lines(text: str, what: str) -> list[list[str]]:
    if len(text) > MAX_TEXT:
        raise DirectoryError(f"{what}: at most {MAX_TEXT} characters")
    return [line.split() for line in text.splitlines() if line.strip()]


def _entries(data: RotaInput) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
    member_lines = _lines(data.members, "members")
    if any(len(w) != 1 for w in member_lines):
        raise DirectoryError("members: one contact key per line")
    members = [w[0] for w in member_lines]
    swaps = []
    for n, w in enumerate(_lines(data.swaps, "swaps"), start=1):
        if len(w) != 3:
            raise DirectoryError(f"swap line {n}: write FROM TO KEY, e.g. "
                                 "2026-11-23 2026-11-29 slps-night-flores")
        swaps.append({"from": w[0], "to": w[1], "contact": w[2]})
    holidays: list[dict[str, Any]] = []
    for n, w in enumerate(_lines(data.holidays, "holidays"), start=1):
        if len(w) != 2:
            raise DirectoryError(f"holiday line {n}: write DATE KEY, or DATE - for no cover")
        holidays.append({"date": w[0], "contact": None if w[1] == "-" else w[1]})
    return members, swaps, holidays


def save_rota(session: Session, admin: StaffUser, data: RotaInput, rota_id: int | None,
              now: datetime) -> tuple[OnCallRota, list[str]]:
    """Add or edit a rota of the admin's district; returns it and its gap warnings."""
    district_id = _require_admin(admin)
    key = data.key.strip()
    check_contact_key(key, f"rota {key or '?'}")
    check_name(data.name.strip(), f"rota {key}")
    members, swaps, holidays = _entries(data)
    try:
        r = spec(key, data.turn, data.handover.strip(), data.starts_on.strip(), members, swaps,
                 holidays)
    except RotaError as exc:
        raise DirectoryError(f"rota {key}: {exc}") from None
    own = {c.key: c for c in session.execute(
        select(Contact).where(Contact.district_id == district_id)).scalars()}
    named = [*r.members, *(w for _s, _e, w in r.swaps), *(w for _d, w in r.holidays if w)]
    for who in named:
        if who not in own:
            raise DirectoryError(f"rota {key}: {who!r} is not a contact of your district")
    row = get_rota(session, district_id, rota_id) if rota_id is not None else None
    clash = session.execute(select(OnCallRota).where(OnCallRota.key == key)).scalar_one_or_none()
    if clash is not None and clash is not row:
        raise DirectoryError(f"rota {key}: that key is already used")
    before = None if row is None else {
        "key": row.key, "name": row.name, "turn": row.turn, "handover": row.handover,
        "starts_on": row.starts_on.isoformat(), "members": list(row.members or []),
        "swaps": list(row.swaps or []), "holidays": list(row.holidays or [])}
    if row is None:
        row = OnCallRota(district_id=district_id)
        session.add(row)
    row.key, row.name, row.turn = key, data.name.strip(), r.turn
    row.handover, row.starts_on, row.members = f"{r.handover:%H:%M}", r.starts_on, list(r.members)
    row.swaps, row.holidays = stored_entries(r)
    session.flush()
    after = {"key": row.key, "name": row.name, "turn": row.turn, "handover": row.handover,
             "starts_on": row.starts_on.isoformat(), "members": row.members,
             "swaps": row.swaps, "holidays": row.holidays}
    changed = sorted(k for k in after if before is None or before[k] != after[k])
    record(session, "admin.rota.create" if before is None else "admin.rota.save",
           **_actor(admin), object_type="oncall_rota", object_id=row.id,
           detail={"key": row.key, "changed": changed})
    return row, rota_warnings(session, row, now)


def rota_warnings(session: Session, row: OnCallRota, now: datetime) -> list[str]:
    """Gaps in the coming weeks, each with when it begins."""
    return row_gaps(session, row, now)


def on_call_now(row: OnCallRota, now: datetime, tz_name: str) -> tuple[str | None, str]:
    from tipline.directory.rotas import on_call

    try:
        return on_call(spec_of(row), now.astimezone(zone(tz_name)))
    except RotaError as exc:
        return None, str(exc)
