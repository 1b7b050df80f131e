"""A web tip's words are classified once: triage's fired rules feed the surge signature. When
triage did not run (it failed), the surge step classifies the words itself, so a life-safety
tip never reaches grouping with empty signals (which would let it fold into a group)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests.intake.helpers import post_tip
from tipline.db import utcnow
from tipline.intake import triage
from tipline.routing import classifier
from tipline.surge import services as surge
from tipline.surge.models import TipSignature
from tipline.tips.models import Tip

GUN = "He said he will bring a gun to the bus stop on Friday"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every classifier call, from triage (its cached function) and from the surge step."""
    seen: list[str] = []
    real = classifier.classify

    def counted(text: str, language: str, *args: Any) -> Any:
        seen.append(text)
        return real(text, language, *args)

    monkeypatch.setattr(triage, "_classify", counted)
    monkeypatch.setattr(classifier, "classify", counted)
    return seen


def _stored(db_session: Any) -> tuple[Tip, TipSignature]:
    tip = db_session.execute(select(Tip).order_by(Tip.id.desc()).limit(1)).scalar_one()
    sig = db_session.get(TipSignature, tip.id)
    assert sig is not None
    return tip, sig


def _expected_signals(vault: Any, text: str) -> list[str]:
    return list(surge.signature_row(vault, 0, text, "en", utcnow())["signals"])  # type: ignore


def test_a_web_tip_is_classified_once_with_the_same_signature(
        client, db_session, vault, demo_directory, calls) -> None:
    assert post_tip(client, body=GUN).status_code in (200, 303)
    assert len(calls) == 1
    _tip, sig = _stored(db_session)
    text = "\n".join([GUN, "Friday after school", "Bus stop on Arsenal St", "a junior",
                      "I heard him say it"])
    assert sig.signals and sig.signals == _expected_signals(vault, text)


def test_a_failed_triage_leaves_a_life_safety_tip_its_signals(
        client, db_session, vault, demo_directory, calls, monkeypatch) -> None:
    def broken(_text: str, _language: str) -> Any:
        raise RuntimeError("triage down")

    monkeypatch.setattr(triage, "_classify", broken)
    assert post_tip(client, body=GUN).status_code in (200, 303)
    _tip, sig = _stored(db_session)
    assert len(calls) == 1  # the surge step's own pass
    assert sig.signals, "a life-safety tip must not be grouped as if it had no reason"


def test_no_classifier_at_all_still_classifies_for_the_surge(
        client, db_session, vault, demo_directory, calls, monkeypatch) -> None:
    monkeypatch.setattr(triage, "_classify", None)  # the module is not installed
    assert post_tip(client, body=GUN).status_code in (200, 303)
    assert len(calls) == 1 and _stored(db_session)[1].signals
