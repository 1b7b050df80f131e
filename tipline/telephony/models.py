"""Telephony state: callbacks already taken in, SMS conversations, opt-outs, Twilio work.

Nothing here identifies a reporter: phone numbers appear only as keyed HMACs
(``vault.lookup_hash("phone", number)``); the number itself is sealed on the tip, for relays.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tipline.db import Base, UTCDateTime, utcnow


class InboundEvent(Base):
    """A webhook/callback processed once: key is e.g. ``sms:SM...`` or ``rec:RE...``."""

    __tablename__ = "inbound_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SmsStep:
    """Where a texting reporter is in the guided flow."""

    NEW = "new"  # no tip yet (e.g. only a language keyword or an empty text)
    SCHOOL = "school"  # asked which school
    CATEGORY = "category"  # asked what kind of problem (numbered menu)
    OPEN = "open"  # questions done; texts thread into the tip


class SmsConversation(Base):
    """One texting reporter's conversation, found by the keyed HMAC of their number."""

    __tablename__ = "sms_conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tip_id: Mapped[int | None] = mapped_column(
        ForeignKey("tips.id", ondelete="SET NULL"), index=True)
    step: Mapped[str] = mapped_column(String(12), default=SmsStep.NEW)
    language: Mapped[str] = mapped_column(String(8), default="en")
    school_tries: Mapped[int] = mapped_column(Integer, default=0)
    category_tries: Mapped[int] = mapped_column(Integer, default=0)
    # School ids offered when a name was ambiguous ("1,4,7"); a numbered reply picks one.
    candidates: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_inbound_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class SmsOptOut(Base):
    """A number that texted STOP (or a synonym): nothing more is sent to it until START."""

    __tablename__ = "sms_opt_outs"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TaskKind:
    MEDIA = "media"  # fetch an MMS item, strip, seal, store; delete it from Twilio
    MESSAGE = "message"  # delete (or redact) an inbound message record at Twilio
    RECORDING = "recording"  # fetch a call recording, seal, store; delete it from Twilio
    TRANSCRIPTION = "transcription"  # delete a transcription from Twilio
    CALL = "call"  # delete a finished call's record at Twilio (it holds the caller's number)


class TaskStatus:
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class TelephonyTask(Base):
    """Work with Twilio left after a webhook committed; a worker does it, the sweep retries.

    Holds only Twilio SIDs and API URLs (which name the account and the resource, not the
    reporter).
    """

    __tablename__ = "telephony_tasks"
    __table_args__ = (UniqueConstraint("kind", "sid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    sid: Mapped[str] = mapped_column(String(64))
    parent_sid: Mapped[str | None] = mapped_column(String(64))
    tip_id: Mapped[int | None] = mapped_column(
        ForeignKey("tips.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    url: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10), default=TaskStatus.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
