"""Staff keys: personal keys under passwords, read-key grants, sessions that hold keys.

Who holds what (docs/crypto.md): a district's (or police agency's) read private key exists
only sealed to holders (``key_grants``): staff members' personal public keys and the
district's recovery public key. A personal private key exists only wrapped under an Argon2id
key from its owner's password (``staff_keys``), and, while signed in, under a random session
key that only the session cookie carries (``key_sessions``). A request's ``Keychain`` is
built from those: personal key -> grants -> read private keys.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from tipline.accounts.models import Role, StaffUser
from tipline.crypto import Keychain, Recipient
from tipline.crypto.models import KeyGrant, KeySession, Owner, ReadKey, RecoveryKey, StaffKey
from tipline.crypto.sealing import (
    SealError,
    new_private_key,
    open_sealed,
    private_bytes,
    private_from_bytes,
    public_bytes,
    seal_bytes,
)
from tipline.db import utcnow

# Roles that read tip content with the district's key. An auditor and an installation
# administrator read no tip; a police liaison reads with the agency's key.
DISTRICT_READERS = (Role.DISTRICT_ADMIN.value, Role.SCHOOL_STAFF.value)
_NONCE = 12


class KeyAccessError(Exception):
    """A key operation cannot be done as asked; the message is safe to show."""


# -- the personal key under the password ---------------------------------------------------

@dataclass(frozen=True)
class KdfParams:
    """Argon2id parameters stored with each wrapped personal key (so they can change)."""

    time_cost: int
    memory_cost: int
    parallelism: int

    def dumps(self) -> str:
        return json.dumps({"alg": "argon2id", "t": self.time_cost, "m": self.memory_cost,
                           "p": self.parallelism})

    @classmethod
    def loads(cls, text: str) -> KdfParams:
        data = json.loads(text)
        return cls(int(data["t"]), int(data["m"]), int(data["p"]))


def current_kdf() -> KdfParams:
    """The password hasher's parameters (tests make both cheap with ``set_hasher``)."""
    from tipline.accounts import services

    h = services.password_hasher()
    return KdfParams(h.time_cost, h.memory_cost, h.parallelism)


def _password_key(password: str, salt: bytes, params: KdfParams) -> bytes:
    return hash_secret_raw(password.encode("utf-8"), salt, time_cost=params.time_cost,
                           memory_cost=params.memory_cost, parallelism=params.parallelism,
                           hash_len=32, type=Type.ID)


def _personal_ad(user: StaffUser) -> bytes:
    return f"tipline/v1/personal-key/{user.uid}".encode()


def _wrap_personal(user: StaffUser, private: X25519PrivateKey, password: str,
                   row: StaffKey | None = None) -> StaffKey:
    params = current_kdf()
    salt = secrets.token_bytes(16)
    nonce = secrets.token_bytes(_NONCE)
    ct = AESGCM(_password_key(password, salt, params)).encrypt(
        nonce, private_bytes(private), _personal_ad(user))
    row = row or StaffKey(user_id=user.id)
    row.public_key = public_bytes(private)
    row.wrapped_private = nonce + ct
    row.salt = salt
    row.kdf = params.dumps()
    return row


def staff_key(session: Session, user: StaffUser) -> StaffKey | None:
    return session.execute(
        select(StaffKey).where(StaffKey.user_id == user.id)).scalar_one_or_none()


def make_personal_key(session: Session, user: StaffUser, password: str) -> X25519PrivateKey:
    """A new personal key pair for ``user`` (replacing any), wrapped under ``password``."""
    session.flush()
    private = new_private_key()
    existing = staff_key(session, user)
    row = _wrap_personal(user, private, password, existing)
    row.created_at = utcnow()
    if existing is None:
        session.add(row)
    session.flush()
    return private


def unlock_personal_key(session: Session, user: StaffUser,
                        password: str) -> X25519PrivateKey | None:
    """The personal private key, or None when the account has none (or it does not open:
    then it is useless, and a new one is made at sign-in)."""
    row = staff_key(session, user)
    if row is None:
        return None
    try:
        params = KdfParams.loads(row.kdf)
        blob = bytes(row.wrapped_private)
        raw = AESGCM(_password_key(password, bytes(row.salt), params)).decrypt(
            blob[:_NONCE], blob[_NONCE:], _personal_ad(user))
    except (InvalidTag, ValueError, KeyError):
        return None
    return private_from_bytes(raw)


