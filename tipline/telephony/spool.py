"""Inbound texts that arrive while PostgreSQL is down are held in the broker, not lost.

The SMS webhook cannot store a text while the database is unreachable (a restart takes
seconds). Instead of answering "try again", it seals the text (number, words, media links)
with a key derived from the key ring and publishes it as a task: Redis keeps it (append-only
file in production) and the task retries with backoff until the database is back. Then it
is taken in exactly as the webhook would have (``handle_inbound_sms``: the MessageSid makes
a second delivery a duplicate), committed, and only then is the reporter told, by an
outbound text with the reply they would have had. Until then they were told only that the
message is being saved, with 911/988. If the broker is down as well, nothing is stored and
the webhook answers "could not save, try again" as before.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from tipline.crypto import Vault
from tipline.jobs import JobQueue
from tipline.telephony.client import TwilioGateway
from tipline.telephony.sms import InboundSms, StaffHandler, handle_inbound_sms

SPOOL_TASK = "tipline.sms_held"
_PURPOSE = "sms-spool"


def _ad(sid: str) -> bytes:
    return f"tipline/v1/sms-spool/{sid}".encode()


def seal_inbound(vault: Vault, sms: InboundSms) -> list[str]:
    """[MessageSid, sealed payload]: the payload (number, body, media) encrypted."""
    payload = json.dumps({"from": sms.from_number, "body": sms.body,
                          "media": [list(m) for m in sms.media]}).encode()
    sealed = vault.seal(vault.derive_secret(_PURPOSE), payload, _ad(sms.message_sid))
    return [sms.message_sid, base64.b64encode(sealed).decode("ascii")]


def open_inbound(vault: Vault, sid: str, sealed: str) -> InboundSms:
    payload = json.loads(vault.open(vault.derive_secret(_PURPOSE), base64.b64decode(sealed),
                                    _ad(sid)))
    return InboundSms(sid, payload["from"], payload["body"],
                      tuple((str(u), str(t)) for u, t in payload["media"]))


@dataclass(frozen=True)
class HeldResult:
    kind: str  # what handle_inbound_sms made of it (new_tip, threaded, duplicate, ...)
    replied: bool


def take_in_held(session: Session, vault: Vault, queue: JobQueue, gateway: TwilioGateway,
                 sid: str, sealed: str, now: datetime, *, conversation_days: int,
                 staff: StaffHandler | None, status_callback: str | None) -> HeldResult:
    """Store a held text now that the database is back (commits), then send the reply the
    webhook would have given. Raises on a database or Twilio error (the task retries)."""
    sms = open_inbound(vault, sid, sealed)
    reply = handle_inbound_sms(session, vault, queue, sms, now,
                               conversation_days=conversation_days, staff=staff)
    session.commit()
    if reply.text:
        gateway.send_sms(sms.from_number, reply.text, status_callback=status_callback)
    return HeldResult(reply.kind, bool(reply.text))
