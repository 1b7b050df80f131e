"""The payload of a staff reply to an SMS reporter, sealed under a key only its job carries.

The reporter's number is sealed under the tip's key, which the server cannot open. The staff
member's request can: it seals the number and the reply under a fresh random key for this one
job. The ciphertext goes in the message row (``relay_payload_ct``), the key only in the relay
task's broker message. The worker opens the payload, sends, and clears it; a re-send by the
sweep (which has no key) leaves it for the original message. The window in which a copy of
the database and the broker together reveal the number and the reply: from the reply until
the relay is settled (sent, failed, or given up after ``media.RELAY_ABANDON_AFTER``).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets

from tipline.crypto import CryptoError, Vault, field_ad

_COLUMN = "relay_payload_ct"


class PayloadError(ValueError):
    """The payload does not open with the key given (wrong, missing or tampered)."""


def seal_payload(message_uid: str, number: str, text: str) -> tuple[bytes, str]:
    """(ciphertext for the row, job key for the task's arguments, base64)."""
    key = secrets.token_bytes(32)
    data = json.dumps({"to": number, "text": text}, ensure_ascii=False).encode("utf-8")
    sealed = Vault.seal(key, data, field_ad("messages", _COLUMN, message_uid))
    return sealed, base64.b64encode(key).decode()


def open_payload(message_uid: str, sealed: bytes, job_key: str) -> tuple[str, str]:
    """(number, text) from a payload and its job key."""
    try:
        key = base64.b64decode(job_key, validate=True)
        if len(key) != 32:
            raise PayloadError("a job key is 32 bytes")
        data = json.loads(Vault.open(key, sealed, field_ad("messages", _COLUMN, message_uid)))
        return str(data["to"]), str(data["text"])
    except (CryptoError, binascii.Error, ValueError, KeyError, TypeError):
        raise PayloadError("the relay payload does not open with this job key") from None