def unlock_or_create(session: Session, user: StaffUser, password: str) -> X25519PrivateKey:
    """At sign-in, after the password checked out: the personal key, made if missing."""
    private = unlock_personal_key(session, user, password)
    if private is None:
        drop_access(session, user)
        private = make_personal_key(session, user, password)
    return private


def rewrap_personal_key(session: Session, user: StaffUser, current: str, new: str, *,
                        fresh: bool = False) -> None:
    """Password change: the personal key under the new password, its grants kept.

    With ``fresh`` (replacing a one-time password someone else knew) the key pair itself is
    replaced and the grants re-sealed to the new one, so the one-time password opens nothing
    in an older copy of the database either.
    """
    row = staff_key(session, user)
    private = unlock_personal_key(session, user, current) if row is not None else None
    if row is None or private is None:
        drop_access(session, user)
        make_personal_key(session, user, new)
        return
    if not fresh:
        _wrap_personal(user, private, new, row)
        session.flush()
        return
    grants = session.execute(select(KeyGrant).where(KeyGrant.user_id == user.id)).scalars()
    opened = []
    for grant in grants:
        try:
            opened.append((grant, open_grant(grant, private)))
        except (SealError, ValueError):
            session.delete(grant)
    new_private = make_personal_key(session, user, new)
    me = Recipient(f"user:{user.id}", public_bytes(new_private))
    for grant, read_private in opened:
        grant.sealed = seal_grant(grant.read_key, read_private, me)
    session.flush()


def drop_access(session: Session, user: StaffUser) -> None:
    """Forget the personal key, every grant and every key session of ``user`` (reset,
    removal): until a colleague grants access again the account reads no tip."""
    session.execute(delete(KeyGrant).where(KeyGrant.user_id == user.id))
    session.execute(delete(KeySession).where(KeySession.user_id == user.id))
    session.execute(delete(StaffKey).where(StaffKey.user_id == user.id))


def revoke_grants(session: Session, user: StaffUser) -> int:
    """A disabled account: its grants and key sessions go (the personal key stays useless)."""
    n = session.execute(select(KeyGrant.id).where(KeyGrant.user_id == user.id)).all()
    session.execute(delete(KeyGrant).where(KeyGrant.user_id == user.id))
    session.execute(delete(KeySession).where(KeySession.user_id == user.id))
    return len(n)


# -- read keys and grants ------------------------------------------------------------------

def active_read_key(session: Session, owner: Owner, owner_id: int) -> ReadKey | None:
    return session.execute(
        select(ReadKey).where(ReadKey.owner == owner.value, ReadKey.owner_id == owner_id,
                              ReadKey.retired_at.is_(None)).order_by(ReadKey.id.desc()).limit(1)
    ).scalar_one_or_none()


def _grant_label(read_key: ReadKey) -> str:
    return f"grant:{read_key.rid}"


def seal_grant(read_key: ReadKey, private: X25519PrivateKey, holder: Recipient) -> str:
    return json.dumps(seal_bytes(private_bytes(private), holder, _grant_label(read_key)))


def open_grant(grant: KeyGrant, holder_private: X25519PrivateKey) -> X25519PrivateKey:
    slot = json.loads(grant.sealed)
    raw = open_sealed(slot, holder_private, _grant_label(grant.read_key))
    return private_from_bytes(raw)


