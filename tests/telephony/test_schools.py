"""School matching for texted replies: names, codes, aliases, typos, ambiguity."""

from __future__ import annotations

import pytest

from tipline.telephony.schools import (
    SchoolRef,
    _keys,
    find_school_in_text,
    match_school,
    normalize,
)

ROWS = [
    (1, 1, "slps-roosevelt", "Roosevelt High School", "Roosevelt, RHS"),
    (2, 1, "slps-soldan", "Soldan International Studies High School", "Soldan"),
    (3, 1, "slps-vashon", "Vashon High School", "Vashon"),
    (5, 1, "slps-longmiddle", "Long International Middle School", "Long, Long Middle"),
    (6, 2, "cty-northview", "Northview High School (demo)", "Northview, NHS"),
    (7, 2, "cty-riverbend", "Riverbend Middle School (demo)", "Riverbend"),
    (8, 2, "cty-oakridge", "Oakridge Elementary School (demo)", "Oakridge"),
]
SCHOOLS = tuple(SchoolRef(i, d, c, n, _keys(c, n, a)) for i, d, c, n, a in ROWS)


@pytest.mark.parametrize(("reply", "code"), [
    ("Roosevelt", "slps-roosevelt"),
    ("roosvelt", "slps-roosevelt"),
    ("ROOSEVELT HIGH", "slps-roosevelt"),
    ("rhs", "slps-roosevelt"),
    ("soldan intl", "slps-soldan"),
    ("Vashon hs", "slps-vashon"),
    ("northveiw", "cty-northview"),
    ("riverbnd middle", "cty-riverbend"),
    ("cty-oakridge", "cty-oakridge"),
    ("Long", "slps-longmiddle"),
    ("it's at oakridge elementary", "cty-oakridge"),
])
def test_names_codes_aliases_and_typos_match(reply: str, code: str) -> None:
    match = match_school(SCHOOLS, reply)
    assert match.school is not None and match.school.code == code


@pytest.mark.parametrize("reply", ["Hogwarts", "xyz", "", "oak", "🙂"])
def test_unknown_schools_do_not_match(reply: str) -> None:
    match = match_school(SCHOOLS, reply)
    assert match.school is None
    assert not match.ambiguous


def test_a_generic_reply_is_ambiguous_with_candidates() -> None:
    match = match_school(SCHOOLS, "the high school")
    assert match.school is None and match.ambiguous
    assert len(match.candidates) >= 2


def test_school_in_free_text_only_when_clear() -> None:
    found = find_school_in_text(SCHOOLS, "someone is bringing a gun to roosevelt tomorrow")
    assert found is not None and found.code == "slps-roosevelt"
    assert find_school_in_text(SCHOOLS, "this has been going on a long time") is None
    assert find_school_in_text(SCHOOLS, "there is a fight planned") is None


def test_normalize_drops_accents_and_punctuation() -> None:
    assert normalize("  Escuela  Vashón!! ") == "escuela vashon"


def _caches() -> dict[str, int]:
    """Sizes of every functools cache in the telephony modules that see reporters' texts."""
    from tipline.telephony import schools, sms, texts, voice

    return {f"{m.__name__}.{name}": fn.cache_info().currsize
            for m in (schools, sms, texts, voice)
            for name, fn in vars(m).items() if hasattr(fn, "cache_info")}


def test_matching_keeps_no_copy_of_a_tip_in_memory() -> None:
    # A cache keyed by texts (or their runs of words) would keep reporters' words in the web
    # and worker processes long after the request.
    before = _caches()
    for marker in ("qvxvx", "zkwkw", "jxjxq"):
        text = f"jordan {marker} has a knife at roosevelt"
        find_school_in_text(SCHOOLS, text)
        match_school(SCHOOLS, text)
    assert _caches() == before
