"""The private keys one request (or one job) may use, held in a context variable.

A staff request builds a ``Keychain`` from its session (personal key -> grants -> district and
agency private keys) and runs inside ``using(keychain)``; a returning reporter's request holds
the key derived from their receipt code. ``Vault.unwrap`` opens a sealed slot only when the
current keychain holds that slot's recipient id, so outside ``using(...)`` sealed content
raises ``KeyUnavailable`` and model properties keep working unchanged inside it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey


class Keychain:
    """Private keys by recipient id, plus the data keys already opened with them.

    The cache lives as long as the keychain (one request), so a tip page that reads twenty
    fields pays for one X25519 exchange per data key, not twenty.
    """

    def __init__(self, keys: Mapping[str, X25519PrivateKey] | None = None) -> None:
        self._keys: dict[str, X25519PrivateKey] = dict(keys or {})
        self._opened: dict[str, bytes] = {}

    def add(self, rid: str, private: X25519PrivateKey) -> None:
        self._keys[rid] = private
        self._opened.clear()

    def get(self, rid: str) -> X25519PrivateKey | None:
        return self._keys.get(rid)

    def rids(self) -> list[str]:
        return sorted(self._keys)

    def __contains__(self, rid: object) -> bool:
        return rid in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def remembered(self, uid: str) -> bytes | None:
        return self._opened.get(uid)

    def remember(self, uid: str, dek: bytes) -> None:
        self._opened[uid] = dek

    def forget(self) -> None:
        """Drop every key (the end of a request)."""
        self._keys.clear()
        self._opened.clear()


_current: ContextVar[Keychain | None] = ContextVar("tipline_keychain", default=None)


def current_keychain() -> Keychain:
    """The keychain of this context; an empty one (opens nothing sealed) outside ``using``."""
    found = _current.get()
    return found if found is not None else Keychain()


@contextmanager
def using(keychain: Keychain) -> Iterator[Keychain]:
    """Run the block with ``keychain`` as the current one (restored afterwards)."""
    token = _current.set(keychain)
    try:
        yield keychain
    finally:
        _current.reset(token)


def enter(keychain: Keychain) -> object:
    """``using`` split in two for request hooks: returns the token ``leave`` takes."""
    return _current.set(keychain)


def leave(token: object) -> None:
    try:
        _current.reset(token)  # type: ignore[arg-type]
    except ValueError:  # set in another context (a hook ran elsewhere): just clear it
        _current.set(None)