def create_read_key(session: Session, owner: Owner, owner_id: int,
                    holders: Sequence[tuple[StaffUser, Recipient]] = (),
                    granted_by: StaffUser | None = None) -> tuple[ReadKey, X25519PrivateKey]:
    """A new read key pair for a district or agency, granted to ``holders`` and (for a
    district) to its recovery key if it has one. The private half is stored nowhere else."""
    if active_read_key(session, owner, owner_id) is not None:
        raise KeyAccessError(f"{owner.value} {owner_id} already has a read key")
    n = len(session.execute(select(ReadKey.id).where(
        ReadKey.owner == owner.value, ReadKey.owner_id == owner_id)).all())
    private = new_private_key()
    row = ReadKey(owner=owner.value, owner_id=owner_id, key_id=f"k{n + 1}",
                  public_key=public_bytes(private), created_at=utcnow())
    session.add(row)
    session.flush()
    for user, recipient in holders:
        session.add(KeyGrant(read_key_id=row.id, user_id=user.id, created_at=utcnow(),
                             sealed=seal_grant(row, private, recipient),
                             granted_by_id=granted_by.id if granted_by else None))
    if owner == Owner.DISTRICT:
        recovery = session.execute(select(RecoveryKey).where(
            RecoveryKey.district_id == owner_id)).scalar_one_or_none()
        if recovery is not None:
            session.add(KeyGrant(read_key_id=row.id, recovery_key_id=recovery.id,
                                 created_at=utcnow(),
                                 sealed=seal_grant(row, private, recovery.recipient())))
    session.flush()
    return row, private


def agency_of(session: Session, user: StaffUser) -> int | None:
    if user.role != Role.POLICE_LIAISON.value or user.contact_id is None:
        return None
    from tipline.directory.models import Contact

    contact = session.get(Contact, user.contact_id)
    return contact.agency_id if contact is not None else None


def read_keys_for(session: Session, user: StaffUser) -> list[ReadKey]:
    """The active read keys this account's role should hold."""
    if user.role in DISTRICT_READERS and user.district_id is not None:
        key = active_read_key(session, Owner.DISTRICT, user.district_id)
        return [key] if key else []
    agency_id = agency_of(session, user)
    if agency_id is not None:
        key = active_read_key(session, Owner.AGENCY, agency_id)
        return [key] if key else []
    return []


def setup_new_user(session: Session, user: StaffUser, password: str) -> None:
    """``create_user``: a personal key; the first reader of a district (or the first liaison
    of an agency) also creates its read key pair, granted to them."""
    private = make_personal_key(session, user, password)
    me = Recipient(f"user:{user.id}", public_bytes(private))
    if user.role in DISTRICT_READERS and user.district_id is not None:
        if active_read_key(session, Owner.DISTRICT, user.district_id) is None:
            create_read_key(session, Owner.DISTRICT, user.district_id, [(user, me)])
        return
    agency_id = agency_of(session, user)
    if agency_id is not None and active_read_key(session, Owner.AGENCY, agency_id) is None:
        create_read_key(session, Owner.AGENCY, agency_id, [(user, me)])


def has_access(session: Session, user: StaffUser) -> bool:
    """Holds a grant for every read key its role needs (True when there is none yet)."""
    for key in read_keys_for(session, user):
        if not session.execute(select(exists().where(
                KeyGrant.read_key_id == key.id, KeyGrant.user_id == user.id))).scalar():
            return False
    return True


def waiting_for_access(session: Session, district_id: int) -> list[StaffUser]:
    """Active accounts of the district (and liaisons of its agencies' contacts) that lack a
    grant their role needs: listed so a signed-in colleague can grant it."""
    users = session.execute(
        select(StaffUser).where(StaffUser.district_id == district_id,
                                StaffUser.active.is_(True)).order_by(StaffUser.email)
    ).scalars().all()
    return [u for u in users if grantable_holder(u) and read_keys_for(session, u)
            and not has_access(session, u)]


def grantable_holder(user: StaffUser) -> bool:
    """An active account whose personal key is under a password only its holder knows.

    Until the holder replaces a one-time password, whoever handed it out could unwrap the
    key (from any copy of the database made meanwhile), so nothing is sealed to it.
    """
    return bool(user.active) and not user.must_change_password


