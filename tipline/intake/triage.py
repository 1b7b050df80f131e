"""Automatic triage at intake: ask the routing package's classifier, before anything is sealed.

The classifier (``tipline.routing.classifier.classify``) may raise severity and suggest a
category; it never lowers what the reporter chose (``create_tip`` takes the max). Triage is an
aid, never a gate: if the module is missing or raises, the tip is accepted as the reporter
sent it and routed on their choices.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tipline.tips.models import Category, Severity

log = logging.getLogger(__name__)

_MODULE = "tipline.routing.classifier"
_UNSET: Any = object()
_classify: Any = _UNSET


@dataclass(frozen=True)
class Triage:
    severity_floor: Severity | None = None
    category: Category | None = None
    signals: tuple[str, ...] = ()
    # The classifier ran on the text and answered: ``signals`` are every rule it fired, which
    # the surge step may reuse. False (no classifier, no text, or it failed): an empty
    # ``signals`` says nothing, and must never be read as "no life-safety reason".
    classified: bool = False


def _classifier() -> Callable[[str, str], Any] | None:
    global _classify
    if _classify is _UNSET:
        try:
            _classify = importlib.import_module(_MODULE).classify
        except ModuleNotFoundError as exc:
            if exc.name is None or not _MODULE.startswith(exc.name):
                raise
            log.warning("automatic triage unavailable: %s is not installed", _MODULE)
            _classify = None
    return _classify


def triage_text(body: str, details: Mapping[str, str]) -> str:
    """The words the classifier reads: the tip and its when/where/who/how answers."""
    parts = [body, *(v for v in details.values() if v)]
    return "\n".join(p.strip() for p in parts if p and p.strip())


def run_triage(text: str, language: str) -> Triage:
    """Classify ``text``; an empty ``Triage`` when there is no classifier or it fails."""
    classify = _classifier()
    if classify is None or not text:
        return Triage()
    try:
        result = classify(text, language)
    except Exception:  # triage must never cost a tip
        log.exception("automatic triage failed; the tip is accepted without it")
        return Triage()
    floor = getattr(result, "severity_floor", None)
    category = getattr(result, "category", None)
    try:
        severity = Severity(int(floor)) if floor is not None else None
    except ValueError:
        severity = None
    try:
        cat = Category(category) if category else None
    except ValueError:
        cat = None
    return Triage(severity, cat, tuple(getattr(result, "signals", ()) or ()), classified=True)
