"""Finding the school a texting reporter means, from a name, a code or an alias, typos and all.

Students type "roosvelt", "soldan intl" or "RHS". Each school gets a set of keys (its code, its
name with and without words like "High School", its aliases), and a reply is compared with
every key (whole reply and each run of one to four words) using difflib's ratio. One clear
winner is a match; several close ones are offered back as a numbered list.
"""

from __future__ import annotations

import difflib
import functools
import re
import threading
import time
import unicodedata
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from tipline.directory.models import School

# Words that say what kind of school it is, not which one.
_GENERIC = {
    "the", "of", "school", "schools", "high", "middle", "elementary", "academy", "hs", "ms",
    "es", "demo", "international", "studies", "for", "and", "escuela", "secundaria",
    "preparatoria", "primaria", "la", "el", "de", "del", "st", "saint",
}
# Keys this short or this common are only matched when they are the whole reply.
_COMMON_WORDS = {"long", "central", "north", "south", "east", "west", "park", "hill", "lake"}

MATCH = 0.85  # a key at least this similar is a match...
MARGIN = 0.08  # ...if no other school comes within this much of it
CANDIDATE = 0.65  # keys at least this similar are offered when there is no clear match
TEXT_MATCH = 0.9  # a school named inside a tip's free text: a near-exact key
MAX_CANDIDATES = 4
_TTL_SECONDS = 30.0


def normalize(text: str) -> str:
    """Lower case, no accents, letters and digits only, single spaces."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.findall(r"[a-z0-9]+", bare))


@dataclass(frozen=True)
class SchoolRef:
    id: int
    district_id: int
    code: str
    name: str
    keys: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Match:
    school: SchoolRef | None
    candidates: tuple[SchoolRef, ...] = ()

    @property
    def ambiguous(self) -> bool:
        return self.school is None and bool(self.candidates)


def _keys(code: str, name: str, aliases: str) -> frozenset[str]:
    keys = {normalize(code), normalize(code.replace("-", " "))}
    if "-" in code:
        keys.add(normalize(code.split("-", 1)[1]))
    for raw in [name, *aliases.split(",")]:
        full = normalize(raw)
        if not full:
            continue
        keys.add(full)
        core = " ".join(w for w in full.split() if w not in _GENERIC)
        if core:
            keys.add(core)
    return frozenset(k for k in keys if k)


class SchoolIndex:
    """The active schools and their match keys; reloaded at most every 30 s per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded_at = -1e9
        self._schools: tuple[SchoolRef, ...] = ()
        self._bind_key: object = None

    def schools(self, session: Session) -> tuple[SchoolRef, ...]:
        bind = session.get_bind()
        key = str(getattr(bind, "url", bind))
        with self._lock:
            fresh = time.monotonic() - self._loaded_at < _TTL_SECONDS
            if fresh and self._bind_key == key:
                return self._schools
        rows = session.execute(
            select(School.id, School.district_id, School.code, School.name, School.aliases)
            .where(School.active.is_(True)).order_by(School.name)
        ).all()
        loaded = tuple(SchoolRef(r.id, r.district_id, r.code, r.name,
                                 _keys(r.code, r.name, r.aliases or "")) for r in rows)
        with self._lock:
            self._schools, self._loaded_at, self._bind_key = loaded, time.monotonic(), key
        return loaded

    def clear(self) -> None:
        with self._lock:
            self._loaded_at = -1e9


INDEX = SchoolIndex()


def _windows(words: list[str], longest: int = 4) -> list[str]:
    out = []
    for size in range(1, min(longest, len(words)) + 1):
        for i in range(len(words) - size + 1):
            out.append(" ".join(words[i : i + size]))
    return out


def _windows_of(reply: str) -> dict[int, tuple[str, ...]]:
    """Runs of words of the reply, by their number of words. Computed once per message by
    the caller, never cached across calls: a cache would keep reporters' texts in the
    process's memory."""
    words = reply.split()
    by_size: dict[int, list[str]] = {}
    if len(words) > 1:
        for w in _windows(words):
            by_size.setdefault(w.count(" ") + 1, []).append(w)
    return {size: tuple(ws) for size, ws in by_size.items()}


