"""Sealed key slots: a data key encrypted to an X25519 public key (an authenticated sealed box).

A slot is made with a fresh ephemeral key pair: ECDH with the recipient's public key, HKDF-SHA256
(salt = ephemeral public || recipient public, info naming the data key uid and the recipient id)
gives a one-time AES-256-GCM key, and the data key is encrypted with associated data naming the
same uid and recipient id. Whoever holds only public keys (the server at intake) can write a
slot and cannot open it; a slot copied to another data key or recipient id does not open.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KIND = "x25519"
_NONCE = 12


class SealError(Exception):
    """A sealed slot or box does not open with this key (wrong key, moved, or tampered)."""


@dataclass(frozen=True)
class Recipient:
    """Who a data key is sealed to: an id naming the key pair, and its raw 32-byte public key.

    Ids: ``district:<id>:<key id>``, ``agency:<id>:<key id>``, ``code:<tip uid>`` (the
    reporter's receipt-code key), ``user:<id>`` (a staff member's personal key, for grants),
    ``recovery:<district id>`` (a district's offline recovery key).
    """

    rid: str
    public: bytes

    def __post_init__(self) -> None:
        if len(self.public) != 32:
            raise ValueError("an X25519 public key is 32 bytes")


def new_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def public_bytes(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def private_bytes(private: X25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    return private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def private_from_bytes(raw: bytes) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(raw)


def _context(label: str, rid: str) -> bytes:
    return f"tipline/v1/seal/{label}/{rid}".encode()


def _box_key(shared: bytes, epk: bytes, recipient_pub: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + recipient_pub,
                info=info).derive(shared)


def seal_bytes(plaintext: bytes, recipient: Recipient, label: str) -> dict[str, str]:
    """Seal ``plaintext`` to ``recipient``, bound to ``label`` (a data key uid, a grant id)."""
    eph = X25519PrivateKey.generate()
    epk = public_bytes(eph)
    shared = eph.exchange(X25519PublicKey.from_public_bytes(recipient.public))
    info = _context(label, recipient.rid)
    key = _box_key(shared, epk, recipient.public, info)
    nonce = secrets.token_bytes(_NONCE)
    ct = AESGCM(key).encrypt(nonce, plaintext, info)
    return {"kind": KIND, "rid": recipient.rid, "epk": _b64e(epk), "n": _b64e(nonce),
            "ct": _b64e(ct)}


def open_sealed(slot: dict[str, str], private: X25519PrivateKey, label: str) -> bytes:
    """Open a slot made by ``seal_bytes`` for the same label and the slot's own rid."""
    try:
        if slot.get("kind") != KIND:
            raise SealError("not a sealed slot")
        rid = str(slot["rid"])
        epk = _b64d(slot["epk"])
        nonce, ct = _b64d(slot["n"]), _b64d(slot["ct"])
        if len(epk) != 32 or len(nonce) != _NONCE:
            raise SealError("malformed sealed slot")
        shared = private.exchange(X25519PublicKey.from_public_bytes(epk))
    except (KeyError, ValueError, TypeError):
        raise SealError("malformed sealed slot") from None
    info = _context(label, rid)
    key = _box_key(shared, epk, public_bytes(private), info)
    try:
        return AESGCM(key).decrypt(nonce, ct, info)
    except InvalidTag:
        raise SealError("the sealed slot does not open with this key") from None


# -- the reporter's receipt-code key ----------------------------------------------------------

def reporter_recipient(code: str, tip_uid: str) -> tuple[Recipient, X25519PrivateKey]:
    """The key pair a receipt code stands for, for one tip: ``(recipient, private key)``.

    Derived with HKDF-SHA256 from the normalised code (80 random bits for a web code, 66 for a
    phone caller's digits) and the tip uid, so the server can seal to it at intake while it
    still has the code, and open it again only when the reporter brings the code back.
    """
    from tipline.tips.receipts import normalize_code

    canonical = normalize_code(code) or code
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=tip_uid.encode(),
                info=b"tipline/v1/receipt-code-key").derive(canonical.encode())
    private = X25519PrivateKey.from_private_bytes(seed)
    return Recipient(f"code:{tip_uid}", public_bytes(private)), private


def _b64e(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _b64d(text: str) -> bytes:
    return base64.b64decode(text, validate=True)
