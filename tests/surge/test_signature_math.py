"""The whole-row slot minimum and the packing give exactly what the plain loops give: stored
signatures stay comparable with those made before (docs/performance.md)."""

from __future__ import annotations

import hashlib
import random

import pytest

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
