"""A tip's similarity signature: a keyed b-bit MinHash of its normalised words, made at intake.

The signature is computed from the text in memory before it is sealed and is all that grouping
ever reads (after issue 13 the server cannot read a tip's text again). Each slot is the minimum
of a keyed hash over the tip's word stems, of which only the lowest bit is kept, so two
signatures tell how much two tips' word sets overlap (that is their purpose). Without the key,
derived from the key file's lookup secret and never stored in the database, nobody can compute
the signature of a guessed text. With it, no slot proves a word any more, but a word list can
still be ranked against a signature (docs/surge.md, "What the key file gives back"), which is
why signatures are erased once they leave the grouping window.

Words are folded the way the triage word lists are (lower case, no accents), stop words of
English and Spanish are dropped, and each word is cut to its first ``STEM`` letters: a crude
stemmer that serves both languages ("shooting"/"shoot", "amenaza"/"amenazas") without a
dictionary.
"""

from __future__ import annotations

import hashlib
import re
import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml

from tipline.routing.classifier import normalize

SLOTS = 1024
# Of each slot's minimum only the lowest BITS bits are kept (b-bit minwise hashing): a full
# minimum is one feature's keyed hash, which the key file lets anyone recompute for a word
# list; one bit of it is shared by half of all words (docs/surge.md, "What the key file
# gives back").
BITS = 1
STEM = 5
_WORD = re.compile(r"[a-z0-9ñ]+")
_EMPTY = b""
SIZE = SLOTS * BITS // 8  # bytes of a stored signature


@lru_cache(maxsize=1)
def _words() -> tuple[frozenset[str], dict[str, str]]:
    """Stop words and concepts from ``data/words.yaml``."""
    data = yaml.safe_load(
        resources.files("tipline.surge").joinpath("data", "words.yaml").read_text("utf-8"))
    stop = frozenset(w for text in data["stop_words"].values() for w in str(text).split())
    concepts = {w: str(concept) for concept, text in data["concepts"].items()
                for w in str(text).split()}
    return stop, concepts



@dataclass(frozen=True)
class Signature:
    """``minhash`` is the lowest ``BITS`` bits of each of ``SLOTS`` slot minimums, packed
    big-endian (slot 0 first); ``size`` the number of features."""

    minhash: bytes
    size: int

    def similarity(self, other: Signature) -> float:
        return similarity(self.minhash, other.minhash)


def features(text: str) -> set[str]:
    """The concepts and normalised word stems of ``text`` (stop words left out)."""
    stop, concepts = _words()
    out: set[str] = set()
    for word in _WORD.findall(normalize(text)):
        if word in stop or len(word) < 2:
            continue
        out.add(concepts.get(word) or word[:STEM])
    return out


def slot_hashes(feature: str, key: bytes, slots: int = SLOTS) -> array[int]:
    """A feature's full 32-bit keyed hash in each slot (native byte order).

    One keyed SHAKE-256 stream per feature (a keyed sponge is a PRF): slot i of every feature
    is one random hash function."""
    return array("I", _stream(feature, key, slots))


def _stream(feature: str, key: bytes, slots: int) -> bytes:
    """``slot_hashes`` as the raw stream (what ``signature`` reads, without an array copy)."""
    return hashlib.shake_256(key + b"\x00surge\x00" + feature.encode("utf-8")).digest(slots * 4)


