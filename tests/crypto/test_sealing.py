"""Sealed slots: a data key sealed to X25519 public keys opens only with the keychain's key."""

from __future__ import annotations

import base64
import json

import pytest

from tipline.crypto import (
    SEALED_ONLY,
    CryptoError,
    Keychain,
    KeyRing,
    KeyUnavailable,
    Recipient,
    SealError,
    Vault,
    WrappedKey,
    current_keychain,
    reporter_recipient,
    using,
)
from tipline.crypto.sealing import new_private_key, open_sealed, public_bytes, seal_bytes


def _pair(rid: str):
    priv = new_private_key()
    return Recipient(rid, public_bytes(priv)), priv


def _slots(wrapped: WrappedKey) -> list[dict]:
    return json.loads(wrapped.slots)["slots"]


def test_sealed_round_trip_has_no_key_file_slot() -> None:
    vault = Vault(KeyRing.generate())
    district, priv = _pair("district:1:k1")
    dek, wrapped = vault.new_data_key([district])
    slots = _slots(wrapped)
    assert [s["kind"] for s in slots] == ["x25519"]
    assert set(slots[0]) == {"kind", "rid", "epk", "n", "ct"}
    assert vault.kek_label(wrapped) == SEALED_ONLY
    with pytest.raises(KeyUnavailable):
        vault.unwrap(wrapped)  # the key file alone opens nothing
    with using(Keychain({"district:1:k1": priv})):
        assert vault.unwrap(wrapped) == dek
    with pytest.raises(KeyUnavailable):
        vault.unwrap(wrapped)  # outside the block again


def test_without_recipients_the_legacy_key_file_slot() -> None:
    vault = Vault(KeyRing.generate())
    dek, wrapped = vault.new_data_key()
    assert [s["kind"] for s in _slots(wrapped)] == ["kek"]
    assert vault.unwrap(wrapped) == dek
    assert vault.kek_label(wrapped) == vault.active_key_id


def test_wrong_key_does_not_open() -> None:
    vault = Vault(KeyRing.generate())
    district, _priv = _pair("district:1:k1")
    _dek, wrapped = vault.new_data_key([district])
    other = new_private_key()
    # The other key under the right rid (a district B key relabelled) still fails.
    with using(Keychain({"district:1:k1": other, "district:2:k1": other})), \
            pytest.raises(KeyUnavailable):
        vault.unwrap(wrapped)


def test_slot_moved_to_another_data_key_or_rid_does_not_open() -> None:
    vault = Vault(KeyRing.generate())
    district, priv = _pair("district:1:k1")
    _dek, wrapped = vault.new_data_key([district])
    slot = _slots(wrapped)[0]
    with pytest.raises(SealError):
        open_sealed(slot, priv, "another-uid")
    moved = dict(slot, rid="district:1:k2")
    with pytest.raises(SealError):
        open_sealed(moved, priv, wrapped.uid)
    assert open_sealed(slot, priv, wrapped.uid)


@pytest.mark.parametrize("field", ["epk", "n", "ct"])
def test_tampered_fields_do_not_open(field: str) -> None:
    district, priv = _pair("district:1:k1")
    slot = seal_bytes(b"k" * 32, district, "uid1")
    raw = bytearray(base64.b64decode(slot[field]))
    raw[0] ^= 1
    tampered = dict(slot, **{field: base64.b64encode(bytes(raw)).decode()})
    with pytest.raises(SealError):
        open_sealed(tampered, priv, "uid1")


@pytest.mark.parametrize("slot", [
    {"kind": "x25519"},
    {"kind": "x25519", "rid": "r", "epk": "!!", "n": "AA==", "ct": "AA=="},
    {"kind": "x25519", "rid": "r", "epk": "AAAA", "n": "AA==", "ct": "AA=="},
    {"kind": "kek"},
])
def test_malformed_slots_raise_seal_error(slot: dict) -> None:
    with pytest.raises(SealError):
        open_sealed(slot, new_private_key(), "uid1")


def test_add_recipients_and_remove_kek_slots() -> None:
    vault = Vault(KeyRing.generate())
    dek, wrapped = vault.new_data_key()
    district, dpriv = _pair("district:1:k1")
    agency, apriv = _pair("agency:2:k1")
    sealed = vault.add_recipients(dek, wrapped, [district])
    assert vault.add_recipients(dek, sealed, [district]) == sealed  # idempotent
    sealed = vault.add_recipients(dek, sealed, [agency])
    assert vault.sealed_rids(sealed) == ["district:1:k1", "agency:2:k1"]
    only = vault.remove_kek_slots(sealed)
    assert vault.slot_key_ids(only) == []
    assert vault.rewrap(only) is None  # rotation has nothing to do for it
    for rid, priv in (("district:1:k1", dpriv), ("agency:2:k1", apriv)):
        with using(Keychain({rid: priv})):
            assert vault.unwrap(only) == dek
    with pytest.raises(CryptoError):
        vault.remove_kek_slots(wrapped)  # would leave no slot
    fewer = vault.remove_recipients(only, ["agency:2:k1"])
    assert vault.sealed_rids(fewer) == ["district:1:k1"]


def test_keychain_caches_opened_keys_per_keychain_only() -> None:
    vault = Vault(KeyRing.generate())
    district, priv = _pair("district:1:k1")
    dek, wrapped = vault.new_data_key([district])
    chain = Keychain({"district:1:k1": priv})
    with using(chain):
        vault.unwrap(wrapped)
    assert chain.remembered(wrapped.uid) == dek
    assert current_keychain().remembered(wrapped.uid) is None
    chain.forget()
    assert len(chain) == 0


def test_reporter_key_is_derived_from_the_code_and_tip() -> None:
    vault = Vault(KeyRing.generate())
    r1, p1 = reporter_recipient("ABCD-EFGH-JKMN-PQRS", "tip1")
    r2, _ = reporter_recipient("abcd efgh jkmn pqrs", "tip1")  # typed differently
    r3, _ = reporter_recipient("ABCD-EFGH-JKMN-PQRS", "tip2")
    r4, _ = reporter_recipient("ABCD-EFGH-JKMN-PQRT", "tip1")
    assert r1 == r2 and r1.rid == "code:tip1"
    assert r3.public != r1.public and r4.public != r1.public
    dek, wrapped = vault.new_data_key([r1])
    with using(Keychain({r1.rid: p1})):
        assert vault.unwrap(wrapped) == dek


def test_recipient_public_key_length_checked() -> None:
    with pytest.raises(ValueError):
        Recipient("district:1:k1", b"short")
