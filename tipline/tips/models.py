"""Tips, their conversation, attachments and notes, with every content field encrypted.

Encrypted columns end in ``_ct`` and hold a field envelope (see ``tipline.crypto``). The
decrypted value is a property that opens the envelope with the process's vault and the tip's
data key; setters seal. A row's ``uid`` is part of the associated data, so ciphertexts cannot
be swapped between rows.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship

from tipline import crypto
from tipline.db import Base, UTCDateTime, new_uid, utcnow

if TYPE_CHECKING:
    from tipline.directory.models import District, School


class Category(enum.StrEnum):
    WEAPON = "weapon"
    THREAT = "threat"
    SELF_HARM = "self_harm"
    BULLYING = "bullying"
    ABUSE = "abuse"
    SUBSTANCE = "substance"
    FAMILY_CRISIS = "family_crisis"
    # Revision 0014: a safe place to sleep, food, housing (students in transition), and
    # violence by a boyfriend or girlfriend. Stored as text, so older tips keep theirs.
    BASIC_NEEDS = "basic_needs"
    DATING_VIOLENCE = "dating_violence"
    OTHER = "other"


class Severity(enum.IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    LIFE_SAFETY = 4


class Status(enum.StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    REFERRED = "referred"
    CLOSED = "closed"


class Channel(enum.StrEnum):
    WEB = "web"
    SMS = "sms"
    VOICE = "voice"


class DataKey(Base):
    """A tip's (or a user's) data key, stored only wrapped. Delete it to shred the content."""

    __tablename__ = "data_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    slots: Mapped[str] = mapped_column(Text)
    # Denormalised for `tipline keys rotate` progress and for finding keys to re-wrap.
    kek_id: Mapped[str] = mapped_column(String(40), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def wrapped(self) -> crypto.WrappedKey:
        return crypto.WrappedKey(self.uid, self.slots)

    def plaintext_key(self) -> bytes:
        return crypto.current().unwrap(self.wrapped())


class _Sealed:
    """Mixin: seal/open helpers for rows whose content is under a tip's data key.

    A row that a worker or webhook added after intake may have its own data key (revision
    0012): ``_KEY_COLUMNS`` names, per content column, the column holding that key's uid; a
    row without one uses the tip's key. A key made in this process is held on the row
    (``hold_key``), so a worker seals with it without ever unwrapping a key (it cannot: the
    key is sealed to staff keys only).
    """

    __tablename__: str
    uid: Mapped[str]
    _KEY_COLUMNS: ClassVar[dict[str, str]] = {}

    def _dek(self) -> bytes:
        raise NotImplementedError

    def hold_key(self, key_column: str, uid: str | None, dek: bytes | None) -> None:
        """Use data key ``uid`` (plaintext ``dek``, just made) for the content under
        ``key_column``; ``uid=None``: the tip's key again."""
        setattr(self, key_column, uid)
        held: dict[str, bytes] = self.__dict__.setdefault("_held_keys", {})
        if uid is not None and dek is not None:
            held[uid] = dek

    def _dek_for(self, column: str) -> bytes:
        key_column = self._KEY_COLUMNS.get(column)
        uid = getattr(self, key_column) if key_column else None
        if uid is None:
            return self._dek()
        held = self.__dict__.get("_held_keys") or {}
        if uid in held:
            return bytes(held[uid])
        opened = crypto.current_keychain().remembered(uid)  # opened earlier in this request
        if opened is not None:
            return opened
        session = object_session(self)
        if session is None:
            raise crypto.KeyUnavailable("a detached row cannot load its data key")
        with session.no_autoflush:
            key = session.execute(select(DataKey).where(DataKey.uid == uid)).scalar_one_or_none()
        if key is None:
            raise crypto.KeyUnavailable("this item's data key has been destroyed")
        return key.plaintext_key()

    def _open(self, column: str) -> str | None:
        blob = getattr(self, column)
        if blob is None:
            return None
        ad = crypto.field_ad(self.__tablename__, column, self.uid)
        return crypto.current().open_text(self._dek_for(column), blob, ad)

    def _seal(self, column: str, value: str | None) -> None:
        if self.uid is None:
            self.uid = new_uid()
        if value is None:
            setattr(self, column, None)
            return
        ad = crypto.field_ad(self.__tablename__, column, self.uid)
        setattr(self, column, crypto.current().seal_text(self._dek_for(column), value, ad))


