"""The word-list attack on a stored surge signature by someone who holds the key file.

The attacker knows the signature key (it is derived from the key file), the feature function
(it is in the source) and the tip's feature count (``tip_signatures.size``). For each word of
a list they compute its keyed hash in every slot. Where that hash is small the word, if it is
in the tip, is probably the slot's minimum, and then the stored bits are its bits; elsewhere
they match only by chance (2^-b). Each word is scored by the log-likelihood ratio of "in the
tip" against "not in the tip" over all slots, which is the best test per word; the words are
ranked by it. ``python -m tests.surge.attack`` prints, for several signature shapes, how many
of a tip's stems rank in the top 10 and top 50 of a list of over 2,000 stems.
"""

from __future__ import annotations

import hashlib
import math
import random
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from tipline.surge.signature import features, signature, slot_hashes

LABELLED = Path(__file__).with_name("labelled.yaml")
SAMPLE = ("There is a kid named Marcus in 10th grade who said he is bringing his dad's gun to "
          "school on Friday to shoot the people who jumped him behind the gym")
# Only slots where a word's hash is below this share of the range are scored: above it the
# word is hardly ever the minimum of a tip of more than a few features, and leaving them out
# keeps the pure-Python attack fast.
CUTOFF = 0.35
_ONSETS = ("b", "br", "c", "ch", "cl", "d", "f", "fl", "g", "gr", "h", "j", "l", "ll", "m",
           "n", "p", "pl", "qu", "r", "s", "st", "t", "tr", "v", "z", "ñ")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ie", "io", "ue", "ou")
_CODAS = ("", "n", "r", "s", "l", "t", "nd", "st", "ch", "do", "ta", "ro", "ción", "mente",
          "ing", "er", "ed", "ly")


def labelled_texts() -> list[str]:
    data = yaml.safe_load(LABELLED.read_text("utf-8"))["schools"]
    return [t for threats in data.values() for tips in threats.values() for t in tips]


def word_list(minimum: int = 2000) -> list[str]:
    """The attacker's stems: every feature of the labelled set and of the sample tip, and
    generated English- and Spanish-looking words, at least ``minimum`` distinct."""
    stems: set[str] = set()
    for text in [*labelled_texts(), SAMPLE]:
        stems |= features(text)
    rng = random.Random(13)
    while len(stems) < minimum:
        word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS)
                       for _ in range(rng.choice((1, 2, 2, 3)))) + rng.choice(_CODAS)
        stems |= features(word)
    return sorted(stems)


@dataclass(frozen=True)
class Hashes:
    """Each stem's slots below ``CUTOFF``: (slot, hash as a share of the range)."""

    small: dict[str, list[tuple[int, float]]]
    slots: int

    @classmethod
    def of(cls, stems: Iterable[str], key: bytes, slots: int) -> Hashes:
        scale = 2.0 ** 32
        small = {s: [(i, h / scale) for i, h in enumerate(slot_hashes(s, key, slots))
                     if h < CUTOFF * scale] for s in stems}
        return cls(small, slots)


def _stored_bits(minhash: bytes, slots: int, bits: int) -> list[int]:
    x, mask = int.from_bytes(minhash, "big"), (1 << bits) - 1
    return [(x >> ((slots - 1 - i) * bits)) & mask for i in range(slots)]


def rank(minhash: bytes, size: int, stems: Sequence[str], hashes: Hashes, key: bytes,
         bits: int) -> list[str]:
    """The stems ordered by how likely each is a feature of the signed text, best first."""
    slots = hashes.slots
    stored = _stored_bits(minhash, slots, bits)
    mask = (1 << bits) - 1
    chance = 2.0 ** -bits
    cutoff = min(CUTOFF, 4.0 / max(size, 1))  # beyond it (1-u)^(n-1) < e^-4: no signal
    scores: dict[str, float] = {}
    for stem in stems:
        full = slot_hashes(stem, key, slots) if bits >= 32 else None
        score = 0.0
        for i, u in hashes.small[stem]:
            if u >= cutoff:
                continue
            argmin = (1.0 - u) ** (size - 1)  # chance that a feature at u is the minimum
            hit = argmin + (1.0 - argmin) * chance
            mine = full[i] if full is not None else int(u * 2.0 ** 32) & mask
            if mine == stored[i]:
                score += math.log(hit / chance)
            else:
                score += math.log(max(1.0 - hit, 1e-12) / (1.0 - chance))
        scores[stem] = score
    return sorted(stems, key=lambda s: (-scores[s], s))


def recovered(text: str, key: bytes, stems: Sequence[str], hashes: Hashes,
              bits: int) -> tuple[int, int, int]:
    """(the text's stems, how many rank in the top 10, in the top 50)."""
    sig = signature(text, key, hashes.slots, bits)
    truth = features(text)
    order = rank(sig.minhash, sig.size, stems, hashes, key, bits)
    return len(truth), len(truth & set(order[:10])), len(truth & set(order[:50]))


SHAPES = ((256, 32), (1024, 1), (512, 1), (256, 1), (512, 2))


def main(argv: Sequence[str]) -> None:
    """``[words [tips]]``: the word list's length (2,000) and how many labelled tips to
    attack besides the sample (all)."""
    key = hashlib.sha256(b"attack-key").digest() * 2
    stems = word_list(int(argv[0]) if argv else 2000)
    texts = labelled_texts()[:int(argv[1])] if len(argv) > 1 else labelled_texts()
    print(f"word list: {len(stems)} stems; sample tip: {len(features(SAMPLE))} stems; "
          f"{len(texts)} labelled tips")
    for slots, bits in SHAPES:
        hashes = Hashes.of(stems, key, slots)
        n, t10, t50 = recovered(SAMPLE, key, stems, hashes, bits)
        line = (f"{slots:5d} slots x {bits:2d} bits ({slots * bits // 8:4d} bytes): sample tip "
                f"{t10}/{n} stems in top 10, {t50}/{n} in top 50")
        runs = [r for r in (recovered(t, key, stems, hashes, bits) for t in texts) if r[0]]
        if runs:
            line += (f"; labelled tips: {sum(r[1] for r in runs)}/{sum(r[0] for r in runs)} "
                     f"stems in top 10, {sum(r[2] for r in runs)} in top 50 (top 10 can hold "
                     f"at most {sum(min(10, r[0]) for r in runs)})")
        print(line, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
