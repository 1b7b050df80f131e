"""The one class that handles keys: data keys, key slots, field envelopes and lookups.

Design (see docs/crypto.md):

* Every tip (and every staff user's secrets) has its own random 256-bit *data key*.
* The data key is stored only wrapped, in one or more *key slots*. A slot of kind ``kek`` is
  the data key sealed with AES-256-GCM under a key-encryption key from the key file, the slot
  bound to the data key's uid (legacy, and staff TOTP secrets). A slot of kind ``x25519`` is
  the data key sealed to a recipient's public key (a district's read key, a police agency's
  key, the reporter's receipt-code key): the server writes it and cannot open it; it opens
  only with a private key in the current ``Keychain`` (see ``tipline.crypto.keychain``).
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tipline.crypto.keychain import current_keychain
from tipline.crypto.keys import KeyRing
from tipline.crypto.sealing import KIND as SEALED_KIND
from tipline.crypto.sealing import Recipient, SealError, open_sealed, seal_bytes

ENVELOPE_V1 = 1
SLOTS_V1 = 1
_NONCE = 12
# ``data_keys.kek_id`` of a key with no key-file slot (rotation has nothing to re-wrap there).
SEALED_ONLY = "sealed"


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
    def new_data_key(
        self, recipients: Sequence[Recipient] = ()
    ) -> tuple[bytes, WrappedKey]:
        """A fresh data key and its wrapped form.

        Without recipients: one slot under the active KEK (legacy mode, readable with the key
        file). With recipients: only sealed slots, none that the key file opens.
        """
        dek = AESGCM.generate_key(bit_length=256)
        uid = secrets.token_hex(16)
        if recipients:
            slots = [seal_bytes(dek, r, uid) for r in _unique(recipients)]
        else:
            slots = [self._wrap_slot(dek, uid, self._ring.active_id)]
        return dek, WrappedKey(uid, _dump(slots))

    def add_recipients(
        self, dek: bytes, wrapped: WrappedKey, recipients: Sequence[Recipient]
    ) -> WrappedKey:
        """The same data key with sealed slots added for recipients it lacks (re-triage)."""
        slots = list(_parse_slots(wrapped.slots))
        have = {s.get("rid") for s in slots if s.get("kind") == SEALED_KIND}
        added = [seal_bytes(dek, r, wrapped.uid) for r in _unique(recipients) if r.rid not in have]
        if not added:
            return wrapped
        return WrappedKey(wrapped.uid, _dump([*slots, *added]))

    def remove_recipients(self, wrapped: WrappedKey, rids: Iterable[str]) -> WrappedKey:
        """Drop the sealed slots of the given recipient ids (never the last slot)."""
        drop = set(rids)
        slots = list(_parse_slots(wrapped.slots))
        kept = [s for s in slots if not (s.get("kind") == SEALED_KIND and s.get("rid") in drop)]
        if not kept:
            raise CryptoError("removing these recipients would leave no slot")
        return WrappedKey(wrapped.uid, _dump(kept))

    def remove_kek_slots(self, wrapped: WrappedKey) -> WrappedKey:
        """Drop every key-file slot (the migration), refusing to leave no slot at all."""
        slots = list(_parse_slots(wrapped.slots))
        kept = [s for s in slots if s.get("kind") != "kek"]
        if not kept:
            raise CryptoError("this data key has no sealed slot; seal it before removing the "
                              "key-file slot")
        return WrappedKey(wrapped.uid, _dump(kept))

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        """The data key: from a key-file slot, else from a sealed slot the current keychain
        holds the private key of. Raises ``KeyUnavailable``."""
        slots = _parse_slots(wrapped.slots)
        for slot in slots:
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
        chain = current_keychain()
        known = chain.remembered(wrapped.uid)
        if known is not None:
            return known
        for slot in slots:
            if slot.get("kind") != SEALED_KIND:
                continue
            private = chain.get(str(slot.get("rid")))
            if private is None:
                continue
            try:
                dek = open_sealed(slot, private, wrapped.uid)
            except SealError:
                continue
            chain.remember(wrapped.uid, dek)
            return dek
        raise KeyUnavailable("no key slot opens with the keys on this server")

    def rewrap(self, wrapped: WrappedKey) -> WrappedKey | None:
        """Return the key re-wrapped under the active KEK, or None if it already is (or it
        has no key-file slot: sealed slots do not depend on the key file)."""
        slots = _parse_slots(wrapped.slots)
        kek_slots = [s for s in slots if s.get("kind") == "kek"]
        if not kek_slots:
            return None
        if len(kek_slots) == 1 and kek_slots[0].get("kid") == self._ring.active_id:
            return None
        dek = self.unwrap(wrapped)
        others = [s for s in slots if s.get("kind") != "kek"]
        new = [self._wrap_slot(dek, wrapped.uid, self._ring.active_id), *others]
        return WrappedKey(wrapped.uid, _dump(new))

    def kek_label(self, wrapped: WrappedKey) -> str:
        """What ``data_keys.kek_id`` holds: the KEK id of its key-file slot, or SEALED_ONLY."""
        for slot in _parse_slots(wrapped.slots):
            if slot.get("kind") == "kek":
                return str(slot.get("kid"))
        return SEALED_ONLY

    @staticmethod
    def sealed_rids(wrapped: WrappedKey) -> list[str]:
        """Recipient ids of the sealed slots."""
        return [str(s.get("rid")) for s in _parse_slots(wrapped.slots)
                if s.get("kind") == SEALED_KIND]

    @staticmethod
    def slot_key_ids(wrapped: WrappedKey) -> list[str]:
        """KEK ids of the key-file slots."""
        return [str(s.get("kid")) for s in _parse_slots(wrapped.slots) if s.get("kind") == "kek"]

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


def _dump(slots: list[dict[str, str]]) -> str:
    return json.dumps({"v": SLOTS_V1, "slots": slots})


def _unique(recipients: Sequence[Recipient]) -> list[Recipient]:
    seen: dict[str, Recipient] = {}
    for r in recipients:
        seen.setdefault(r.rid, r)
    return list(seen.values())


def _parse_slots(text: str) -> list[dict[str, str]]:
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
