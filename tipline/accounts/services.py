"""Creating staff accounts and checking passwords (Argon2id)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from tipline.accounts.models import Role, StaffUser
from tipline.crypto import Vault
from tipline.directory.models import District, School
from tipline.tips.models import DataKey

MIN_PASSWORD = 12
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


class AccountError(ValueError):
    """The account cannot be created or changed as asked; the message is safe to show."""


def set_hasher(hasher: PasswordHasher) -> None:
    """Tests use cheap parameters; production keeps the defaults."""
    global _hasher
    _hasher = hasher


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


def create_user(
    session: Session,
    vault: Vault,
    *,
    email: str,
    password: str,
    role: Role | str,
    district_code: str | None = None,
    school_codes: list[str] | None = None,
    contact_key: str | None = None,
    display_name: str = "",
) -> StaffUser:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise AccountError("a valid email address is required")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    try:
        role = Role(role)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise AccountError(f"unknown role {role!r}; one of {roles}") from None
    if session.execute(select(StaffUser).where(StaffUser.email == email)).scalar_one_or_none():
        raise AccountError("an account with that email already exists")
    district = None
    if district_code:
        district = session.execute(
            select(District).where(District.code == district_code)
        ).scalar_one_or_none()
        if district is None:
            raise AccountError(f"unknown district {district_code!r}")
    schools = []
    for code in school_codes or []:
        school = session.execute(select(School).where(School.code == code)).scalar_one_or_none()
        if school is None:
            raise AccountError(f"unknown school {code!r}")
        schools.append(school)
        district = district or school.district
    if role == Role.SCHOOL_STAFF and not schools:
        raise AccountError("school staff need at least one --school")
    contact_id = None
    if contact_key:
        from tipline.directory.models import Contact

        contact = session.execute(
            select(Contact).where(Contact.key == contact_key)
        ).scalar_one_or_none()
        if contact is None:
            raise AccountError(f"unknown contact {contact_key!r}")
        contact_id = contact.id
    if role == Role.POLICE_LIAISON and contact_id is None:
        raise AccountError("a police liaison account must be linked to a contact (--contact)")
    _dek, wrapped = vault.new_data_key()
    key_row = DataKey(uid=wrapped.uid, slots=wrapped.slots, kek_id=vault.active_key_id)
    session.add(key_row)
    user = StaffUser(
        email=email,
        display_name=display_name or email.split("@")[0],
        role=role.value,
        district_id=district.id if district else None,
        contact_id=contact_id,
        password_hash=hash_password(password),
        schools=schools,
        data_key=key_row,
    )
    session.add(user)
    session.flush()
    return user
