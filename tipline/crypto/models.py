"""Key tables: read key pairs (district, police agency), staff personal keys, grants,
district recovery keys, and the server side of a signed-in session's keys.

No row here holds a private key the server can open by itself: a read key's private half
exists only inside grants (sealed to a staff member's personal public key or to the district's
recovery public key); a personal private key only wrapped under a key derived from its
owner's password; a session's copy only under a key that lives in the session cookie.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tipline.crypto.sealing import Recipient
from tipline.db import Base, UTCDateTime, utcnow


class Owner(enum.StrEnum):
    DISTRICT = "district"
    AGENCY = "agency"


class ReadKey(Base):
    """A district's (or a police agency's) read key pair: the public half, and an id."""

    __tablename__ = "read_keys"
    __table_args__ = (UniqueConstraint("owner", "owner_id", "key_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(10))
    owner_id: Mapped[int] = mapped_column(Integer, index=True)
    key_id: Mapped[str] = mapped_column(String(16))
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A retired key still opens the tips sealed to it; new tips are sealed to the active one.
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def rid(self) -> str:
        return f"{self.owner}:{self.owner_id}:{self.key_id}"

    def recipient(self) -> Recipient:
        return Recipient(self.rid, bytes(self.public_key))


class StaffKey(Base):
    """A staff member's personal X25519 key: public, and private wrapped under a key derived
    from their password with Argon2id (``kdf`` holds the salt's parameters)."""

    __tablename__ = "staff_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_private: Mapped[bytes] = mapped_column(LargeBinary)
    salt: Mapped[bytes] = mapped_column(LargeBinary)
    kdf: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def rid(self) -> str:
        return f"user:{self.user_id}"

    def recipient(self) -> Recipient:
        return Recipient(self.rid, bytes(self.public_key))


class RecoveryKey(Base):
    """The public half of a district's offline recovery key (the private half never here)."""

    __tablename__ = "recovery_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    district_id: Mapped[int] = mapped_column(
        ForeignKey("districts.id", ondelete="CASCADE"), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def rid(self) -> str:
        return f"recovery:{self.district_id}"

    def recipient(self) -> Recipient:
        return Recipient(self.rid, bytes(self.public_key))


class KeyGrant(Base):
    """A read key's private half sealed to one holder: a staff member or a recovery key."""

    __tablename__ = "key_grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    read_key_id: Mapped[int] = mapped_column(
        ForeignKey("read_keys.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    recovery_key_id: Mapped[int | None] = mapped_column(
        ForeignKey("recovery_keys.id", ondelete="CASCADE"), index=True)
    # The sealed slot (JSON, kind x25519), bound to the read key's rid and the holder's rid.
    sealed: Mapped[str] = mapped_column(Text)
    granted_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    read_key: Mapped[ReadKey] = relationship()


class KeySession(Base):
    """A signed-in session's personal private key, AES-GCM under a key only its cookie holds.

    Deleted at sign-out and idle expiry; a row past ``expires_at`` is refused and purged.
    """

    __tablename__ = "key_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    sid: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    ct: Mapped[bytes] = mapped_column(LargeBinary)
    # Between the password and the code step: not yet a signed-in session.
    pending: Mapped[bool] = mapped_column(Boolean, default=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
