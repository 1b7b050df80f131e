from __future__ import annotations

import json
import os
import stat

import pytest

from tipline.crypto import (
    CryptoError,
    KeyFileError,
    KeyRing,
    KeyUnavailable,
    Vault,
    field_ad,
    load_key_file,
    write_key_file,
)


def test_field_envelope_round_trip_and_format() -> None:
    v = Vault(KeyRing.generate())
    dek, _wrapped = v.new_data_key()
    ad = field_ad("messages", "body_ct", "row1")
    env = v.seal_text(dek, "a gun in locker 12", ad)
    assert env[0] == 1  # envelope version
    assert b"locker" not in env
    assert v.open_text(dek, env, ad) == "a gun in locker 12"


def test_envelope_bound_to_row_and_column() -> None:
    v = Vault(KeyRing.generate())
    dek, _ = v.new_data_key()
    env = v.seal_text(dek, "secret", field_ad("messages", "body_ct", "row1"))
    with pytest.raises(CryptoError):
        v.open_text(dek, env, field_ad("messages", "body_ct", "row2"))
    with pytest.raises(CryptoError):
        v.open_text(dek, env, field_ad("notes", "body_ct", "row1"))


def test_tampered_envelope_fails() -> None:
    v = Vault(KeyRing.generate())
    dek, _ = v.new_data_key()
    ad = field_ad("t", "c", "r")
    env = bytearray(v.seal_text(dek, "secret", ad))
    env[-1] ^= 1
    with pytest.raises(CryptoError):
        v.open(dek, bytes(env), ad)
    with pytest.raises(CryptoError):
        v.open(dek, b"\x02" + bytes(env[1:]), ad)


def test_data_key_wrapped_under_active_kek_and_unwraps() -> None:
    ring = KeyRing.generate()
    v = Vault(ring)
    dek, wrapped = v.new_data_key()
    slots = json.loads(wrapped.slots)
    assert slots["v"] == 1
    assert [s["kid"] for s in slots["slots"]] == [ring.active_id]
    assert v.unwrap(wrapped) == dek


def test_rotation_rewraps_without_touching_content() -> None:
    ring = KeyRing.generate()
    v1 = Vault(ring)
    dek, wrapped = v1.new_data_key()
    ad = field_ad("t", "c", "r")
    env = v1.seal_text(dek, "content", ad)
    ring2 = ring.with_new_active()
    v2 = Vault(ring2)
    new = v2.rewrap(wrapped)
    assert new is not None and new.uid == wrapped.uid
    assert Vault.slot_key_ids(new) == [ring2.active_id]
    assert v2.rewrap(new) is None  # already under the active key
    # After retiring the old key, the re-wrapped key still opens the unchanged envelope.
    v3 = Vault(ring2.without({ring.active_id}))
    assert v3.open_text(v3.unwrap(new), env, ad) == "content"
    with pytest.raises(KeyUnavailable):
        v3.unwrap(wrapped)


def test_slot_bound_to_its_data_key_uid() -> None:
    v = Vault(KeyRing.generate())
    _dek, wrapped = v.new_data_key()
    from tipline.crypto import WrappedKey

    with pytest.raises(KeyUnavailable):
        v.unwrap(WrappedKey("someotheruid", wrapped.slots))


def test_lookup_hash_is_keyed_and_purpose_separated() -> None:
    ring = KeyRing.generate()
    v = Vault(ring)
    a = v.lookup_hash("phone", "+13145550177")
    assert a == v.lookup_hash("phone", "+13145550177")
    assert a != v.lookup_hash("receipt", "+13145550177")
    assert a != Vault(KeyRing.generate()).lookup_hash("phone", "+13145550177")
    assert "3145550177" not in a and len(a) == 64


def test_key_file_written_0600_and_loaded(tmp_path) -> None:
    ring = KeyRing.generate()
    path = tmp_path / "k" / "keys.json"
    write_key_file(path, ring)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = load_key_file(path)
    assert loaded.active_id == ring.active_id and loaded.keks == ring.keks


def test_key_file_errors(tmp_path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        load_key_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    os.chmod(bad, 0o600)
    with pytest.raises(KeyFileError, match="malformed"):
        load_key_file(bad)
    ring = KeyRing.generate()
    loose = tmp_path / "loose.json"
    write_key_file(loose, ring)
    os.chmod(loose, 0o644)
    with pytest.raises(KeyFileError, match="readable by other users"):
        load_key_file(loose)
