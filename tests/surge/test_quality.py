"""Grouping quality on the labelled set (tests/surge/labelled.yaml), over several keys: the
signature is keyed, so its slots and its estimate change with the key file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from tipline.surge import quality
from tipline.surge.signature import signature, similarity

LABELLED = Path(__file__).with_name("labelled.yaml")
KEYS = [hashlib.sha256(f"surge-test-{i}".encode()).digest() * 2 for i in range(10)]


def labelled() -> dict[str, dict[str, list[str]]]:
    data: dict[str, dict[str, list[str]]] = yaml.safe_load(LABELLED.read_text("utf-8"))["schools"]
    return data


def test_labelled_set_precision_and_recall():
    results = [quality.evaluate(labelled(), key) for key in KEYS]
    for r in results:
        print(r.line())  # pytest -s shows them; docs/alerts.md quotes the bench's figures
    assert min(r.precision for r in results) >= 0.95
    assert sum(r.recall for r in results) / len(results) >= 0.8


def test_the_set_has_english_spanish_and_hard_negatives():
    data = labelled()
    texts = [t for threats in data.values() for tips in threats.values() for t in tips]
    assert len(texts) >= 50
    assert sum(1 for t in texts if any(w in t.lower() for w in (" que ", " en ", " el "))) >= 10
    assert all(len(threats) >= 3 for threats in data.values())


def test_signature_depends_on_the_key():
    text = "someone will shoot up roosevelt on friday"
    one, two = signature(text, KEYS[0]), signature(text, KEYS[1])
    assert one.minhash != two.minhash
    assert similarity(one.minhash, signature(text, KEYS[0]).minhash) == 1.0
    assert similarity(one.minhash, two.minhash) < 0.1  # a guess under another key says nothing


def test_no_words_means_no_similarity():
    key = KEYS[0]
    empty = signature("", key)
    assert empty.size == 0 and similarity(empty.minhash, empty.minhash) == 0.0


def test_the_one_bit_estimate_corrects_for_chance_agreement():
    """Half of the 1-bit slots of unrelated texts agree by chance: that must read as about
    0, not 0.5; a signature of another length (erased, or full-width) compares as 0."""
    from tipline.surge.signature import SIZE

    key = KEYS[0]
    one = signature("someone will shoot up roosevelt on friday", key).minhash
    other = signature("kids vape in the upstairs bathroom every period", key).minhash
    assert len(one) == SIZE == 128
    assert similarity(one, other) < 0.1
    assert similarity(one, bytes(b ^ 0xFF for b in one)) == 0.0
    assert similarity(one, b"") == 0.0 and similarity(one, one * 8) == 0.0
