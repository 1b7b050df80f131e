"""The short-lived follow-up sign-in kept in the Flask session, sealed.

After a correct code, the reporter stays on their conversation for a while without typing the
code again. The session cookie is signed but readable, so it holds neither the code nor the
tip's id in clear: it holds an AES-GCM envelope (key derived by the vault for this purpose)
of the tip uid and two deadlines. Idle for ``IDLE`` or open for ``ABSOLUTE``, it stops working;
the cookie has no Expires, so closing the browser drops it too.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from tipline.crypto import CryptoError, Vault

PURPOSE = "followup-handle"
_AD = b"tipline/followup-handle/v1"
IDLE = timedelta(minutes=15)
ABSOLUTE = timedelta(minutes=60)


@dataclass(frozen=True)
class Handle:
    tip_uid: str
    started: datetime
    expires: datetime


def issue(vault: Vault, tip_uid: str, now: datetime, started: datetime | None = None) -> str:
    """A sealed token for ``tip_uid``, valid until idle or absolute expiry (whichever first)."""
    begun = started or now
    expires = min(now + IDLE, begun + ABSOLUTE)
    payload = json.dumps(
        {"t": tip_uid, "s": begun.timestamp(), "e": expires.timestamp()}, separators=(",", ":")
    ).encode()
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
    except (CryptoError, ValueError, KeyError, TypeError):
        return None
    if now >= expires:
        return None
    return Handle(uid, started, expires)