def _score(reply: str, windows: dict[int, tuple[str, ...]], keys: frozenset[str],
           floor: float = CANDIDATE) -> float:
    """Best similarity of any key to the reply or a run of its words (0 below ``floor``).

    Short or common keys ("RHS", "Long") count only when they are the whole reply.
    """
    best = 0.0
    for key in keys:
        if len(key) < 4 or key in _COMMON_WORDS:
            if reply == key:
                return 1.0
            continue
        # A typo rarely changes the number of words: compare runs of the key's length, one
        # word more or less, and the whole reply.
        size = key.count(" ") + 1
        pieces = [reply]
        for n in (size - 1, size, size + 1):
            pieces.extend(windows.get(n, ()))
        best = max(best, _best_ratio(key, pieces, max(floor, best)))
        if best == 1.0:
            return best
    return best


def _best_ratio(key: str, pieces: list[str], floor: float) -> float:
    """The best difflib ratio of ``key`` to a piece whose quick bounds reach ``floor``
    (1.0 at once for an equal piece); 0.0 when none does."""
    best = 0.0
    matcher = None  # built only for a key some piece could match (it indexes the key)
    for piece in pieces:
        if piece == key:
            return 1.0
        # ratio() <= 2*min/(sum of lengths): skip what cannot reach the floor.
        if 2 * min(len(piece), len(key)) / (len(piece) + len(key)) < max(floor, best):
            continue
        if matcher is None:
            matcher = difflib.SequenceMatcher(None, b=key)
        matcher.set_seq1(piece)
        if matcher.real_quick_ratio() < max(floor, best) or matcher.quick_ratio() < max(
                floor, best):
            continue
        best = max(best, matcher.ratio())
    return best


def match_school(schools: tuple[SchoolRef, ...], reply: str) -> Match:
    """The school a reply to "which school?" names, or candidates to ask about, or nothing."""
    text = normalize(reply)
    if not text:
        return Match(None)
    windows = _windows_of(text)
    scored = sorted(((_score(text, windows, s.keys), s) for s in schools),
                    key=lambda pair: -pair[0])
    return _decide(scored)


def find_school_in_text(schools: tuple[SchoolRef, ...], body: str) -> SchoolRef | None:
    """A school named in a free-text tip, only when it is clear (else the reporter is asked).

    A key is compared with the whole text and with the runs of words that start with its
    first letter and are a word shorter, as long or a word longer; the runs are grouped that
    way once per text, so a school whose keys no run could match costs a few dictionary
    look-ups (a real district's directory has hundreds of schools, not the demo's eight).
    """
    text = normalize(body)
    if not text:
        return None
    runs: dict[tuple[int, str], list[str]] = {}
    for size, windows in _windows_of(text).items():
        for w in windows:
            runs.setdefault((size, w[0]), []).append(w)
    scored = []
    for s in schools:
        best = 0.0
        for key, size in _text_keys(s.keys):
            pieces = [text]
            for n in (size - 1, size, size + 1):
                pieces.extend(runs.get((n, key[0]), ()))
            best = max(best, _best_ratio(key, pieces, max(TEXT_MATCH, best)))
            if best == 1.0:
                break
        scored.append((best, s))
    scored.sort(key=lambda pair: -pair[0])
    if not scored or scored[0][0] < TEXT_MATCH:
        return None
    if len(scored) > 1 and scored[1][0] > scored[0][0] - MARGIN:
        return None
    return scored[0][1]


@functools.lru_cache(maxsize=4096)
def _text_keys(keys: frozenset[str]) -> tuple[tuple[str, int], ...]:
    """The keys a free text is searched for (long and uncommon enough to mean a school), each
    with its number of words; worked out once per school, not once per text."""
    return tuple((k, k.count(" ") + 1) for k in sorted(keys)
                 if len(k) >= 5 and k not in _COMMON_WORDS)


def _decide(scored: list[tuple[float, SchoolRef]]) -> Match:
    if not scored:
        return Match(None)
    best_score, best = scored[0]
    runner_up = scored[1][0] if len(scored) > 1 else 0.0
    if best_score >= MATCH and runner_up < best_score - MARGIN:
        return Match(best)
    close = tuple(s for score, s in scored if score >= CANDIDATE)[:MAX_CANDIDATES]
    if len(close) == 1 and best_score >= MATCH:
        return Match(best)
    return Match(None, close)
