"""Coming back with a receipt code: find the tip, show the conversation, take a reply.

The code is never stored, only its keyed hash; a lookup does the same work for a malformed
code, an unknown code and a real one, so neither the answer nor its timing says which it was
beyond "opened" or "not opened". Staff questions are marked read when the reporter sees them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from tipline.audit.services import record
from tipline.crypto import CryptoError, Keychain, Vault, field_ad, using
from tipline.intake.services import AttachmentIn, _seal_bytes_into, _seal_into
from tipline.jobs import JobQueue
from tipline.routing.notices import reporter_wrote
from tipline.tips.models import Attachment, Message, Status, Tip
from tipline.tips.receipts import RECEIPT_PURPOSE, normalize_code

MAX_REPLY_CHARS = 5000
# Hashed in place of a malformed code: never a valid normalised code (those are alphanumeric).
_NOT_A_CODE = "-" * 16
VISIBLE_AUTHORS = ("reporter", "staff")


class FollowupError(ValueError):
    """A reply cannot be accepted as given; the message is a short reason, not for display."""


@dataclass(frozen=True)
class Entry:
    author: str  # reporter | staff
    body: str
    created_at: datetime
    pictures: int = 0
    new: bool = False  # a staff message the reporter had not seen before this visit


@dataclass(frozen=True)
class Conversation:
    reference: str
    status: str
    reporter_status: str | None
    created_at: datetime
    timezone: str
    entries: list[Entry] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)
    # Where the tip went and how urgent it is: the page's wording must stay true to both (a
    # tip that names no school went to the safety team, not "the school").
    school_named: bool = True
    severity: int = 0
    district_id: int | None = None

    @property
    def closed(self) -> bool:
        return self.status == Status.CLOSED.value


def find_tip_by_code(session: Session, vault: Vault, code: str) -> Tip | None:
    """The tip this receipt code opens, or None (malformed, unknown, or content shredded)."""
    normalized = normalize_code(code or "")
    digest = vault.lookup_hash(RECEIPT_PURPOSE, normalized or _NOT_A_CODE)
    tip = session.execute(
        select(Tip).options(selectinload(Tip.data_key)).where(Tip.receipt_hash == digest)
    ).scalar_one_or_none()
    if normalized is None or tip is None or tip.data_key is None:
        return None
    return tip


def tip_by_uid(session: Session, uid: str) -> Tip | None:
    tip = session.execute(
        select(Tip).options(selectinload(Tip.data_key)).where(Tip.uid == uid)
    ).scalar_one_or_none()
    if tip is None or tip.data_key is None:
        return None
    return tip


def read_conversation(session: Session, vault: Vault, tip: Tip, now: datetime,
                      keys: Keychain | None = None) -> Conversation:
    """Decrypt what the reporter may see and mark staff messages as read (caller commits).

    ``keys``: the reporter's receipt-code key (``handle.Handle.keychain``), which opens a tip
    sealed to it; a tip in legacy mode opens with the key file. Raises ``CryptoError``.
    """
    with using(keys or Keychain()):
        return _read_conversation(session, vault, tip, now)


def _read_conversation(session: Session, vault: Vault, tip: Tip, now: datetime) -> Conversation:
    if tip.data_key is None:
        raise CryptoError("this tip's content has been destroyed")
    dek = vault.unwrap(tip.data_key.wrapped())
    counts = dict(
        session.execute(
            select(Attachment.message_id, func.count(Attachment.id))
            .where(Attachment.tip_id == tip.id, Attachment.message_id.is_not(None),
                   Attachment.kind == "image")
            .group_by(Attachment.message_id)
        ).all()
    )
    rows = session.execute(
        select(Message)
        .where(Message.tip_id == tip.id, Message.author.in_(VISIBLE_AUTHORS))
        .order_by(Message.created_at, Message.id)
    ).scalars().all()
    entries = []
    first_reporter_id = next((m.id for m in rows if m.author == "reporter"), None)
    unlinked = 0
    if first_reporter_id is not None:
        # Attachments sent with the tip itself may predate message links.
        unlinked = session.execute(
            select(func.count(Attachment.id)).where(
                Attachment.tip_id == tip.id, Attachment.message_id.is_(None),
                Attachment.kind == "image",
            )
        ).scalar_one()
    for m in rows:
        # A message with its own key (a caller's transcript, an SMS reporter's later text) is
        # sealed to staff only: the reporter's page leaves it out.
        if m.data_key_uid is None:
            body = vault.open_text(dek, m.body_ct, field_ad("messages", "body_ct", m.uid))
        else:
            opened = _own_key_body(m)
            if opened is None:
                continue
            body = opened
        new = m.author == "staff" and m.read_by_reporter_at is None
        if new:
            m.read_by_reporter_at = now
        pictures = int(counts.get(m.id, 0)) + (int(unlinked) if m.id == first_reporter_id else 0)
        entries.append(Entry(m.author, body, m.created_at, pictures, new))
    details: dict[str, str] = {}
    if tip.details_ct is not None:
        raw = vault.open_text(dek, tip.details_ct, field_ad("tips", "details_ct", tip.uid))
        loaded = json.loads(raw)
        if isinstance(loaded, dict):
            details = {str(k): str(v) for k, v in loaded.items()}
    status_text = None
    if tip.reporter_status_ct is not None:
        status_text = vault.open_text(
            dek, tip.reporter_status_ct, field_ad("tips", "reporter_status_ct", tip.uid)
        )
    tz = tip.district.timezone if tip.district is not None else "UTC"
    return Conversation(tip.reference, tip.status, status_text, tip.created_at, tz, entries,
                        details, school_named=tip.school_id is not None,
                        severity=int(tip.severity), district_id=tip.district_id)


def _own_key_body(m: Message) -> str | None:
    try:
        return m.body
    except CryptoError:
        return None


def add_reply(
    session: Session,
    vault: Vault,
    tip: Tip,
    body: str,
    attachments: Sequence[AttachmentIn],
    now: datetime,
    queue: JobQueue | None = None,
    keys: Keychain | None = None,
) -> Message:
    """Seal the reporter's reply (and its pictures) under the tip's key; audit it, no content.

    The tip's key is opened with ``keys`` (the reporter's receipt-code key) or, in legacy
    mode, the key file; it is sealed to the tip's audience, so staff read the reply. Nothing
    is committed here. The people working the tip are told (``routing.notices``); ``queue``
    publishes their alerts after commit (without it, the sweep sends them).
    """
    with using(keys or Keychain()):
        return _add_reply(session, vault, tip, body, attachments, now, queue)


def _add_reply(
    session: Session,
    vault: Vault,
    tip: Tip,
    body: str,
    attachments: Sequence[AttachmentIn],
    now: datetime,
    queue: JobQueue | None,
) -> Message:
    text = body.strip()
    if not text and not attachments:
        raise FollowupError("empty reply")
    if len(text) > MAX_REPLY_CHARS:
        raise FollowupError("reply is too long")
    if tip.data_key is None:
        raise CryptoError("this tip's content has been destroyed")
    dek = vault.unwrap(tip.data_key.wrapped())
    message = Message(tip=tip, author="reporter", channel="web", created_at=now)
    _seal_into(vault, dek, message, "body_ct", text)
    session.add(message)
    session.flush()
    for item in attachments:
        att = Attachment(tip=tip, message_id=message.id, kind=item.kind,
                         content_type=item.content_type, size=len(item.data), created_at=now)
        _seal_bytes_into(vault, dek, att, "data_ct", item.data)
        session.add(att)
    tip.updated_at = now
    reporter_wrote(session, queue, tip, now)
    record(session, "reporter.reply", actor="reporter:web", tip_id=tip.id,
           object_type="message", object_id=message.id,
           detail={"channel": "web", "pictures": len(attachments)})
    return message
