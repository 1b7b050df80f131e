"""Intake's hand-built rows: ``_row`` fills exactly the column defaults the walk over the
model's columns fills (it now reads them from a list made once per model), and references are
six symbols that cover the whole alphabet."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from tipline.db import Base
from tipline.intake.services import _row
from tipline.routing.models import RoutingJob
from tipline.surge.models import TipSignature
from tipline.tips.models import Attachment, DataKey, Message, Tip
from tipline.tips.receipts import CROCKFORD, new_reference


def _walk(model: type[Base], **given: Any) -> dict[str, Any]:
    values = dict(given)
    for column in model.__table__.columns:
        default = column.default
        if column.name in values or column.primary_key or default is None:
            continue
        if default.is_scalar:
            values[column.name] = default.arg
        elif default.is_callable:
            values[column.name] = default.arg(None)
    return values


def _shape(row: dict[str, Any]) -> list[tuple[str, Any]]:
    """Keys in order, with values that differ call by call (times, uids) as their type."""
    return [(k, type(v) if isinstance(v, datetime) or (isinstance(v, str) and len(v) == 32)
             else v) for k, v in row.items()]


@pytest.mark.parametrize(("model", "given"), [
    (Tip, {"uid": "t", "severity": 2, "language": "es"}),
    (DataKey, {"uid": "k", "slots": "{}", "kek_id": "sealed"}),
    (Message, {"uid": "m", "author": "reporter", "placeholder": True}),
    (RoutingJob, {"reason": "intake"}),
    (Attachment, {"uid": "a", "kind": "image"}),
    (TipSignature, {"tip_id": 1}),
])
def test_row_fills_the_defaults_the_column_walk_fills(model: type[Base],
                                                      given: dict[str, Any]) -> None:
    made = _row(model, **given)
    assert _shape(made) == _shape(_walk(model, **given))
    assert {k: made[k] for k in given} == given  # what the caller gave wins


def test_references_are_six_uniform_symbols() -> None:
    refs = [new_reference() for _ in range(4000)]
    assert all(re.fullmatch(r"T-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{2}", r) for r in refs)
    counts = Counter(ch for r in refs for ch in r[2:6] + r[7:])
    assert set(counts) == set(CROCKFORD)
    # 24,000 symbols: 750 of each expected; a biased mapping would be far off.
    assert min(counts.values()) > 600 and max(counts.values()) < 900
    assert len(set(refs)) > 3990
