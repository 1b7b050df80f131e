"""Which group a new tip joins: the pure decision, shared by the service and the labelled set.

A tip joins the group of the most similar earlier tip of the same school within the window, if
that similarity reaches ``THRESHOLD`` (single linkage: a paraphrase of any member is enough,
since a surge drifts from its first wording). The threshold is tuned on
``tests/surge/labelled.yaml``; ``python -m bench surge`` prints precision and recall.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from tipline.surge.signature import similarity

# With 1-bit slots an unrelated pair agrees in half the slots by chance, so the estimate is
# noisier than the full-width one's was (docs/surge.md): 0.21 stays above the best match of
# every unrelated tip of the surge scenario over 16 keys (at most 0.195).
THRESHOLD = 0.21
# And at least this many features in common (estimated from the similarity and the two
# feature counts): two short unrelated tips can share a third of very few words.
MIN_SHARED = 2.0
WINDOW = timedelta(hours=72)


@dataclass(frozen=True)
class Candidate:
    """An earlier tip of the same school in the window: its signature and its group."""

    minhash: bytes
    group_id: int | None
    tip_id: int = 0
    size: int = 0


def shared(score: float, size: int, other: int) -> float:
    """Features two sets of these sizes have in common at this Jaccard similarity."""
    return score * (size + other) / (1.0 + score)


def best_match(minhash: bytes, size: int, candidates: Iterable[Candidate],
               threshold: float = THRESHOLD) -> tuple[Candidate | None, float]:
    """The most similar candidate at or above ``threshold`` that shares at least
    ``MIN_SHARED`` features (None: start a new group)."""
    best: Candidate | None = None
    score = 0.0
    for cand in candidates:
        s = similarity(minhash, cand.minhash)
        if s > score and shared(s, size, cand.size) >= MIN_SHARED:
            best, score = cand, s
    if best is None or score < threshold:
        return None, score
    return best, score
