"""The one class that handles keys: data keys, key slots, field envelopes and lookups.

Design (see docs/crypto.md):

* Every tip (and every staff user's secrets) has its own random 256-bit *data key*.
* The data key is stored only wrapped, in one or more *key slots*. A slot of kind ``kek`` is
  the data key sealed with AES-256-GCM under a key-encryption key from the key file, the slot
  bound to the data key's uid. Later slot kinds (sealed to a staff member's public key) fit in
  the same list.
* Each encrypted field is a *field envelope*: ``version(1) | nonce(12) | ciphertext+tag``,
  AES-256-GCM under the data key, with associated data naming the table, column and row uid,
  so a ciphertext copied to another row or column fails to open.
* Rotation re-wraps slots under the new KEK; field envelopes are untouched.
* Deleting the data key row makes every field of that tip unreadable (crypto-shredding).
* Lookups (receipt codes, phone numbers) are HMAC-SHA256 under a per-purpose subkey derived
  with HKDF from the lookup secret, so the database holds no reversible value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tipline.crypto.keys import KeyRing

ENVELOPE_V1 = 1
SLOTS_V1 = 1
_NONCE = 12


class CryptoError(Exception):
    """A ciphertext cannot be opened: wrong key, wrong row, tampered, or shredded."""


class KeyUnavailable(CryptoError):
    """No slot of this data key can be opened with the keys this server holds."""


@dataclass(frozen=True)
class WrappedKey:
    """A data key as stored: its uid and the serialized slot list."""

    uid: str
    slots: str


def field_ad(table: str, column: str, row_uid: str) -> bytes:
    """Associated data binding a field envelope to its row and column."""
    return f"tipline/v1/{table}/{column}/{row_uid}".encode()


class Vault:
    """Owns every key operation; one instance per process, built from a ``KeyRing``."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring
        self._lookup_keys: dict[str, bytes] = {}

    @property
    def ring(self) -> KeyRing:
        return self._ring

    @property
    def active_key_id(self) -> str:
        return self._ring.active_id

    # -- data keys -----------------------------------------------------------------------
    def new_data_key(self) -> tuple[bytes, WrappedKey]:
        """A fresh data key and its wrapped form (one slot under the active KEK)."""
        dek = AESGCM.generate_key(bit_length=256)
        uid = secrets.token_hex(16)
        slot = self._wrap_slot(dek, uid, self._ring.active_id)
        return dek, WrappedKey(uid, json.dumps({"v": SLOTS_V1, "slots": [slot]}))

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        for slot in _parse_slots(wrapped.slots):
            if slot.get("kind") != "kek":
                continue
            kek = self._ring.keks.get(str(slot.get("kid")))
            if kek is None:
                continue
            try:
                return AESGCM(kek).decrypt(
                    _b64d(slot["n"]), _b64d(slot["ct"]), _slot_ad(wrapped.uid, slot["kid"])
                )
            except (InvalidTag, KeyError, ValueError):
                continue
        raise KeyUnavailable("no key slot opens with the keys on this server")

    def rewrap(self, wrapped: WrappedKey) -> WrappedKey | None:
        """Return the key re-wrapped under the active KEK, or None if it already is."""
        slots = _parse_slots(wrapped.slots)
        kek_slots = [s for s in slots if s.get("kind") == "kek"]
        if len(kek_slots) == 1 and kek_slots[0].get("kid") == self._ring.active_id:
            return None
        dek = self.unwrap(wrapped)
        others = [s for s in slots if s.get("kind") != "kek"]
        new = [self._wrap_slot(dek, wrapped.uid, self._ring.active_id), *others]
        return WrappedKey(wrapped.uid, json.dumps({"v": SLOTS_V1, "slots": new}))

    @staticmethod
    def slot_key_ids(wrapped: WrappedKey) -> list[str]:
        return [str(s.get("kid")) for s in _parse_slots(wrapped.slots)]

    def _wrap_slot(self, dek: bytes, uid: str, kid: str) -> dict[str, str]:
        nonce = secrets.token_bytes(_NONCE)
        ct = AESGCM(self._ring.keks[kid]).encrypt(nonce, dek, _slot_ad(uid, kid))
        return {"kind": "kek", "kid": kid, "alg": "A256GCM", "n": _b64e(nonce), "ct": _b64e(ct)}

    # -- field envelopes -----------------------------------------------------------------
    @staticmethod
    def seal(dek: bytes, plaintext: bytes, ad: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return bytes([ENVELOPE_V1]) + nonce + AESGCM(dek).encrypt(nonce, plaintext, ad)

    @staticmethod
    def open(dek: bytes, envelope: bytes, ad: bytes) -> bytes:
        if not envelope or envelope[0] != ENVELOPE_V1:
            raise CryptoError("unknown envelope version")
        try:
            return AESGCM(dek).decrypt(envelope[1 : 1 + _NONCE], envelope[1 + _NONCE :], ad)
        except InvalidTag:
            raise CryptoError("envelope does not open for this key and row") from None

    def seal_text(self, dek: bytes, text: str, ad: bytes) -> bytes:
        return self.seal(dek, text.encode("utf-8"), ad)

    def open_text(self, dek: bytes, envelope: bytes, ad: bytes) -> str:
        return self.open(dek, envelope, ad).decode("utf-8")

    # -- lookups -------------------------------------------------------------------------
    def lookup_hash(self, purpose: str, value: str) -> str:
        """Keyed HMAC-SHA256 (hex) of ``value`` under the subkey for ``purpose``."""
        key = self._lookup_keys.get(purpose)
        if key is None:
            key = HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=None,
                info=f"tipline/lookup/{purpose}".encode(),
            ).derive(self._ring.lookup_secret)
            self._lookup_keys[purpose] = key
        return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    def derive_secret(self, purpose: str, length: int = 32) -> bytes:
        """A deterministic secret for a named purpose (e.g. the rate-limit salt seed)."""
        return HKDF(
            algorithm=hashes.SHA256(), length=length, salt=None,
            info=f"tipline/derived/{purpose}".encode(),
        ).derive(self._ring.lookup_secret)


def _slot_ad(uid: str, kid: str) -> bytes:
    return f"tipline/v1/data-key/{uid}/{kid}".encode()


def _parse_slots(text: str) -> Iterable[dict[str, str]]:
    try:
        data = json.loads(text)
    except ValueError:
        raise CryptoError("malformed key slots") from None
    if not isinstance(data, dict) or data.get("v") != SLOTS_V1:
        raise CryptoError("unknown key slot version")
    return list(data.get("slots", []))


def _b64e(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _b64d(text: str) -> bytes:
    return base64.b64decode(text, validate=True)
