"""The whole-row slot minimum and the packing give exactly what the plain loops give: stored
signatures stay comparable with those made before (docs/performance.md)."""

from __future__ import annotations

import hashlib
import random
from array import array
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml

from tipline.surge.signature import (
    SLOTS,
    low_bits,
    pack,
    signature,
    slot_hashes,
    slot_minimums,
)


def _plain_pack(mins: list[int], bits: int) -> bytes:
    x = n = 0
    for m in mins:
        x = (x << bits) | (m & ((1 << bits) - 1))
        n += bits
    return x.to_bytes((n + 7) // 8, "big")


@pytest.mark.parametrize("slots", [SLOTS, 64, 7, 1])
def test_slot_minimums_equal_the_plain_minimum(slots: int) -> None:
    rng = random.Random(slots)
    key = rng.randbytes(64)
    for _ in range(60):
        rows = [slot_hashes(f"w{rng.random()}", key, slots) for _ in range(rng.randint(1, 30))]
        # Values at the edges of a lane: 0, 2^32 - 1, and equal values in two rows.
        rows[0][0] = 0xFFFFFFFF
        if len(rows) > 1:
            rows[1][-1] = rows[0][-1]
        assert slot_minimums(rows, slots) == list(map(min, zip(*rows, strict=True)))


@pytest.mark.parametrize("bits", [1, 2, 8, 32])
def test_pack_equals_the_plain_loop(bits: int) -> None:
    rng = random.Random(bits)
    for n in (0, 1, 7, 1024):
        mins = [rng.getrandbits(32) for _ in range(n)]
        assert pack(mins, bits) == _plain_pack(mins, bits)


def test_a_signature_is_what_the_plain_loops_make() -> None:
    key = bytes(range(64))
    text = "someone said he will bring a gun to the bus stop on friday after school"
    from tipline.surge.signature import features

    rows = [slot_hashes(f, key) for f in features(text)]
    plain = _plain_pack(list(map(min, zip(*rows, strict=True))), 1)
    assert signature(text, key).minhash == plain


@pytest.mark.parametrize("slots", [SLOTS, 64, 9, 8, 7, 1])
def test_low_bits_are_the_packed_lowest_bits_of_the_plain_minimum(slots: int) -> None:
    rng = random.Random(slots + 1)
    key = rng.randbytes(64)
    for _ in range(60):
        rows = [slot_hashes(f"w{rng.random()}", key, slots) for _ in range(rng.randint(1, 30))]
        rows[0][0] = 0xFFFFFFFF
        rows[-1][-1] = 0
        if len(rows) > 1:
            rows[1][0] = rows[0][0]
        assert low_bits(rows, slots) == _plain_pack(list(map(min, zip(*rows, strict=True))), 1)


def test_a_known_signature_is_unchanged() -> None:
    """Stored signatures are compared with new ones: the bytes for a fixed text and key, as
    the code of before the whole-row minimum and the direct packing made them."""
    text = ("A student said he will start a fight at the bus stop after school\n"
            "Friday after school\nBus stop on Arsenal St\na junior\nI heard him say it")
    made = signature(text, bytes(range(64)))
    assert made.size == 9
    assert hashlib.sha256(made.minhash).hexdigest() == (
        "6b666e02ea189905ea6d31f16ab6dbe733138fb51c231b241fb73755d770f03a")


# Lane values that exercise each case of the 32-bit lane comparison in ``_minimums``: top
# bits equal or different, low 31 bits equal, above or below, and the extremes.
_EDGES = [0, 1, 0x7FFFFFFE, 0x7FFFFFFF, 0x80000000, 0x80000001, 0xFFFFFFFE, 0xFFFFFFFF]


@pytest.mark.parametrize("slots", [SLOTS, 64, 9, 1])
def test_lane_edges_give_the_plain_minimum(slots: int) -> None:
    rng = random.Random(slots + 2)
    for _ in range(200):
        rows = [array("I", [rng.choice(_EDGES) if rng.random() < 0.7 else rng.getrandbits(32)
                            for _ in range(slots)]) for _ in range(rng.randint(1, 12))]
        plain = list(map(min, zip(*rows, strict=True)))
        assert slot_minimums(rows, slots) == plain
        assert low_bits(rows, slots) == _plain_pack(plain, 1)
        assert low_bits([row.tobytes() for row in rows], slots) == _plain_pack(plain, 1)


def _labelled_texts() -> list[str]:
    data = yaml.safe_load(Path(__file__).with_name("labelled.yaml").read_text("utf-8"))

    def walk(item: object) -> list[str]:
        if isinstance(item, str):
            return [item]
        values = item.values() if isinstance(item, dict) else item
        return [t for v in values for t in walk(v)] if isinstance(values, Iterable) else []

    return [t for t in walk(data) if len(t) > 10]


def test_signatures_of_many_texts_are_what_the_plain_loops_make() -> None:
    """The labelled surge texts and random mixes of their words, each with its own key: the
    signature is the packed lowest bits of the plain per-slot minimum of ``slot_hashes``."""
    from tipline.surge.signature import features

    rng = random.Random(15)
    texts = _labelled_texts()
    words = " ".join(texts).split()
    texts += [" ".join(rng.choices(words, k=rng.randint(1, 60))) for _ in range(400)]
    assert len(texts) > 450
    for text in texts:
        key = rng.randbytes(64)
        feats = features(text)
        made = signature(text, key)
        if not feats:
            assert made.minhash == b""
            continue
        rows = [slot_hashes(f, key) for f in feats]
        assert made.minhash == _plain_pack(list(map(min, zip(*rows, strict=True))), 1)
        assert made.size == len(feats)
