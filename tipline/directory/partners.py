"""Outside partners: organisations a district works with (a crisis line, an interpreter
service), alerted by a policy step like its own staff but held to the district's agreement.

A partner contact (``kind: partner``) receives only what its agreement allows. The default
agreement allows nothing beyond the alert itself: no tip content, no school name, and the
reference, which opens nothing without a staff account. The directory file records the
agreement; ``tipline route explain`` shows it beside each partner it names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("staff", "partner")
PARTNER = "partner"
AGREEMENT_FIELDS = {"organization", "content", "school", "note"}


class AgreementError(ValueError):
    """A partner's agreement in the directory is malformed; the message names the entry."""


@dataclass(frozen=True)
class Agreement:
    organization: str = ""
    content: bool = False  # may alerts carry the tip's text (where the step includes it)
    school: bool = False  # may alerts name the school
    note: str = ""  # the agreement's reference, e.g. "MOU 2026-07, section 4"

    def describe(self) -> str:
        parts = [
            "tip content allowed where the rule includes it" if self.content
            else "no tip content",
            "school named" if self.school else "no school name",
            "reference only (opens nothing without a staff account)",
        ]
        who = f"{self.organization}: " if self.organization else ""
        note = f" [{self.note}]" if self.note else ""
        return f"agreement: {who}{'; '.join(parts)}{note}"


def check_agreement(kind: Any, agreement: Any, where: str) -> None:
    if kind not in KINDS:
        raise AgreementError(f"{where}: kind must be one of {', '.join(KINDS)} (not {kind!r})")
    if agreement is None:
        return
    if kind != PARTNER:
        raise AgreementError(f"{where}: only a partner (kind: partner) has an agreement")
    if not isinstance(agreement, Mapping):
        raise AgreementError(f"{where}: agreement must be a mapping "
                             "(organization, content, school, note)")
    unknown = sorted(set(agreement) - AGREEMENT_FIELDS)
    if unknown:
        raise AgreementError(f"{where}: unknown agreement field {unknown[0]!r} (known: "
                             f"{', '.join(sorted(AGREEMENT_FIELDS))})")
    for flag in ("content", "school"):
        if not isinstance(agreement.get(flag, False), bool):
            raise AgreementError(f"{where}: agreement {flag} must be true or false")


def agreement_of(kind: str | None, agreement: Mapping[str, Any] | None) -> Agreement | None:
    """The agreement that binds a contact (None: the district's own staff)."""
    if kind != PARTNER:
        return None
    a = agreement or {}
    return Agreement(str(a.get("organization") or ""), a.get("content") is True,
                     a.get("school") is True, str(a.get("note") or ""))


WITHHELD = "school withheld (partner agreement)"


def content_allowed(kind: str | None, agreement: Mapping[str, Any] | None) -> bool:
    """Whether an alert to this contact may carry tip content where the rule includes it:
    staff yes, a partner only if its agreement says so. Checked when planning and again when
    sending, so an agreement narrowed after a tip was routed holds for its later alerts."""
    a = agreement_of(kind, agreement)
    return a is None or a.content


def school_shown(kind: str | None, agreement: Mapping[str, Any] | None,
                 school_name: str | None) -> str | None:
    """The school an alert to this contact may name: a partner's agreement may withhold it."""
    a = agreement_of(kind, agreement)
    if a is not None and not a.school and school_name:
        return WITHHELD
    return school_name
