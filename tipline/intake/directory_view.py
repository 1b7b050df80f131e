"""Read-only directory lookups the reporter's pages need (school picker, hotline text)."""

from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from tipline.directory.models import District, School

SchoolGroups = list[tuple[str, list[tuple[str, str]]]]


@dataclass(frozen=True)
class SchoolEntry:
    code: str
    name: str
    district: str
    search_text: str
    school_id: int = 0
    district_id: int = 0


def _fold(text: str) -> str:
    """Lower-case without accents, so "Hodzic" finds "Hodžić" and "roos" finds "Roosevelt"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def load_schools(session: Session) -> list[SchoolEntry]:
    """Every active school, ordered by district then name."""
    districts = session.execute(
        select(District).options(selectinload(District.schools)).order_by(District.name)
    ).scalars()
    entries = []
    for d in districts:
        for s in d.schools:
            if s.active:
                words = " ".join((s.name, s.aliases or "", d.name))
                entries.append(SchoolEntry(s.code, s.name, d.name, _fold(words), s.id, d.id))
    return entries


class SchoolCache:
    """The school list, re-read from the directory at most every ``ttl`` seconds.

    Every form view and every submission needs it; the directory changes rarely, and an edit
    made by an administrator shows up on the form within ``ttl`` seconds.
    """

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._entries: list[SchoolEntry] | None = None
        self._loaded_at = 0.0

    def get(self, session: Session, now: float | None = None) -> list[SchoolEntry]:
        clock = time.monotonic() if now is None else now
        if self._entries is None or clock - self._loaded_at > self.ttl:
            self._entries = load_schools(session)
            self._loaded_at = clock
        return self._entries

    def clear(self) -> None:
        self._entries = None


def group_schools(entries: list[SchoolEntry], query: str = "", keep: str = "") -> SchoolGroups:
    """Schools grouped by district for an optgroup select, narrowed by a search.

    Every word of ``query`` must appear in the school's name, aliases or district. ``keep``
    (the school already chosen) always stays in the list so a search never unselects it.
    """
    words = _fold(query).split()
    groups: SchoolGroups = []
    for entry in entries:
        if words and entry.code != keep and not all(w in entry.search_text for w in words):
            continue
        if not groups or groups[-1][0] != entry.district:
            groups.append((entry.district, []))
        groups[-1][1].append((entry.code, entry.name))
    return groups


def school_choices(session: Session) -> SchoolGroups:
    """All schools grouped by district (kept for callers outside the web form)."""
    return group_schools(load_schools(session))


# The last hotline list read successfully, so that a database outage can still show it.
_last_hotlines: list[tuple[str, str]] = []


def hotline_lines(session: Session) -> list[tuple[str, str]]:
    global _last_hotlines
    lines = [
        (d.name, d.hotline_text)
        for d in session.execute(select(District).order_by(District.name)).scalars()
        if d.hotline_text
    ]
    _last_hotlines = lines
    return lines


def last_known_hotlines() -> list[tuple[str, str]]:
    """What ``hotline_lines`` last returned in this process (empty before the first read)."""
    return list(_last_hotlines)


# A North American number as a district writes it: "(314) 889-SAFE", "866-748-7047", "1 800 ...".
# Letters are the keypad's (vanity numbers), capitals only so that words are never mistaken.
_PHONE = re.compile(
    r"(?<![\w-])(?:\+?1[\s.-]?)?\(?([2-9]\d{2})\)?[\s.-]?(\d{3})[\s.-]?([0-9A-Z]{4})(?![\w-])")
_KEYPAD = {ch: str(n) for n, letters in
           ((2, "ABC"), (3, "DEF"), (4, "GHI"), (5, "JKL"), (6, "MNO"), (7, "PQRS"), (8, "TUV"),
            (9, "WXYZ")) for ch in letters}


def phone_links(text: str) -> list[tuple[str, str | None]]:
    """``text`` cut into (piece, tel URI or None), so each phone number in it can be tapped.

    The district's text is shown as written ("(314) 889-SAFE"); the link dials the digits
    ("tel:+13148897233").
    """
    pieces: list[tuple[str, str | None]] = []
    last = 0
    for m in _PHONE.finditer(text):
        digits = "".join(_KEYPAD.get(ch, ch) for ch in "".join(m.groups()))
        if m.start() > last:
            pieces.append((text[last:m.start()], None))
        pieces.append((m.group(0), f"tel:+1{digits}"))
        last = m.end()
    if last < len(text):
        pieces.append((text[last:], None))
    return pieces


def school_by_code(session: Session, code: str) -> School | None:
    return session.execute(select(School).where(School.code == code)).scalar_one_or_none()
