"""The surge scenario's grouping decision under many keys, without the database.

``test_surge.py`` runs the scenario under one key a session, made at random, so a threshold
that holds for most keys but not all fails one CI run in so many. Here the decision the
service makes for each unrelated tip of the scenario (its best match among the tips before
it, at most ``MAX_CANDIDATES`` of them, against ``threshold_for`` that many) is checked
under fixed keys, so a margin too thin for some keys fails every run."""

from __future__ import annotations

import hashlib
import random

from tests.surge import scenario
from tipline.surge.match import (
    MIN_SHARED,
    RAMP_FROM,
    THRESHOLD,
    THRESHOLD_MAX,
    shared,
    threshold_for,
)
from tipline.surge.services import MAX_CANDIDATES
from tipline.surge.signature import signature, similarity

KEYS = [hashlib.sha512(f"surge-keys-{i}".encode()).digest() for i in range(24)]


def worst_unrelated_margin(key: bytes, items: list[scenario.SurgeTip]) -> tuple[float, str]:
    """The largest (best match - threshold) of any unrelated tip, and that tip's text."""
    sigs = {text: signature(text, key) for text in {i.text for i in items}}
    worst, which = -1.0, ""
    for pos, item in enumerate(items):
        if item.kind != "unrelated":
            continue
        earlier = items[max(0, pos - MAX_CANDIDATES):pos]
        mine = sigs[item.text]
        best = 0.0
        for text in {i.text for i in earlier}:  # a repeated text scores the same each time
            other = sigs[text]
            s = similarity(mine.minhash, other.minhash)
            if s > best and shared(s, mine.size, other.size) >= MIN_SHARED:
                best = s
        margin = best - threshold_for(len(earlier))
        if margin > worst:
            worst, which = margin, item.text
    return worst, which


def test_no_unrelated_tip_of_the_surge_reaches_its_threshold_under_many_keys():
    items = scenario.tips(random.Random(14))
    margins = [worst_unrelated_margin(key, items) for key in KEYS]
    worst = max(margins)
    print(f"worst unrelated match minus its threshold over {len(KEYS)} keys: {worst[0]:.3f} "
          f"({worst[1]!r})")
    assert worst[0] < 0, worst


def test_the_threshold_rises_with_the_candidates_compared():
    assert threshold_for(0) == threshold_for(RAMP_FROM) == THRESHOLD
    assert threshold_for(2 * RAMP_FROM) > THRESHOLD
    assert threshold_for(MAX_CANDIDATES) == THRESHOLD_MAX
    steps = [threshold_for(n) for n in range(MAX_CANDIDATES + 1)]
    assert steps == sorted(steps)
    assert threshold_for(MAX_CANDIDATES, 0.5) == 0.5  # a higher base is never lowered
