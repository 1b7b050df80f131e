"""The short-lived follow-up sign-in kept in the Flask session, sealed.

After a correct code, the reporter stays on their conversation for a while without typing the
code again. The session cookie is signed but readable, so it holds neither the code nor the
tip's id in clear: it holds an AES-GCM envelope (key derived by the vault for this purpose)
of the tip uid and two deadlines. Idle for ``IDLE`` or open for ``ABSOLUTE``, it stops working;
the cookie has no Expires, so closing the browser drops it too.

When the tip's key is sealed to the reporter's receipt-code key, the envelope also carries
that private key (derived from the code when the reporter typed it): the server keeps no copy,
so between two pages only the reporter's own cookie holds what opens their conversation.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from tipline.crypto import CryptoError, Keychain, Vault
from tipline.crypto.sealing import private_bytes, private_from_bytes

PURPOSE = "followup-handle"
_AD = b"tipline/followup-handle/v1"
IDLE = timedelta(minutes=15)
ABSOLUTE = timedelta(minutes=60)


@dataclass(frozen=True)
class Handle:
    tip_uid: str
    started: datetime
    expires: datetime
    code_key: bytes | None = None  # raw X25519 private key derived from the receipt code

    def keychain(self) -> Keychain:
        """The keys this reporter's requests may use: their receipt-code key, if any."""
        if self.code_key is None:
            return Keychain()
        return Keychain({f"code:{self.tip_uid}": private_from_bytes(self.code_key)})


def code_key(code: str, tip_uid: str) -> bytes:
    """The raw private key a receipt code stands for (``crypto.reporter_recipient``)."""
    from tipline.crypto import reporter_recipient

    return private_bytes(reporter_recipient(code, tip_uid)[1])


def issue(vault: Vault, tip_uid: str, now: datetime, started: datetime | None = None,
          code_key: bytes | None = None) -> str:
    """A sealed token for ``tip_uid``, valid until idle or absolute expiry (whichever first)."""
    begun = started or now
    expires = min(now + IDLE, begun + ABSOLUTE)
    fields: dict[str, object] = {"t": tip_uid, "s": begun.timestamp(), "e": expires.timestamp()}
    if code_key is not None:
        fields["k"] = base64.b64encode(code_key).decode()
    payload = json.dumps(fields, separators=(",", ":")).encode()
    sealed = vault.seal(vault.derive_secret(PURPOSE), payload, _AD)
    return base64.urlsafe_b64encode(sealed).decode()


def read(vault: Vault, token: object, now: datetime) -> Handle | None:
    """The handle in ``token`` if it opens and has not expired, else None."""
    if not isinstance(token, str) or not token or len(token) > 512:
        return None
    try:
        sealed = base64.urlsafe_b64decode(token.encode())
        data = json.loads(vault.open(vault.derive_secret(PURPOSE), sealed, _AD))
        started = datetime.fromtimestamp(float(data["s"]), tz=now.tzinfo)
        expires = datetime.fromtimestamp(float(data["e"]), tz=now.tzinfo)
        uid = str(data["t"])
        key = base64.b64decode(str(data["k"]), validate=True) if "k" in data else None
        if key is not None and len(key) != 32:
            return None
    except (CryptoError, ValueError, KeyError, TypeError):
        return None
    if now >= expires:
        return None
    return Handle(uid, started, expires, key)
