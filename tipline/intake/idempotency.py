"""One web submission, one tip: a form nonce makes Send safe to press twice or to reload.

The form carries a random nonce. The tip's ``external_id`` is a keyed hash of it, and the
receipt code is derived from it under another subkey, so a repeated POST (double tap, reload,
a retry after a timeout) finds the tip already stored and shows the same receipt again without
the code ever being stored. Only someone holding the page's nonce can do that, which is the
person who already holds the page.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from tipline.crypto import Vault
from tipline.tips.receipts import CROCKFORD

_NONCE = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class SubmissionIds:
    nonce: str
    external_id: str
    receipt_code: str


def new_nonce() -> str:
    return secrets.token_hex(16)


def valid_nonce(value: str | None) -> str | None:
    return value if value and _NONCE.match(value) else None


def submission_ids(vault: Vault, nonce: str) -> SubmissionIds:
    """The tip's idempotency key and its receipt code (80 bits, Crockford base32)."""
    external_id = vault.lookup_hash("web-submission", nonce)
    bits = int(vault.lookup_hash("web-receipt-code", nonce)[:20], 16)  # 80 bits
    symbols = "".join(CROCKFORD[(bits >> (5 * i)) & 31] for i in range(16))
    code = "-".join(symbols[i : i + 4] for i in range(0, 16, 4))
    return SubmissionIds(nonce, external_id, code)
