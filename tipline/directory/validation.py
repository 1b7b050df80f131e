"""Field checks shared by the directory file loader and the administration pages.

One set of rules, so a contact that the dashboard accepts is one the YAML loader would accept
too (and the reverse). Each check raises ``DirectoryError`` with a message that names the entry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

E164 = re.compile(r"^\+[1-9]\d{7,14}$")
# Deliberately simple: one "@", no spaces, a dot in the domain. Mail delivery is the real test.
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,79}$")
ROLES = {
    "counselor", "social_worker", "safety_team", "principal", "district_oncall",
    "police_liaison", "family_specialist", "district_admin_desk",
    # Revision 0014: the students-in-transition team, and outside partners (kind: partner)
    "transition_team", "outside_partner", "interpreter",
}
LANGUAGE = re.compile(r"^[a-z]{2,3}$")
MAX_NAME = 200


class DirectoryError(ValueError):
    """The directory file (or an admin's edit) is invalid; the message names the entry."""


def check_phone(value: str | None, field: str, where: str) -> None:
    if value and not E164.match(value):
        raise DirectoryError(f"{where}: {field} must be E.164 like +13145550101")


def check_email(value: str | None, where: str) -> None:
    if value and (len(value) > 254 or not EMAIL.match(value)):
        raise DirectoryError(f"{where}: email is not a valid address")


def check_name(value: Any, where: str) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
        raise DirectoryError(f"{where}: name is required (at most {MAX_NAME} characters)")


def check_school_code(value: Any, where: str) -> None:
    if not isinstance(value, str) or not CODE.match(value):
        raise DirectoryError(
            f"{where}: code must be 1-40 lower-case letters, digits, '-' or '_'")


def check_contact_key(value: Any, where: str) -> None:
    if not isinstance(value, str) or not KEY.match(value):
        raise DirectoryError(
            f"{where}: key must be 1-80 lower-case letters, digits, '-', '_' or '.'")


def check_contact(item: Mapping[str, Any], where: str) -> None:
    """A contact entry as the directory file spells it (key, name, role, sms, voice, email)."""
    role = item.get("role")
    if role not in ROLES:
        raise DirectoryError(f"{where}: unknown role {role!r}")
    for fld in ("sms", "voice"):
        check_phone(item.get(fld), fld, where)
    check_email(item.get("email"), where)
    from tipline.directory.partners import AgreementError, check_agreement

    try:
        check_agreement(item.get("kind", "staff"), item.get("agreement"), where)
    except AgreementError as exc:
        raise DirectoryError(str(exc)) from None
    check_languages(item.get("languages", ""), where)


def check_languages(value: Any, where: str) -> None:
    """Languages a contact answers in: "bs, en" or a list of two- or three-letter codes."""
    items = value if isinstance(value, list) else str(value or "").split(",")
    for code in (str(x).strip() for x in items):
        if code and not LANGUAGE.match(code):
            raise DirectoryError(f"{where}: languages are codes like en, es, bs (not {code!r})")


def languages_text(value: Any) -> str:
    items = value if isinstance(value, list) else str(value or "").split(",")
    return ",".join(c for c in (str(x).strip() for x in items) if c)


def check_police_involvement(value: Any, where: str) -> None:
    """One of the values ``tipline.directory.police`` gives a meaning (docs/routing.md)."""
    from tipline.directory.police import GUARDS

    if value not in GUARDS:
        raise DirectoryError(f"{where}: police_involvement must be one of "
                             f"{', '.join(GUARDS)} (not {value!r})")


def check_school(item: Mapping[str, Any], where: str) -> None:
    check_school_code(item.get("code"), where)
    check_name(item.get("name"), where)
