"""On-call rotas: who of a district answers at a given moment.

A rota lists people (contact keys) who take turns, weekly or nightly, each turn starting at
the rota's handover time in the district's time zone. A swap gives the days of a turn to
someone else; a holiday names its cover, or nobody. Whoever the rota names at the moment a tip
arrives is alerted (a policy target ``{rota: KEY}``); a moment when it names nobody (a holiday
without cover, an inactive member, before the rota starts) is a *gap*: routing then alerts the
district's fallback contacts, never nobody, and the checks here warn about a gap before it
begins. Pure functions: the dashboard, the directory loader and the engine share them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

TURNS = ("weekly", "nightly")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MAX_MEMBERS = 60
MAX_ENTRIES = 200
GAP_HORIZON = timedelta(days=28)  # how far ahead checks look for a gap


class RotaError(ValueError):
    """A rota is malformed; the message names the field."""


@dataclass(frozen=True)
class RotaSpec:
    """A rota's fields, checked: what the engine and the checks read."""

    key: str
    turn: str
    handover: time
    starts_on: date
    members: tuple[str, ...]
    swaps: tuple[tuple[date, date, str], ...]
    holidays: tuple[tuple[date, str | None], ...]


def _date(value: Any, what: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise RotaError(f"{what} must be a date like 2026-12-24 (not {value!r})") from None


def spec(key: str, turn: Any, handover: Any, starts_on: Any, members: Any, swaps: Any,
         holidays: Any) -> RotaSpec:
    """Check a rota's fields (from the directory file, the dashboard or the database)."""
    if turn not in TURNS:
        raise RotaError(f"turn must be weekly or nightly (not {turn!r})")
    m = _CLOCK.match(str(handover))
    if not m:
        raise RotaError(f"handover must be a 24-hour time like \"17:00\" (not {handover!r})")
    if not isinstance(members, list) or not members or not all(
            isinstance(x, str) and x for x in members):
        raise RotaError("a rota needs at least one member (contact keys, in turn order)")
    if len(members) > MAX_MEMBERS:
        raise RotaError(f"a rota has at most {MAX_MEMBERS} members")
    out_swaps: list[tuple[date, date, str]] = []
    for n, s in enumerate(swaps or [], start=1):
        if not isinstance(s, Mapping) or not isinstance(s.get("contact"), str):
            raise RotaError(f"swap {n} needs from, to and contact")
        start, end = _date(s.get("from"), f"swap {n} from"), _date(s.get("to"), f"swap {n} to")
        if end < start:
            raise RotaError(f"swap {n} ends before it starts")
        out_swaps.append((start, end, str(s["contact"])))
    out_hol: list[tuple[date, str | None]] = []
    for n, h in enumerate(holidays or [], start=1):
        if not isinstance(h, Mapping) or not (h.get("contact") is None
                                               or isinstance(h.get("contact"), str)):
            raise RotaError(f"holiday {n} needs a date and a contact (or contact: null)")
        out_hol.append((_date(h.get("date"), f"holiday {n} date"), h.get("contact") or None))
    if len(out_swaps) + len(out_hol) > MAX_ENTRIES:
        raise RotaError(f"a rota has at most {MAX_ENTRIES} swaps and holidays")
    return RotaSpec(key, str(turn), time(int(m.group(1)), int(m.group(2))),
                    _date(starts_on, "starts_on"), tuple(members), tuple(out_swaps),
                    tuple(out_hol))


def stored_entries(r: RotaSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A spec's swaps and holidays as the JSON the ``oncall_rotas`` row keeps."""
    return ([{"from": s.isoformat(), "to": e.isoformat(), "contact": w} for s, e, w in r.swaps],
            [{"date": d.isoformat(), "contact": w} for d, w in r.holidays])


def spec_of(row: Any) -> RotaSpec:
    """The spec of a stored ``OnCallRota`` row."""
    return spec(row.key, row.turn, row.handover, row.starts_on, list(row.members or []),
                row.swaps, row.holidays)


def turn_day(r: RotaSpec, local: datetime) -> date:
    """The day whose turn covers ``local``: a turn runs from one handover to the next."""
    day = local.date()
    return day if local.time().replace(tzinfo=None) >= r.handover else day - timedelta(days=1)


def on_call(r: RotaSpec, local: datetime) -> tuple[str | None, str]:
    """(contact key or None, why) for the moment ``local`` (in the district's time zone)."""
    day = turn_day(r, local)
    for hday, cover in r.holidays:
        if hday == day:
            return (cover, f"holiday {hday} cover") if cover else \
                (None, f"holiday {hday} with no cover")
    for start, end, who in r.swaps:
        if start <= day <= end:
            return who, f"swap {start} to {end}"
    if day < r.starts_on:
        return None, f"rota starts on {r.starts_on}"
    days = (day - r.starts_on).days
    index = days // 7 if r.turn == "weekly" else days
    who = r.members[index % len(r.members)]
    first = r.starts_on + timedelta(days=(index * 7 if r.turn == "weekly" else index))
    return who, f"{r.turn} turn from {first} {r.handover:%H:%M}"


def gaps(r: RotaSpec, reachable: Mapping[str, bool], start: datetime,
         horizon: timedelta = GAP_HORIZON) -> list[str]:
    """Every turn in ``[start, start + horizon)`` that names nobody who can be alerted.

    ``reachable`` maps contact keys to whether they are active and have a number or email
    (absent: not in the district). One message per gap, with when it begins.
    """
    out: list[str] = []
    seen: set[date] = set()
    step = datetime.combine(turn_day(r, start), r.handover, tzinfo=start.tzinfo)
    while step < start + horizon:
        moment = max(step, start)
        day = turn_day(r, moment)
        if day not in seen:
            seen.add(day)
            who, why = on_call(r, moment)
            if who is None:
                out.append(f"rota {r.key} has nobody on call from {moment:%a %Y-%m-%d %H:%M} "
                           f"({why}); its tips would go to the district's fallback contacts")
            elif not reachable.get(who, False):
                state = "not a contact of the district" if who not in reachable else \
                    "inactive or without a number or email"
                out.append(f"rota {r.key} names {who} from {moment:%a %Y-%m-%d %H:%M} ({why}), "
                           f"who is {state}; its tips would go to the district's fallback "
                           "contacts")
        step += timedelta(days=1)
    return out


def rota_gaps(session: Any, key: str, now: datetime,
              horizon: timedelta = GAP_HORIZON) -> list[str]:
    """The gaps of stored rota ``key`` from ``now``, in its district's time zone."""
    from sqlalchemy import select

    from tipline.directory.models import OnCallRota

    row = session.execute(select(OnCallRota).where(OnCallRota.key == key)).scalar_one_or_none()
    return [] if row is None else row_gaps(session, row, now, horizon)


def row_gaps(session: Any, row: Any, now: datetime,
             horizon: timedelta = GAP_HORIZON) -> list[str]:
    """The gaps of a stored rota row from ``now``, in its district's time zone: a turn nobody
    reachable holds (a contact inactive or without a number or email counts as nobody)."""
    from sqlalchemy import select

    from tipline.directory.models import Contact
    from tipline.directory.zones import zone

    contacts = session.execute(
        select(Contact).where(Contact.district_id == row.district_id)).scalars()
    reachable = {c.key: bool(c.active and (c.sms_number or c.voice_number or c.email))
                 for c in contacts}
    try:
        r = spec_of(row)
    except RotaError as exc:
        return [f"rota {row.key} is unreadable ({exc}); its tips go to the district's fallback"]
    tz = row.district.timezone if row.district is not None else None
    return gaps(r, reachable, now.astimezone(zone(tz)), horizon)
