"""Alert senders: one interface, a real implementation per provider and the outbox fake.

The outbox sender records the alert in the ``outbox`` table in the caller's transaction, so the
demo and the tests can see exactly what would have gone out. Real senders (Twilio SMS/voice,
SMTP email) raise ``TransientSendError`` for failures worth retrying and ``PermanentSendError``
for ones that are not (bad number, rejected address).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from tipline.routing.models import OutboxMessage


class SendError(Exception):
    """Base class for a failed send."""


class TransientSendError(SendError):
    """Worth retrying later (timeout, 5xx, connection refused)."""


class PermanentSendError(SendError):
    """Will not succeed by retrying (invalid number, rejected recipient)."""


@dataclass(frozen=True)
class Alert:
    """What a channel sends. ``text`` carries no tip content unless a rule allows it."""

    channel: str  # sms | voice | email
    recipient: str
    subject: str
    text: str
    delivery_id: int
    ack_code: str | None = None


class AlertSender(Protocol):
    name: str

    def send(self, session: Session, alert: Alert) -> str:
        """Send ``alert``; return the provider's reference. Raise a ``SendError``."""
        ...


class OutboxSender:
    """Records alerts in the database instead of sending them (demo, tests, first run)."""

    name = "outbox"

    def send(self, session: Session, alert: Alert) -> str:
        row = OutboxMessage(
            delivery_id=alert.delivery_id,
            channel=alert.channel,
            recipient=alert.recipient,
            body=f"{alert.subject}\n{alert.text}" if alert.channel == "email" else alert.text,
        )
        session.add(row)
        session.flush()
        return f"outbox-{row.id}"
