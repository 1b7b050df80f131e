"""Grouping quality on a labelled set: pairwise precision and recall.

Tips are taken in the order given, per school, each joining the group of its best match
(``match.best_match``) exactly as the service does. A pair of tips counts as "grouped" when
they end in the same group; precision is the share of grouped pairs that are the same threat,
recall the share of same-threat pairs that were grouped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from tipline.surge.match import THRESHOLD, Candidate, best_match
from tipline.surge.signature import signature


@dataclass(frozen=True)
class Quality:
    precision: float
    recall: float
    pairs_grouped: int
    pairs_true: int
    tips: int

    def line(self) -> str:
        return (f"precision {self.precision:.3f} recall {self.recall:.3f} "
                f"({self.pairs_grouped} grouped pairs, {self.pairs_true} same-threat pairs, "
                f"{self.tips} tips)")


def assign(texts: Sequence[str], key: bytes, threshold: float = THRESHOLD) -> list[int]:
    """The group number each text of one school ends in, taken in order."""
    cands: list[Candidate] = []
    out: list[int] = []
    next_group = 0
    for text in texts:
        made = signature(text, key)
        sig = made.minhash
        found, _score = best_match(sig, made.size, cands, threshold)
        if found is None or found.group_id is None:
            group = next_group
            next_group += 1
        else:
            group = found.group_id
        cands.append(Candidate(sig, group, size=made.size))
        out.append(group)
    return out


def evaluate(schools: Mapping[str, Mapping[str, Sequence[str]]], key: bytes,
             threshold: float = THRESHOLD) -> Quality:
    """Pairwise precision and recall over every school of a labelled set.

    Within a school the threats' tips are interleaved (first tip of each threat, then the
    second of each...), as a day of tips would arrive.
    """
    tp = grouped = true_pairs = tips = 0
    for threats in schools.values():
        labelled: list[tuple[str, str]] = []
        lists = [(name, list(t)) for name, t in threats.items()]
        for i in range(max(len(t) for _n, t in lists)):
            labelled += [(name, t[i]) for name, t in lists if i < len(t)]
        groups = assign([text for _n, text in labelled], key, threshold)
        tips += len(labelled)
        for (a, b) in combinations(range(len(labelled)), 2):
            same_truth = labelled[a][0] == labelled[b][0]
            same_group = groups[a] == groups[b]
            true_pairs += same_truth
            grouped += same_group
            tp += same_truth and same_group
    return Quality(tp / grouped if grouped else 1.0, tp / true_pairs if true_pairs else 1.0,
                   grouped, true_pairs, tips)
