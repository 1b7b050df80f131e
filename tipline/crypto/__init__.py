"""All cryptography in tipline lives here.

``install(vault)`` makes a process's vault available to model properties that decrypt
fields; the app factory and the worker bootstrap call it, and so do tests.
"""

from __future__ import annotations

from tipline.crypto.keys import KeyFileError, KeyRing, load_key_file, write_key_file
from tipline.crypto.vault import CryptoError, KeyUnavailable, Vault, WrappedKey, field_ad

__all__ = [
    "CryptoError",
    "KeyFileError",
    "KeyRing",
    "KeyUnavailable",
    "Vault",
    "WrappedKey",
    "current",
    "field_ad",
    "install",
    "load_key_file",
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
