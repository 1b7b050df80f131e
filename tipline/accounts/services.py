"""Creating staff accounts, checking and changing passwords (Argon2id).

A password someone else chose (an administrator's one-time password, one typed at the command
line) is marked ``must_change_password``: it is good for one sign-in within ``ONE_TIME_VALID``,
and that sign-in shows nothing but the change-password page. ``change_password`` and
``reset_credentials`` are the only places a password hash is replaced.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, object_session

from tipline.accounts import keys, totp
from tipline.accounts.models import Role, StaffUser
from tipline.audit.services import record
from tipline.crypto import Vault
from tipline.db import rowcount, utcnow
from tipline.directory.models import District, School
from tipline.tips.models import DataKey

MIN_PASSWORD = 12
# Argon2 hashes any length, but a megabyte-long "password" is a cheap way to burn server time.
MAX_PASSWORD = 1000
# How long a one-time password (a new account's, an administrator's reset) can sign in.
ONE_TIME_HOURS = 72
ONE_TIME_VALID = timedelta(hours=ONE_TIME_HOURS)
# After this many failed passwords or codes in a row the account pauses for LOCK_FOR.
MAX_FAILED = 5
LOCK_FOR = timedelta(minutes=15)
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


class AccountError(ValueError):
    """The account cannot be created or changed as asked; the message is safe to show."""


def check_new_password(password: str) -> None:
    """The rule for every password a person chooses: 12 to 1000 characters (and, on a change,
    not the one it replaces). Raises AccountError."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password must have at most {MAX_PASSWORD} characters")


def new_one_time_password() -> str:
    """A one-time password: shown once to whoever hands it over, never stored in clear."""
    return secrets.token_urlsafe(15)


def set_hasher(hasher: PasswordHasher) -> None:
    """Tests use cheap parameters; production keeps the defaults."""
    global _hasher
    _hasher = hasher


def password_hasher() -> PasswordHasher:
    """The hasher in use; its Argon2id parameters also derive the personal-key wrapping key."""
    return _hasher


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
    must_change: bool = True,
    now: datetime | None = None,
) -> StaffUser:
    """A new account. Its password was chosen by whoever creates it, so by default it is a
    one-time password (``must_change``): replaced at the first sign-in, void after
    ``ONE_TIME_VALID``."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise AccountError("a valid email address is required")
    check_new_password(password)
    try:
        role = Role(role)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise AccountError(f"unknown role {role!r}; one of {roles}") from None
    if role == Role.INSTALLATION_ADMIN and (district_code or school_codes or contact_key):
        # Scoped to a district it would be read as that district's admin by some check.
        raise AccountError("an installation administrator belongs to no district, school or "
                           "contact")
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
        district = district or school.district
        if district is not None and school.district_id != district.id:
            # One account, one district: a school of another would open that district's tips.
            raise AccountError(f"{code} is not a school of district {district.code}")
        schools.append(school)
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
        must_change_password=must_change,
        password_expires_at=(now or utcnow()) + ONE_TIME_VALID if must_change else None,
        schools=schools,
        data_key=key_row,
    )
    session.add(user)
    session.flush()
    keys.setup_new_user(session, user, password)
    return user


# -- sign-in ------------------------------------------------------------------------------

class SignInRefused(Exception):
    """Wrong email, password or code, a paused or disabled account: one message for all."""


class OneTimePasswordSpent(SignInRefused):
    """The right one-time password, but it expired or a sign-in has used it already. Only
    someone who knows the password learns this, so the page may say so."""


def one_time_spent(user: StaffUser, now: datetime) -> bool:
    expires = user.password_expires_at
    return expires is not None and expires <= now


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
    if one_time_spent(user, now):
        raise OneTimePasswordSpent
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
    if not _usable(user, now, trusted) or one_time_spent(user, now):
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
    if user.password_expires_at is not None:
        # This sign-in used the one-time password: the next one needs the holder's own.
        user.password_expires_at = now


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


def _reset_totp(user: StaffUser) -> None:
    """Forget the authenticator: enrolment happens again at the next sign-in. Only ever
    together with a new one-time password (``reset_credentials``): otherwise whoever knows
    the old password could enrol their own authenticator."""
    user.totp_secret_ct = None
    user.totp_confirmed = False
    user.totp_last_step = None


# -- changing and resetting passwords -----------------------------------------------------

def change_password(session: Session, user: StaffUser, current: str, new: str, *,
                    now: datetime) -> None:
    """The account holder replaces their password (a signed-in session, password + TOTP).

    Needs the current password (a session left open is not enough; wrong guesses count
    towards the pause like sign-in failures and are refused while it lasts). Ends every
    other session: the caller signs this one in again. Audited; raises AccountError.
    """
    check_new_password(new)
    if not _usable(user, now):
        raise AccountError("too many wrong passwords: try again in 15 minutes")
    if not verify_password(user.password_hash, current):
        _failed(user, now)
        raise AccountError("the current password is not right")
    if verify_password(user.password_hash, new):
        raise AccountError("the new password must differ from the current one")
    forced = user.must_change_password
    keys.rewrap_personal_key(session, user, current, new, fresh=forced)
    user.password_hash = hash_password(new)
    user.must_change_password = False
    user.password_expires_at = None
    user.failed_logins = 0
    sign_out_everywhere(user)
    record(session, "staff.password.change", actor=f"user:{user.id}", actor_user_id=user.id,
           object_type="staff_user", object_id=user.id, detail={"first": forced})


def reset_credentials(user: StaffUser, *, now: datetime) -> str:
    """Give the account a new one-time password and forget its authenticator; returns the
    password (show it once, never store it).

    The old password stops working, every session ends and every browser is a new device
    again (the session version is bumped); the pause is lifted. The holder must enrol an
    authenticator and choose a password at the next sign-in, within ``ONE_TIME_VALID``.
    The personal key and every grant are dropped (the account is "waiting for access").
    Scope checks, the audit entry and the notice are the caller's.
    """
    password = new_one_time_password()
    user.password_hash = hash_password(password)
    user.must_change_password = True
    user.password_expires_at = now + ONE_TIME_VALID
    user.failed_logins = 0
    user.locked_until = None
    _reset_totp(user)
    sign_out_everywhere(user)
    session = object_session(user)
    if session is not None:
        # The personal key was under the forgotten password: it goes with its grants, and
        # the account waits for a colleague to grant access again after its next sign-in.
        keys.drop_access(session, user)
    return password


@dataclass(frozen=True)
class SignInState:
    """What the sign-in page carries between the password and the code step."""

    user_id: int
    session_version: int
    started: float
