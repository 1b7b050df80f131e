"""Loading a directory file (districts, schools, agencies, contacts) into the database.

Idempotent: rows are matched by code/key and updated, so re-loading a corrected file is safe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from tipline.directory.models import Contact, District, OnCallRota, PoliceAgency, School
from tipline.directory.police import DEFAULT as DEFAULT_INVOLVEMENT
from tipline.directory.validation import (
    E164,
    ROLES,
    DirectoryError,
    check_contact,
    check_police_involvement,
    languages_text,
)

__all__ = ["E164", "ROLES", "DirectoryError", "load_directory", "load_directory_file"]


def load_directory_file(session: Session, path: Path) -> dict[str, int]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DirectoryError(f"{path}: not valid YAML ({exc})") from None
    return load_directory(session, data, source=str(path))


def load_directory(
    session: Session, data: dict[str, Any], source: str = "directory"
) -> dict[str, int]:
    counts = {"agencies": 0, "districts": 0, "schools": 0, "contacts": 0, "rotas": 0}
    agencies: dict[str, PoliceAgency] = {
        a.code: a for a in session.execute(select(PoliceAgency)).scalars()
    }
    served: dict[str, list[str]] = {}
    for item in data.get("agencies", []) or []:
        a = agencies.get(item["code"]) or PoliceAgency(code=item["code"])
        a.name = item["name"]
        a.non_emergency_text = item.get("non_emergency_text", "")
        session.add(a)
        agencies[a.code] = a
        counts["agencies"] += 1
        if "districts" in item:  # absent: the ties stay as they are
            served[a.code] = list(item["districts"] or [])
    districts = {d.code: d for d in session.execute(select(District)).scalars()}
    schools = {s.code: s for s in session.execute(select(School)).scalars()}
    for item in data.get("districts", []) or []:
        involvement = item.get("police_involvement", DEFAULT_INVOLVEMENT)
        check_police_involvement(involvement, f"{source}: district {item['code']}")
        d = districts.get(item["code"]) or District(code=item["code"])
        d.name = item["name"]
        d.timezone = item.get("timezone", "America/Chicago")
        d.hotline_text = item.get("hotline_text", "")
        d.police_involvement = involvement
        session.add(d)
        districts[d.code] = d
        counts["districts"] += 1
        for s_item in item.get("schools", []) or []:
            s = schools.get(s_item["code"]) or School(code=s_item["code"])
            s.name = s_item["name"]
            s.aliases = s_item.get("aliases", "")
            s.district = d
            s.active = bool(s_item.get("active", True))
            session.add(s)
            schools[s.code] = s
            counts["schools"] += 1
    for code, district_codes in served.items():
        unknown = [dc for dc in district_codes if dc not in districts]
        if unknown:
            raise DirectoryError(f"{source}: agency {code}: unknown district {unknown[0]!r}")
        agencies[code].districts = [districts[dc] for dc in dict.fromkeys(district_codes)]
    session.flush()
    existing = {c.key: c for c in session.execute(select(Contact)).scalars()}
    for n, item in enumerate(data.get("contacts", []) or [], start=1):
        where = f"{source}: contacts[{n}] ({item.get('key', '?')})"
        check_contact(item, where)
        role = item["role"]
        c = existing.get(item["key"]) or Contact(key=item["key"])
        c.name = item["name"]
        c.role = role
        c.sms_number = item.get("sms")
        c.voice_number = item.get("voice")
        c.email = item.get("email")
        c.on_call = item.get("on_call")
        c.priority = int(item.get("priority", 100))
        c.active = bool(item.get("active", True))
        c.kind = item.get("kind", "staff")
        c.agreement = dict(item["agreement"]) if item.get("agreement") else None
        c.languages = languages_text(item.get("languages", ""))
        if item.get("district"):
            if item["district"] not in districts:
                raise DirectoryError(f"{where}: unknown district {item['district']!r}")
            c.district_id = districts[item["district"]].id
        if item.get("agency"):
            if item["agency"] not in agencies:
                raise DirectoryError(f"{where}: unknown agency {item['agency']!r}")
            c.agency = agencies[item["agency"]]
        try:
            c.schools = [schools[code] for code in item.get("schools", []) or []]
        except KeyError as exc:
            raise DirectoryError(f"{where}: unknown school {exc.args[0]!r}") from None
        _check_agency_serves(c, where, {d.id: d for d in districts.values()})
        session.add(c)
        counts["contacts"] += 1
    session.flush()
    counts["rotas"] = _load_rotas(session, data.get("rotas") or [], districts, source)
    return counts


def _load_rotas(session: Session, items: list[Any], districts: dict[str, District],
                source: str) -> int:
    """On-call rotas (``tipline.directory.rotas``); a district admin edits them afterwards in
    the dashboard, and a re-load of the file puts the file's version back."""
    from tipline.directory.rotas import RotaError, spec, stored_entries

    existing = {r.key: r for r in session.execute(select(OnCallRota)).scalars()}
    members = {c.key: c for c in session.execute(select(Contact)).scalars()}
    for n, item in enumerate(items, start=1):
        where = f"{source}: rotas[{n}] ({item.get('key', '?')})"
        d = districts.get(item.get("district", ""))
        if d is None:
            raise DirectoryError(f"{where}: unknown district {item.get('district')!r}")
        try:
            r = spec(str(item.get("key", "")), item.get("turn", "weekly"),
                     item.get("handover", "17:00"), item.get("starts_on"),
                     item.get("members"), item.get("swaps"), item.get("holidays"))
        except RotaError as exc:
            raise DirectoryError(f"{where}: {exc}") from None
        named = {*r.members, *(w for _s, _e, w in r.swaps),
                 *(w for _d, w in r.holidays if w)}
        for key in sorted(named):
            c = members.get(key)
            if c is None or c.district_id != d.id:
                raise DirectoryError(f"{where}: {key!r} is not a contact of district {d.code}")
        row = existing.get(r.key) or OnCallRota(key=r.key)
        row.district_id = d.id
        row.name = str(item.get("name") or r.key)
        row.turn, row.handover, row.starts_on = r.turn, f"{r.handover:%H:%M}", r.starts_on
        row.members = list(r.members)
        row.swaps, row.holidays = stored_entries(r)
        session.add(row)
    session.flush()
    return len(items)


def _check_agency_serves(c: Contact, where: str, by_id: dict[int, District]) -> None:
    """A contact's police agency must be tied to the contact's district and to the district
    of each of its schools (``agency_districts``): otherwise a district admin could reach
    another district's police alerts through it, and the dashboard would refuse to save it."""
    if c.agency is None:
        return
    served = {d.code for d in c.agency.districts}
    needed = [(s.district.code, f" (school {s.code})") for s in c.schools
              if s.district is not None]
    own = by_id.get(c.district_id) if c.district_id is not None else None
    if own is not None:
        needed.insert(0, (own.code, ""))
    for code, why in needed:
        if code not in served:
            raise DirectoryError(
                f"{where}: police agency {c.agency.code!r} does not serve district {code!r}"
                f"{why}; add {code} to the agency's districts: or choose another agency")
