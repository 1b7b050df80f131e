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

THRESHOLD = 0.18
WINDOW = timedelta(hours=72)


@dataclass(frozen=True)
class Candidate:
    """An earlier tip of the same school in the window: its signature and its group."""

    minhash: bytes
    group_id: int | None
    tip_id: int = 0


def best_match(minhash: bytes, candidates: Iterable[Candidate],
               threshold: float = THRESHOLD) -> tuple[Candidate | None, float]:
    """The most similar candidate at or above ``threshold`` (None: start a new group)."""
    best: Candidate | None = None
    score = 0.0
    for cand in candidates:
        s = similarity(minhash, cand.minhash)
        if s > score:
            best, score = cand, s
    if best is None or score < threshold:
        return None, score
    return best, score
