"""One web submission, one tip, and its receipt code shown only to the session that sent it.

Each browser session holds a random secret made by the server (``new_session_secret``, 256
bits from ``secrets``, kept in the signed session cookie). Each tip form carries a nonce the
server issued for that session: 64 random bits and a 64-bit keyed MAC over them and the
session secret, so a nonce copied from another session (or chosen by an attacker) does not
verify and is replaced. The tip's ``external_id`` and its 80-bit receipt code are keyed HMACs
(vault subkeys) of the session secret and the nonce together. So a repeated POST from the same
session (double tap, reload, a retry after a timeout) finds the tip already stored and can show
the same receipt without the code ever being stored, while the same nonce sent from any other
session selects nothing: a client-sent value alone can neither choose nor reveal a code.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from tipline.crypto import Vault
from tipline.tips.receipts import CROCKFORD

_NONCE = re.compile(r"^[0-9a-f]{32}$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True)
class SubmissionIds:
    nonce: str
    external_id: str
    receipt_code: str


def new_session_secret() -> str:
    return secrets.token_urlsafe(32)


def valid_session_secret(value: object) -> str | None:
    return value if isinstance(value, str) and _SECRET.match(value) else None


def _tag(vault: Vault, session_secret: str, random_part: str) -> str:
    return vault.lookup_hash("web-form-nonce", f"{session_secret}:{random_part}")[:16]


def new_nonce(vault: Vault, session_secret: str) -> str:
    """A form nonce that verifies only for ``session_secret``."""
    random_part = secrets.token_hex(8)
    return random_part + _tag(vault, session_secret, random_part)


def verified_nonce(vault: Vault, session_secret: str, value: object) -> str | None:
    """``value`` if the server issued it to this session, else None."""
    if not isinstance(value, str) or not _NONCE.match(value):
        return None
    expected = _tag(vault, session_secret, value[:16])
    return value if secrets.compare_digest(expected, value[16:]) else None


def submission_ids(vault: Vault, session_secret: str, nonce: str) -> SubmissionIds:
    """The tip's idempotency key and its receipt code (80 bits, Crockford base32)."""
    material = f"{session_secret}:{nonce}"
    external_id = vault.lookup_hash("web-submission", material)
    bits = int(vault.lookup_hash("web-receipt-code", material)[:20], 16)  # 80 bits
    symbols = "".join(CROCKFORD[(bits >> (5 * i)) & 31] for i in range(16))
    code = "-".join(symbols[i : i + 4] for i in range(0, 16, 4))
    return SubmissionIds(nonce, external_id, code)
