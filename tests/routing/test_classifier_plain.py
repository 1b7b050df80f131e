"""``classify`` fires exactly the rules the plain reading of the word lists fires: every term
group searched in each of the tip's languages, every rule whose groups were all found (the
searches are planned once per language tuple; this pins that the plan changes nothing)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import yaml

from tipline.routing import classifier
from tipline.routing.classifier import Classification, classify, normalize

_LANGUAGES = ["en", "es", "bs", "es-MX", "EN_us", "fr", ""]


def _plain(text: str, language: str) -> Classification:
    lex = classifier._lexicon()
    langs = list(classifier._languages(lex, language))
    plain = normalize(text)
    for lang in langs:
        if lang in lex.ignore:
            plain = lex.ignore[lang].sub(" ", plain)
    found = set()
    for group, by_lang in lex.terms.items():
        for lang in langs:
            if lang in by_lang and by_lang[lang].search(plain):
                found.add(group)
    fired = [r for r in lex.rules if all(g in found for g in r.when)]
    floors = [r.severity for r in fired if r.severity is not None]
    return Classification(
        severity_floor=max(floors) if floors else None,
        category=next((r.category for r in fired if r.category is not None), None),
        signals=tuple(r.signal for r in fired),
    )


def _texts() -> list[str]:
    here = Path(__file__).parent
    examples = re.findall(r'\("([^"]+)", "(?:en|es|bs)"',
                          (here / "test_classifier.py").read_text("utf-8"))
    labelled = (here.parent / "surge" / "labelled.yaml").read_text("utf-8")
    texts = examples + [t for t in re.findall(r"^\s*- (?:text: )?(.{12,})$", labelled, re.M)]
    data = yaml.safe_load(classifier.resources.files("tipline.routing")
                          .joinpath("data", classifier.DATA_FILE).read_text("utf-8"))
    words = " ".join(texts).split() + [
        w for by_lang in data["terms"].values() for patterns in by_lang.values()
        for p in patterns for w in re.findall(r"[a-zñ']+", p)]
    rng = random.Random(15)
    return texts + [" ".join(rng.choices(words, k=rng.randint(1, 40))) for _ in range(600)]


def test_classify_is_the_plain_reading_on_many_texts() -> None:
    texts = _texts()
    fired = 0
    for text in texts:
        for language in _LANGUAGES:
            made = classify(text, language)
            assert made == _plain(text, language), (text, language)
            fired += bool(made.signals)
    assert fired > len(texts)  # the texts do fire rules, in several languages