def waiting_for(session: Session, granter: StaffUser) -> list[StaffUser]:
    """The accounts ``granter`` could grant: of their district, or for a police liaison the
    other liaisons of their agency (whose key only liaisons hold)."""
    agency_id = agency_of(session, granter)
    if agency_id is None:
        if granter.district_id is None:
            return []
        return waiting_for_access(session, granter.district_id)
    liaisons = session.execute(
        select(StaffUser).where(StaffUser.role == Role.POLICE_LIAISON.value,
                                StaffUser.active.is_(True), StaffUser.id != granter.id)
        .order_by(StaffUser.email)).scalars().all()
    return [u for u in liaisons if agency_of(session, u) == agency_id and grantable_holder(u)
            and read_keys_for(session, u) and not has_access(session, u)]


def grant_access(session: Session, keychain: Keychain, granter: StaffUser,
                 user: StaffUser) -> list[KeyGrant]:
    """Seal each read key ``user`` needs, that ``keychain`` (the granter's session) holds,
    to ``user``'s personal key. Raises KeyAccessError when nothing can be granted."""
    if not user.active:
        raise KeyAccessError("this account is disabled")
    if not grantable_holder(user):
        raise KeyAccessError("this account still has a one-time password: grant access once "
                             "its holder has chosen their own")
    target = staff_key(session, user)
    if target is None:
        raise KeyAccessError("this account has no key yet: it gets one at its next sign-in")
    made = []
    for key in read_keys_for(session, user):
        private = keychain.get(key.rid)
        if private is None:
            continue
        session.execute(delete(KeyGrant).where(KeyGrant.read_key_id == key.id,
                                               KeyGrant.user_id == user.id))
        grant = KeyGrant(read_key_id=key.id, user_id=user.id, created_at=utcnow(),
                         sealed=seal_grant(key, private, target.recipient()),
                         granted_by_id=granter.id)
        session.add(grant)
        made.append(grant)
    if not made:
        raise KeyAccessError("your session holds none of the keys this account needs")
    session.flush()
    return made


def keychain_for(session: Session, user_id: int, personal: X25519PrivateKey) -> Keychain:
    """personal key -> the account's grants -> read private keys (one X25519 each)."""
    chain = Keychain({f"user:{user_id}": personal})
    grants = session.execute(select(KeyGrant).where(KeyGrant.user_id == user_id)).scalars()
    for grant in grants:
        try:
            chain.add(grant.read_key.rid, open_grant(grant, personal))
        except (SealError, ValueError):
            continue  # sealed to an older personal key: useless, the account waits for access
    return chain


# -- session-held keys ---------------------------------------------------------------------

@dataclass(frozen=True)
class SessionKeys:
    """What the session cookie carries: the row id and the key that opens it."""

    sid: str
    key: bytes

    def to_cookie(self) -> dict[str, str]:
        return {"s": self.sid, "k": base64.urlsafe_b64encode(self.key).decode()}

    @classmethod
    def from_cookie(cls, data: object) -> SessionKeys | None:
        if not isinstance(data, dict):
            return None
        try:
            key = base64.urlsafe_b64decode(str(data["k"]))
            sid = str(data["s"])
        except (KeyError, ValueError):
            return None
        if len(key) != 32 or not 0 < len(sid) <= 64:
            return None
        return cls(sid, key)


def _session_ad(sid: str, user_id: int) -> bytes:
    return f"tipline/v1/key-session/{sid}/{user_id}".encode()


def open_key_session(session: Session, user: StaffUser, personal: X25519PrivateKey,
                     lifetime: timedelta, now: datetime) -> SessionKeys:
    """Store the personal key for a session under a fresh key the cookie will carry."""
    session.execute(delete(KeySession).where(KeySession.expires_at < now))
    handle = SessionKeys(secrets.token_hex(16), secrets.token_bytes(32))
    nonce = secrets.token_bytes(_NONCE)
    ct = AESGCM(handle.key).encrypt(nonce, private_bytes(personal),
                                    _session_ad(handle.sid, user.id))
    session.add(KeySession(sid=handle.sid, user_id=user.id, ct=nonce + ct, pending=True,
                           expires_at=now + lifetime, created_at=now))
    session.flush()
    return handle


