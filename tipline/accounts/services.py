"""Creating staff accounts and checking passwords (Argon2id)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, object_session

from tipline.accounts import totp
from tipline.accounts.models import Role, StaffUser
from tipline.crypto import Vault
from tipline.db import rowcount
from tipline.directory.models import District, School
from tipline.tips.models import DataKey

MIN_PASSWORD = 12
# After this many failed passwords or codes in a row the account pauses for LOCK_FOR.
MAX_FAILED = 5
LOCK_FOR = timedelta(minutes=15)
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


# -- sign-in ------------------------------------------------------------------------------

class SignInRefused(Exception):
    """Wrong email, password or code, a paused or disabled account: one message for all."""


_DUMMY_HASH: str | None = None


def _burn_time(password: str) -> None:
    """Hash-check against a throwaway hash so unknown emails take as long as known ones."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password("not-a-real-password-000")
    verify_password(_DUMMY_HASH, password)


def find_user(session: Session, email: str) -> StaffUser | None:
    email = email.strip().lower()
    return session.execute(select(StaffUser).where(StaffUser.email == email)).scalar_one_or_none()


def _usable(user: StaffUser | None, now: datetime, trusted: bool = False) -> bool:
    """Active, and not paused (the pause does not apply on a ``trusted`` device: one that has
    completed a sign-in on this account before, so a stranger's failures cannot lock out the
    staff member's own browser)."""
    if user is None or not user.active:
        return False
    return trusted or user.locked_until is None or user.locked_until <= now


def _failed(user: StaffUser, now: datetime) -> None:
    user.failed_logins = (user.failed_logins or 0) + 1
    if user.failed_logins >= MAX_FAILED:
        user.locked_until = now + LOCK_FOR
        user.failed_logins = 0


def check_password(session: Session, email: str, password: str, now: datetime, *,
                   trusted: bool = False) -> StaffUser:
    """First factor. Raises SignInRefused; counts failures (the caller commits either way)."""
    user = find_user(session, email)
    if user is None:
        _burn_time(password)
        raise SignInRefused
    if not _usable(user, now, trusted):
        _burn_time(password)
        raise SignInRefused
    if not verify_password(user.password_hash, password):
        _failed(user, now)
        raise SignInRefused
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def start_enrolment(session: Session, vault: Vault, user: StaffUser) -> str:
    """Give an account without a confirmed TOTP a fresh secret (kept sealed until confirmed)."""
    if user.totp_confirmed:
        raise AccountError("TOTP is already enrolled for this account")
    data_key = user.data_key
    if data_key is None:
        _dek, wrapped = vault.new_data_key()
        data_key = DataKey(uid=wrapped.uid, slots=wrapped.slots, kek_id=vault.active_key_id)
        session.add(data_key)
    secret = user.totp_secret or totp.new_secret()
    user.set_totp_secret(secret, data_key)
    session.flush()
    return secret


def check_code(user: StaffUser, code: str, now: datetime, *, trusted: bool = False) -> None:
    """Second factor (or enrolment confirmation). Refuses replays; counts failures."""
    if not _usable(user, now, trusted):
        raise SignInRefused
    secret = user.totp_secret
    step = None if secret is None else totp.matching_step(secret, code, now, user.totp_last_step)
    if step is None or not _claim_step(user, step):
        _failed(user, now)
        raise SignInRefused
    user.totp_last_step = step
    user.totp_confirmed = True
    user.failed_logins = 0
    user.last_login_at = now


def _claim_step(user: StaffUser, step: int) -> bool:
    """Record ``step`` as used in the database itself (compare-and-set), so two requests racing
    with the same code, each having read the old last step, cannot both succeed."""
    session = object_session(user)
    if session is None or user.id is None:
        return True
    claimed = session.execute(
        update(StaffUser)
        .where(StaffUser.id == user.id,
               or_(StaffUser.totp_last_step.is_(None), StaffUser.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    return rowcount(claimed) == 1


def sign_out_everywhere(user: StaffUser) -> None:
    """Every session issued before this call stops working at its next request."""
    user.session_version = (user.session_version or 1) + 1


def reset_totp(user: StaffUser) -> None:
    """An admin resets a lost authenticator: enrolment happens again at the next sign-in."""
    user.totp_secret_ct = None
    user.totp_confirmed = False
    user.totp_last_step = None
    sign_out_everywhere(user)


@dataclass(frozen=True)
class SignInState:
    """What the sign-in page carries between the password and the code step."""

    user_id: int
    session_version: int
    started: float
