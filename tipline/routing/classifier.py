"""Automatic triage: life-safety signals in a tip's words, in English and Spanish.

Runs at intake, on the plain text before it is sealed, and keeps nothing: the result is a
severity floor, a suggested category and the names of the rules that fired (never words from
the tip). The words and rules are data (``data/triage.yaml``) so they can be reviewed and
extended by people who know how students write, with tests of positive and negative examples.
It can only raise severity: ``create_tip`` takes the maximum of this floor and the reporter's
choice.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

DATA_FILE = "triage.yaml"
FALLBACK_LANGUAGE = "en"


@dataclass(frozen=True)
class Classification:
    severity_floor: int | None = None
    category: str | None = None
    signals: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Rule:
    signal: str
    when: tuple[str, ...]
    severity: int | None
    category: str | None


@dataclass(frozen=True)
class _Lexicon:
    ignore: dict[str, re.Pattern[str]]
    terms: dict[str, dict[str, re.Pattern[str]]]  # group -> language -> pattern
    rules: tuple[_Rule, ...]
    languages: frozenset[str]
    # The (group, pattern) pairs to search for each tuple of languages (``_searches``).
    _plans: dict[tuple[str, ...], tuple[tuple[str, re.Pattern[str]], ...]] = field(
        default_factory=dict, compare=False, repr=False)

    def _searches(self, langs: tuple[str, ...]) -> tuple[tuple[str, re.Pattern[str]], ...]:
        """Each term group's pattern in each of ``langs`` it has, in group order: worked out
        once per language tuple, not by a generator per group per tip."""
        plan = self._plans.get(langs)
        if plan is None:
            plan = self._plans[langs] = tuple(
                (group, by_lang[lang]) for group, by_lang in self.terms.items()
                for lang in langs if lang in by_lang)
        return plan


def normalize(text: str) -> str:
    """Lower case, no accents, one space between words: what the word lists are written for."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    # Plain ASCII has no combining marks: skip the character-by-character pass (most tips).
    plain = decomposed if decomposed.isascii() else "".join(
        ch for ch in decomposed if not unicodedata.combining(ch))
    plain = plain.replace("\u2019", "'").replace("\u2018", "'")
    return re.sub(r"\s+", " ", plain).strip()


def _compile(patterns: list[str]) -> re.Pattern[str]:
    # Patterns are normalised like the text, then matched as whole words.
    parts = [f"(?:{normalize(p)})" for p in patterns]
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)")


def build_lexicon(data: dict[str, Any]) -> _Lexicon:
    """Compile word lists and rules; raises ValueError naming what is wrong."""
    from tipline.tips.models import Category

    ignore = {lang: _compile(list(p)) for lang, p in (data.get("ignore") or {}).items() if p}
    terms: dict[str, dict[str, re.Pattern[str]]] = {}
    languages: set[str] = set(ignore)
    for group, by_lang in (data.get("terms") or {}).items():
        terms[group] = {}
        for lang, patterns in by_lang.items():
            try:
                terms[group][lang] = _compile(list(patterns))
            except re.error as exc:
                raise ValueError(f"triage terms {group}/{lang}: bad pattern ({exc})") from None
            languages.add(lang)
    rules: list[_Rule] = []
    categories = {c.value for c in Category}
    for item in data.get("rules") or []:
        when = tuple(item["when"])
        unknown = [g for g in when if g not in terms]
        if unknown:
            raise ValueError(f"triage rule {item['signal']}: unknown term group {unknown[0]}")
        sev = item.get("severity")
        if sev is not None and sev not in (1, 2, 3, 4):
            raise ValueError(f"triage rule {item['signal']}: severity must be 1-4")
        cat = item.get("category")
        if cat is not None and cat not in categories:
            raise ValueError(f"triage rule {item['signal']}: unknown category {cat}")
        rules.append(_Rule(str(item["signal"]), when, sev, cat))
    return _Lexicon(ignore, terms, tuple(rules), frozenset(languages))


@lru_cache(maxsize=1)
def _lexicon() -> _Lexicon:
    text = resources.files("tipline.routing").joinpath("data", DATA_FILE).read_text("utf-8")
    return build_lexicon(yaml.safe_load(text))


def _languages(lex: _Lexicon, language: str) -> tuple[str, ...]:
    lang = (language or "").lower().split("-")[0].split("_")[0]
    if lang in lex.languages:
        return (lang,) if lang == FALLBACK_LANGUAGE else (lang, FALLBACK_LANGUAGE)
    return tuple(sorted(lex.languages))


def classify(text: str, language: str, lexicon: _Lexicon | None = None) -> Classification:
    """Severity floor, suggested category and fired rule names for a tip's text."""
    lex = lexicon or _lexicon()
    langs = _languages(lex, language)
    plain = normalize(text)
    for lang in langs:
        pattern = lex.ignore.get(lang)
        if pattern is not None:
            plain = pattern.sub(" ", plain)
    found: set[str] = set()
    for group, pattern in lex._searches(langs):
        if group not in found and pattern.search(plain):
            found.add(group)
    fired = [r for r in lex.rules if found.issuperset(r.when)]
    floors = [r.severity for r in fired if r.severity is not None]
    category = next((r.category for r in fired if r.category is not None), None)
    return Classification(
        severity_floor=max(floors) if floors else None,
        category=category,
        signals=tuple(r.signal for r in fired),
    )