def activate_key_session(session: Session, handle: SessionKeys, user_id: int,
                         lifetime: timedelta, now: datetime) -> bool:
    """The code step passed: the pending row becomes the signed-in session's."""
    row = _row(session, handle, user_id, now)
    if row is None:
        return False
    row.pending = False
    row.expires_at = now + lifetime
    return True


def _row(session: Session, handle: SessionKeys, user_id: int,
         now: datetime) -> KeySession | None:
    row = session.execute(
        select(KeySession).where(KeySession.sid == handle.sid)).scalar_one_or_none()
    if row is None or row.user_id != user_id or row.expires_at <= now:
        return None
    return row


def session_personal_key(session: Session, handle: SessionKeys, user_id: int, now: datetime,
                         *, extend: timedelta | None = None) -> X25519PrivateKey | None:
    """The personal key a signed-in session holds, or None (expired, ended, not its own)."""
    row = _row(session, handle, user_id, now)
    if row is None or row.pending:
        return None
    blob = bytes(row.ct)
    try:
        raw = AESGCM(handle.key).decrypt(blob[:_NONCE], blob[_NONCE:],
                                         _session_ad(handle.sid, user_id))
    except InvalidTag:
        return None
    if extend is not None and row.expires_at - now < extend - timedelta(seconds=60):
        row.expires_at = now + extend  # at most one write a minute per session
    return private_from_bytes(raw)


def end_key_session(session: Session, sid: str | None) -> None:
    if sid:
        session.execute(delete(KeySession).where(KeySession.sid == sid))


def end_other_key_sessions(session: Session, user_id: int, keep: str | None) -> None:
    """After "sign out everywhere" or a password change: only this session keeps its keys."""
    q = delete(KeySession).where(KeySession.user_id == user_id)
    if keep:
        q = q.where(KeySession.sid != keep)
    session.execute(q)


def purge_expired(session: Session, now: datetime) -> int:
    result = session.execute(delete(KeySession).where(KeySession.expires_at <= now))
    from tipline.db import rowcount

    return rowcount(result)


def first_reader_setup(session: Session, user: StaffUser, personal: X25519PrivateKey) -> bool:
    """At sign-in: a reader of a district (liaison of an agency) with no read key yet creates
    it, so an installation that predates sealing gets its keys at the first sign-in."""
    me = Recipient(f"user:{user.id}", public_bytes(personal))
    if user.role in DISTRICT_READERS and user.district_id is not None:
        if active_read_key(session, Owner.DISTRICT, user.district_id) is None:
            create_read_key(session, Owner.DISTRICT, user.district_id, [(user, me)])
            return True
        return False
    agency_id = agency_of(session, user)
    if agency_id is not None and active_read_key(session, Owner.AGENCY, agency_id) is None:
        create_read_key(session, Owner.AGENCY, agency_id, [(user, me)])
        return True
    return False


def district_readers_with_keys(session: Session,
                               district_id: int) -> list[tuple[StaffUser, Recipient]]:
    rows = session.execute(
        select(StaffUser, StaffKey).join(StaffKey, StaffKey.user_id == StaffUser.id)
        .where(StaffUser.district_id == district_id, StaffUser.active.is_(True),
               StaffUser.role.in_(DISTRICT_READERS),
               StaffUser.must_change_password.is_(False)).order_by(StaffUser.id)
    ).all()
    return [(u, k.recipient()) for u, k in rows]


def district_init(session: Session, district_id: int) -> ReadKey:
    """``tipline keys district-init``: the district's read key, sealed to the public keys of
    its readers who have a personal key (and to its recovery key). Only public keys are used."""
    row, _private = create_read_key(session, Owner.DISTRICT, district_id,
                                    district_readers_with_keys(session, district_id))
    return row


# -- recovery ------------------------------------------------------------------------------

RECOVERY_PREFIX = "tipline-recovery-v1"


def recovery_text(district_code: str, private: X25519PrivateKey) -> str:
    raw = base64.urlsafe_b64encode(private_bytes(private)).decode().rstrip("=")
    return f"{RECOVERY_PREFIX}:{district_code}:{raw}"


