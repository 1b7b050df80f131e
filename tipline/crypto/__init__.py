"""All cryptography in tipline lives here.

``install(vault)`` makes a process's vault available to model properties that decrypt
fields; the app factory and the worker bootstrap call it, and so do tests.

Sealing (docs/crypto.md): ``Vault.new_data_key(recipients)`` seals a data key to
``Recipient`` public keys (from ``audience_keys``); ``Vault.unwrap`` opens a sealed slot only
with a private key in the current ``Keychain`` (``with using(keychain): ...``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tipline.crypto.keychain import Keychain, current_keychain, using
from tipline.crypto.keys import KeyFileError, KeyRing, load_key_file, write_key_file
from tipline.crypto.sealing import Recipient, SealError, reporter_recipient
from tipline.crypto.vault import (
    SEALED_ONLY,
    CryptoError,
    KeyUnavailable,
    Vault,
    WrappedKey,
    field_ad,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.orm import Session

__all__ = [
    "SEALED_ONLY",
    "CryptoError",
    "KeyFileError",
    "KeyRing",
    "KeyUnavailable",
    "Keychain",
    "Recipient",
    "SealError",
    "Vault",
    "WrappedKey",
    "audience_keys",
    "current",
    "current_keychain",
    "field_ad",
    "install",
    "load_key_file",
    "reporter_recipient",
    "using",
    "write_key_file",
]

_current: Vault | None = None


def install(vault: Vault) -> None:
    global _current
    _current = vault


def current() -> Vault:
    if _current is None:
        raise KeyUnavailable("no vault installed in this process")
    return _current


def audience_keys(session: Session, district_id: int | None,
                  agency_ids: Iterable[int] = ()) -> list[Recipient]:
    """See ``tipline.crypto.audience``; imported late (the key tables need the model base)."""
    from tipline.crypto.audience import audience_keys as lookup

    return lookup(session, district_id, agency_ids)
