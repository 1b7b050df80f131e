"""Which group a new tip joins: the pure decision, shared by the service and the labelled set.

A tip joins the group of the most similar earlier tip of the same school within the window, if
that similarity reaches the threshold for the number of tips it was compared with
(``threshold_for``; single linkage: a paraphrase of any member is enough, since a surge drifts
from its first wording). The base threshold is tuned on ``tests/surge/labelled.yaml``;
``python -m bench surge`` prints precision and recall.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from tipline.surge.signature import similarity

# With 1-bit slots an unrelated pair agrees in half the slots by chance, so an estimate is
# off by about 1/32 (one standard deviation) either way. THRESHOLD applies to a tip compared
# with at most RAMP_FROM earlier tips (a school's ordinary days; every school of the labelled
# set), where it keeps precision 1.000 over 200 random keys (docs/surge.md).
THRESHOLD = 0.21
# A tip compared with more tips gets more chances for one estimate to land high by chance:
# in the surge scenario (tests/surge/scenario.py: up to 400 candidates) the best match of an
# unrelated tip that shares a generic word or two with the threat ("side door", "called",
# "class": true similarity up to 0.15) reached 0.21 under 125 of 2,000 random keys (then folded
# into the threat's group, 1 CI run in 16) and 0.283 at most. So the threshold rises by
# RAMP_STEP per doubling of the candidates beyond RAMP_FROM, up to THRESHOLD_MAX (reached at
# 256 candidates); the surge's own tips still all group (recall 1.000 over those keys), since
# each has near-identical earlier tips. tests/surge/test_surge_keys.py checks the margin.
RAMP_FROM = 32
RAMP_STEP = 0.03
THRESHOLD_MAX = 0.30
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


def threshold_for(compared: int, threshold: float = THRESHOLD) -> float:
    """The similarity a tip's best match must reach when the tip was compared with
    ``compared`` earlier tips: ``threshold`` up to ``RAMP_FROM`` of them, then ``RAMP_STEP``
    more per doubling, at most ``THRESHOLD_MAX`` (never below ``threshold``)."""
    if compared <= RAMP_FROM:
        return threshold
    raised = threshold + RAMP_STEP * math.log2(compared / RAMP_FROM)
    return max(threshold, min(THRESHOLD_MAX, raised))


def best_match(minhash: bytes, size: int, candidates: Iterable[Candidate],
               threshold: float = THRESHOLD) -> tuple[Candidate | None, float]:
    """The most similar candidate that shares at least ``MIN_SHARED`` features, if it
    reaches ``threshold_for(number of candidates, threshold)`` (None: start a new group)."""
    best: Candidate | None = None
    score = 0.0
    compared = 0
    for cand in candidates:
        compared += 1
        s = similarity(minhash, cand.minhash)
        if s > score and shared(s, size, cand.size) >= MIN_SHARED:
            best, score = cand, s
    if best is None or score < threshold_for(compared, threshold):
        return None, score
    return best, score