class Tip(_Sealed, Base):
    __tablename__ = "tips"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uid)
    # Short reference shown to staff and in alerts ("T-4821-KQ"); reveals nothing.
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    district_id: Mapped[int | None] = mapped_column(ForeignKey("districts.id"), index=True)
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"), index=True)
    category: Mapped[str] = mapped_column(String(32), index=True)
    severity: Mapped[int] = mapped_column(Integer, index=True)
    reporter_severity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default=Status.NEW.value, index=True)
    channel: Mapped[str] = mapped_column(String(10))
    language: Mapped[str] = mapped_column(String(8), default="en")
    danger_now: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(40))
    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    data_key_id: Mapped[int | None] = mapped_column(
        ForeignKey("data_keys.id", ondelete="SET NULL"), index=True
    )
    # Keyed HMAC of the receipt code; the code itself is shown once and never stored.
    receipt_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # SMS threading: keyed HMAC of the reporter's number, and the number sealed for relays.
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Structured details (when, where, who, how they know), JSON sealed.
    details_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Status text meant for the reporter (sealed).
    reporter_status_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Idempotency for provider retries (e.g. a Twilio MessageSid/CallSid); not identifying.
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # When the reporter last wrote after the tip itself (web follow-up or SMS): revision 0010.
    reporter_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # The tip text for alerts whose rule says include_content, composed at intake before the
    # tip's key was sealed, under the key file's alert subkey (routing.audience): the one
    # documented exception to "the server cannot read a tip". Revision 0012.
    alert_content_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    # When its first alert was recorded as sent (set once, by that delivery; revision 0017):
    # the commit -> first alert metric counts each tip once (tipline.ops.hooks).
    first_alert_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    data_key: Mapped[DataKey | None] = relationship()
    school: Mapped[School | None] = relationship()
    district: Mapped[District | None] = relationship()
    messages: Mapped[list[Message]] = relationship(
        back_populates="tip", order_by="Message.created_at, Message.id"
    )
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="tip", order_by="Attachment.id"
    )

    def _dek(self) -> bytes:
        if self.data_key is None:
            raise crypto.KeyUnavailable("this tip's data key has been destroyed")
        return self.data_key.plaintext_key()

    @property
    def phone(self) -> str | None:
        return self._open("phone_ct")

    @phone.setter
    def phone(self, value: str | None) -> None:
        self._seal("phone_ct", value)

    @property
    def details_json(self) -> str | None:
        return self._open("details_ct")

    @details_json.setter
    def details_json(self, value: str | None) -> None:
        self._seal("details_ct", value)

    @property
    def reporter_status(self) -> str | None:
        return self._open("reporter_status_ct")

    @reporter_status.setter
    def reporter_status(self, value: str | None) -> None:
        self._seal("reporter_status_ct", value)


class Message(_Sealed, Base):
    """One message in a tip's conversation: from the reporter, from staff, or the system."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uid)
    tip_id: Mapped[int] = mapped_column(ForeignKey("tips.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(10))  # reporter | staff | system
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    channel: Mapped[str] = mapped_column(String(10))
    body_ct: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_by_reporter_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Provider idempotency (MessageSid etc.), not identifying.
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # For staff replies relayed by SMS: pending | sent | failed | n/a
    relay_status: Mapped[str] = mapped_column(String(10), default="n/a")
    # Revision 0012: this message's own data key (content added after intake), a flag for a
    # voice tip's "transcript pending" text, and a staff reply's relay payload (reporter's
    # number and text) under a per-job key that only the relay task's message carries.
    data_key_uid: Mapped[str | None] = mapped_column(String(32))
    placeholder: Mapped[bool] = mapped_column(Boolean, default=False)
    relay_payload_ct: Mapped[bytes | None] = mapped_column(LargeBinary)

    tip: Mapped[Tip] = relationship(back_populates="messages")
    _KEY_COLUMNS: ClassVar[dict[str, str]] = {"body_ct": "data_key_uid"}

    def _dek(self) -> bytes:
        return self.tip._dek()

    @property
    def body(self) -> str:
        return self._open("body_ct") or ""

    @body.setter
    def body(self, value: str) -> None:
        self._seal("body_ct", value)


class Attachment(_Sealed, Base):
    """An image or audio recording; metadata stripped before sealing."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uid)
    tip_id: Mapped[int] = mapped_column(ForeignKey("tips.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(10))  # image | audio
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    data_ct: Mapped[bytes] = mapped_column(LargeBinary)
    # Transcript of a voice recording (sealed).
    transcript_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Revision 0012: own data keys for content a worker or webhook added after intake (the
    # recording, and separately its transcript, which may arrive in either order).
    data_key_uid: Mapped[str | None] = mapped_column(String(32))
    transcript_key_uid: Mapped[str | None] = mapped_column(String(32))

    tip: Mapped[Tip] = relationship(back_populates="attachments")
    _KEY_COLUMNS: ClassVar[dict[str, str]] = {"data_ct": "data_key_uid",
                                              "transcript_ct": "transcript_key_uid"}

    def _dek(self) -> bytes:
        return self.tip._dek()

    @property
    def data(self) -> bytes:
        ad = crypto.field_ad(self.__tablename__, "data_ct", self.uid)
        return crypto.current().open(self._dek_for("data_ct"), self.data_ct, ad)

    @data.setter
    def data(self, value: bytes) -> None:
        if self.uid is None:
            self.uid = new_uid()
        ad = crypto.field_ad(self.__tablename__, "data_ct", self.uid)
        self.data_ct = crypto.current().seal(self._dek_for("data_ct"), value, ad)

    @property
    def transcript(self) -> str | None:
        return self._open("transcript_ct")

    @transcript.setter
    def transcript(self, value: str | None) -> None:
        self._seal("transcript_ct", value)


class Note(_Sealed, Base):
    """An internal staff note on a tip; never shown to the reporter."""

    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uid)
    tip_id: Mapped[int] = mapped_column(ForeignKey("tips.id", ondelete="CASCADE"), index=True)
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    body_ct: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Revision 0012, for a note added without a staff key (none are today: staff write notes
    # in their session, under the tip's key).
    data_key_uid: Mapped[str | None] = mapped_column(String(32))

    tip: Mapped[Tip] = relationship()
    _KEY_COLUMNS: ClassVar[dict[str, str]] = {"body_ct": "data_key_uid"}

    def _dek(self) -> bytes:
        return self.tip._dek()

    @property
    def body(self) -> str:
        return self._open("body_ct") or ""

    @body.setter
    def body(self, value: str) -> None:
        self._seal("body_ct", value)
