"""A tip's similarity signature: a keyed MinHash of its normalised words, made at intake.

The signature is computed from the text in memory before it is sealed and is all that grouping
ever reads (after issue 13 the server cannot read a tip's text again). It reveals little on its
own: each slot is the minimum of a keyed hash over the tip's word stems, so two signatures tell
how much two tips' word sets overlap (that is their purpose), but without the key, which is
derived from the key file's lookup secret and never stored in the database, nobody can compute
the signature of a guessed text and compare it with a stored one.

Words are folded the way the triage word lists are (lower case, no accents), stop words of
English and Spanish are dropped, and each word is cut to its first ``STEM`` letters: a crude
stemmer that serves both languages ("shooting"/"shoot", "amenaza"/"amenazas") without a
dictionary. Word pairs are added to unigrams so that word order carries a little weight.
"""

from __future__ import annotations

import hashlib
import re
import sys
from array import array
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml

from tipline.routing.classifier import normalize

SLOTS = 256
STEM = 5
_WORD = re.compile(r"[a-z0-9ñ]+")
_EMPTY = b"\xff\xff\xff\xff" * SLOTS



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
    """``minhash`` is ``SLOTS`` big-endian 32-bit values; ``size`` the number of features."""

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


def signature(text: str, key: bytes) -> Signature:
    """The keyed MinHash of ``text``'s features (all slots 0xffffffff for no words)."""
    feats = features(text)
    if not feats:
        return Signature(_EMPTY, 0)
    # Each feature's SLOTS hash values come from one keyed SHAKE-256 stream (a keyed sponge
    # is a PRF): slot i of every feature is one random hash function, and the signature
    # keeps, per slot, the smallest value over the features.
    rows = [array("I", hashlib.shake_256(key + b"\x00surge\x00" + f.encode("utf-8"))
                  .digest(SLOTS * 4)) for f in feats]
    mins = array("I", map(min, zip(*rows, strict=True)))
    if sys.byteorder == "little":
        mins.byteswap()  # stored big-endian, the same on every machine
    return Signature(mins.tobytes(), len(feats))


def _lane_masks(lanes: int) -> tuple[int, ...]:
    """Per 32-bit lane: the low 16, 8, 4, 2 and 1 bits set, for ``similarity``'s folding."""
    return tuple(int.from_bytes(((1 << w) - 1).to_bytes(4, "big") * lanes, "big")
                 for w in (16, 8, 4, 2, 1))


_MASKS = _lane_masks(SLOTS)


def similarity(one: bytes, two: bytes) -> float:
    """Estimated Jaccard similarity: the share of slots where the two minimums agree.

    Counted on the whole signatures as integers (a surge compares each tip with hundreds):
    XOR, then fold each 32-bit lane's bits into its lowest bit; the set bits are the slots
    that differ.
    """
    if len(one) != len(two) or len(one) != SLOTS * 4 or one == _EMPTY or two == _EMPTY:
        return 0.0
    x = int.from_bytes(one, "big") ^ int.from_bytes(two, "big")
    for shift, mask in zip((16, 8, 4, 2, 1), _MASKS, strict=True):
        x |= (x >> shift) & mask
    return (SLOTS - (x & _MASKS[-1]).bit_count()) / SLOTS
