"""What a district's ``police_involvement`` allows: the police guard that routing enforces.

The guard belongs to the district's record in the directory (set by an installation
administrator in the directory file), not to the routing policy a district admin edits: the
policy checker, every load and save of a policy, and the engine at routing time read it from
here, whatever the policy file says. A policy's ``police_only_for`` can only narrow it.
"""

from __future__ import annotations

from typing import Any

from tipline.tips.models import Category

POLICE_ROLE = "police_liaison"
DEFAULT = "limited"
# value -> the categories police may be alerted for (None: no guard). "other" is where a tip
# about imminent danger lands when it is not a weapon or a threat (and where a voice tip
# starts before it is classified), so a limited district keeps it open to police.
GUARDS: dict[str, frozenset[str] | None] = {
    "limited": frozenset({Category.WEAPON.value, Category.THREAT.value, Category.OTHER.value}),
    "partnership": None,
    "full": None,
    "none": frozenset(),
}


def police_guard(involvement: str | None) -> frozenset[str] | None:
    """The categories police may be alerted for in such a district; None means any.

    A value the directory loader would refuse (a hand-edited row) is read as the default,
    ``limited``, never as "no guard".
    """
    return GUARDS.get(involvement or DEFAULT, GUARDS[DEFAULT])


def describe_guard(involvement: str | None) -> str:
    """``police_involvement: limited (police only for other, threat, weapon)``."""
    value = involvement if involvement in GUARDS else DEFAULT
    guard = GUARDS[value]
    if guard is None:
        return f"police_involvement: {value}"
    if not guard:
        return f"police_involvement: {value} (police are never alerted)"
    return f"police_involvement: {value} (police only for {', '.join(sorted(guard))})"


def narrow(*guards: frozenset[str] | None) -> frozenset[str] | None:
    """The guard that holds when all of ``guards`` hold (None: no guard)."""
    out: frozenset[str] | None = None
    for g in guards:
        if g is not None:
            out = g if out is None else out & g
    return out


def is_police(contact: Any) -> bool:
    """A police contact: a police liaison, or any contact of a police agency.

    The agency counts too, so a police desk entered with another role is still police.
    """
    return bool(contact.role == POLICE_ROLE or getattr(contact, "agency_id", None) is not None)