def pack(mins: Iterable[int], bits: int = BITS) -> bytes:
    """The lowest ``bits`` bits of each slot minimum, packed into bytes, slot 0 first.

    Written as one binary numeral and parsed once: shifting a growing integer per slot made
    this quadratic in the number of slots."""
    mask = (1 << bits) - 1
    digits = "".join([format(m & mask, f"0{bits}b") for m in mins]) if bits > 1 else \
        bytes([48 + (m & 1) for m in mins]).decode()
    return int(digits or "0", 2).to_bytes((len(digits) + 7) // 8, "big")


def slot_minimums(rows: Sequence[bytes | array[int]], slots: int = SLOTS) -> list[int]:
    """Each slot's minimum over the features' ``slot_hashes`` (``map(min, zip(*rows))``).

    Computed on whole rows at once (``_minimums``): the same numbers as
    ``map(min, zip(*rows))`` (a test compares them), at a fraction of its 1,024 Python calls
    per tip.
    """
    mins = array("I", _minimums(rows, slots).to_bytes(4 * slots, "little"))
    if sys.byteorder != "little":  # the lanes are written little-endian
        mins.byteswap()
    return mins.tolist()


def low_bits(rows: Sequence[bytes | array[int]], slots: int = SLOTS) -> bytes:
    """``pack(slot_minimums(rows, slots), 1)``, read straight from the lanes.

    A signature keeps one bit of each minimum: the lowest byte of each 32-bit lane is taken
    with one slice, its bit turned into a binary digit by ``bytes.translate``, and the
    numeral parsed once, instead of a Python list of 1,024 minimums walked again to pack
    them (a test compares the two)."""
    lowest = _minimums(rows, slots).to_bytes(4 * slots, "little")[0::4]
    return int(lowest.translate(_BINARY_DIGIT), 2).to_bytes((slots + 7) // 8, "big")


# The byte's lowest bit as an ASCII binary digit.
_BINARY_DIGIT = bytes(48 + (i & 1) for i in range(256))


@lru_cache(maxsize=8)
def _lane_masks(slots: int) -> tuple[int, int, int]:
    """Bit 31 of each 32-bit lane, bits 0-30 of each lane, and bit 0 of each lane."""
    return (int.from_bytes(b"\0\0\0\x80" * slots, "little"),
            int.from_bytes(b"\xff\xff\xff\x7f" * slots, "little"),
            int.from_bytes(b"\1\0\0\0" * slots, "little"))


def _minimums(rows: Sequence[bytes | array[int]], slots: int) -> int:
    """Each slot's minimum over the rows, slot i in the 32-bit lane at bit 32 i of one integer.

    The rows are compared whole, 1,024 unsigned 32-bit lanes per big-integer operation, in
    12 operations a row (the rows as they come, no even/odd split of each into two integers
    with a spare guard bit, which took 19). Lane by lane, ``least >= other`` is: where their
    top bits differ, the top bit of ``least``; where they agree, whether the low 31 bits of
    ``least`` are at least those of ``other``, which is bit 31 of
    ``(least | top) - (other & low)`` (each lane of the first is above each of the second, so
    no lane borrows from the next). Where ``least >= other`` the lane takes ``other``.
    """
    top, low, ones = _lane_masks(slots)
    least = _lanes(rows[0])
    for row in rows[1:]:
        other = _lanes(row)
        differ = least ^ other
        low_ge = (least | top) - (other & low)
        ge = low_ge ^ ((low_ge ^ least) & differ)  # bit 31 of each lane: least >= other
        least ^= differ & (((ge >> 31) & ones) * 0xFFFFFFFF)
    return least


def _lanes(row: bytes | array[int]) -> int:
    """A row's slots as one integer, slot i (its native 32-bit value) at bits 32 i."""
    if sys.byteorder != "little":
        row = array("I", row)
        row.byteswap()
    return int.from_bytes(row, "little")


def signature(text: str, key: bytes, slots: int = SLOTS, bits: int = BITS) -> Signature:
    """The keyed b-bit MinHash of ``text``'s features (empty bytes for no words).

    ``slots`` and ``bits`` are for measuring other shapes (tests/surge/attack.py); grouping
    compares only signatures of the module's own shape."""
    feats = features(text)
    if not feats:
        return Signature(_EMPTY, 0)
    rows = [_stream(f, key, slots) for f in feats]
    if bits == 1:
        return Signature(low_bits(rows, slots), len(feats))
    return Signature(pack(slot_minimums(rows, slots), bits), len(feats))


@lru_cache(maxsize=8)
def _low_bit_mask(slots: int, bits: int) -> int:
    """The lowest bit of every ``bits``-wide lane set."""
    return int(("0" * (bits - 1) + "1") * slots, 2)


def similarity(one: bytes, two: bytes, slots: int = SLOTS, bits: int = BITS) -> float:
    """Estimated Jaccard similarity from the share of slots whose kept bits agree.

    Two different minimums agree in b low bits by chance with probability 2^-b, so the
    match rate m estimates J + (1 - J) 2^-b, and J = (m - 2^-b) / (1 - 2^-b), clamped at 0.
    Counted on the whole signatures as integers (a surge compares each tip with hundreds):
    XOR, fold each lane's bits into its lowest bit, count the lanes that differ.
    A signature of another shape (an erased one, or the full-width ones of before) is
    comparable with nothing.
    """
    size = slots * bits // 8
    if len(one) != size or len(two) != size:
        return 0.0
    x = int.from_bytes(one, "big") ^ int.from_bytes(two, "big")
    if bits > 1:
        low = _low_bit_mask(slots, bits)
        for shift in range(1, bits):
            x |= (x >> shift) & low
        x &= low
    chance = 2.0 ** -bits
    match = (slots - x.bit_count()) / slots
    return max(0.0, (match - chance) / (1.0 - chance))