def parse_recovery(text: str, district_code: str) -> X25519PrivateKey:
    parts = text.strip().split(":")
    if len(parts) != 3 or parts[0] != RECOVERY_PREFIX:
        raise KeyAccessError("not a tipline recovery key")
    if parts[1] != district_code:
        raise KeyAccessError(f"this recovery key is for district {parts[1]!r}")
    try:
        raw = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
        return private_from_bytes(raw)
    except ValueError:
        raise KeyAccessError("the recovery key is damaged") from None


def recovery_init(session: Session, district_id: int,
                  holder_chain: Keychain | None = None) -> X25519PrivateKey:
    """A new recovery key pair for the district: the public half stored, the district's read
    keys sealed to it (those ``holder_chain`` holds; a district with no read key gets one,
    held by the recovery key alone until staff are granted). Returns the private half, which
    the caller shows once and never stores."""
    if session.execute(select(RecoveryKey).where(
            RecoveryKey.district_id == district_id)).scalar_one_or_none() is not None:
        raise KeyAccessError("this district already has a recovery key")
    read_keys = session.execute(select(ReadKey).where(
        ReadKey.owner == Owner.DISTRICT.value, ReadKey.owner_id == district_id)).scalars().all()
    chain = holder_chain or Keychain()
    if read_keys and not all(k.rid in chain for k in read_keys):
        raise KeyAccessError("sealing the district key to a recovery key needs a staff member "
                             "who holds it (--user)")
    private = new_private_key()
    row = RecoveryKey(district_id=district_id, public_key=public_bytes(private),
                      created_at=utcnow())
    session.add(row)
    session.flush()
    if not read_keys:
        create_read_key(session, Owner.DISTRICT, district_id,
                        district_readers_with_keys(session, district_id))
    else:
        for key in read_keys:
            read_private = chain.get(key.rid)
            assert read_private is not None  # noqa: S101  (checked above)
            session.add(KeyGrant(read_key_id=key.id, recovery_key_id=row.id, created_at=utcnow(),
                                 sealed=seal_grant(key, read_private, row.recipient())))
    session.flush()
    return private


def recovery_keychain(session: Session, district_id: int,
                      recovery_private: X25519PrivateKey) -> Keychain:
    """The district read keys the recovery key opens."""
    row = session.execute(select(RecoveryKey).where(
        RecoveryKey.district_id == district_id)).scalar_one_or_none()
    if row is None or bytes(row.public_key) != public_bytes(recovery_private):
        raise KeyAccessError("this is not the district's recovery key")
    chain = Keychain()
    grants = session.execute(select(KeyGrant).where(
        KeyGrant.recovery_key_id == row.id)).scalars()
    for grant in grants:
        chain.add(grant.read_key.rid, open_grant(grant, recovery_private))
    return chain


def recover(session: Session, district_id: int, recovery_private: X25519PrivateKey,
            user: StaffUser) -> list[KeyGrant]:
    """``tipline keys recover``: grant ``user`` (who has signed in once since, so has a
    personal key) the district keys, opened with the recovery key."""
    if user.district_id != district_id or user.role not in DISTRICT_READERS:
        raise KeyAccessError("that account does not read this district's tips")
    if not grantable_holder(user):
        raise KeyAccessError("that account still has a one-time password: sign in with it, "
                             "choose a password, then run this again")
    chain = recovery_keychain(session, district_id, recovery_private)
    made = []
    target = staff_key(session, user)
    if target is None:
        raise KeyAccessError("that account has no key yet: sign in with it once, then run "
                             "this again")
    keys_ = session.execute(select(ReadKey).where(
        ReadKey.owner == Owner.DISTRICT.value, ReadKey.owner_id == district_id)).scalars()
    for key in keys_:
        private = chain.get(key.rid)
        if private is None:
            continue
        session.execute(delete(KeyGrant).where(KeyGrant.read_key_id == key.id,
                                               KeyGrant.user_id == user.id))
        grant = KeyGrant(read_key_id=key.id, user_id=user.id, created_at=utcnow(),
                         sealed=seal_grant(key, private, target.recipient()))
        session.add(grant)
        made.append(grant)
    if not made:
        raise KeyAccessError("the recovery key opens none of the district's keys")
    session.flush()
    return made
