"""The key file: key-encryption keys (KEKs) with ids, and the lookup secret.

The key file lives on the server's disk (or arrives in an environment variable), never in the
database. Format (JSON, version 1)::

    {"format": "tipline-keys", "version": 1,
     "active": "k-20261122-ab12",
     "keys": [{"id": "k-20261122-ab12", "created": "...", "key": "<base64 32 bytes>"}],
     "lookup": "<base64 32 bytes>",
     "secret_key": "<random text for Flask sessions>"}

Old KEKs stay in the file after a rotation until ``tipline keys rotate`` has re-wrapped every
data key; then ``tipline keys retire`` removes them.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


class KeyFileError(Exception):
    """The key file is missing, unreadable or malformed."""


@dataclass(frozen=True)
class KeyRing:
    """Key-encryption keys by id, the active id, and the lookup (HMAC) root secret."""

    keks: dict[str, bytes]
    active_id: str
    lookup_secret: bytes
    secret_key: str

    @property
    def active_kek(self) -> bytes:
        return self.keks[self.active_id]

    # -- serialisation -------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(
            {
                "format": "tipline-keys",
                "version": 1,
                "active": self.active_id,
                "keys": [
                    {"id": kid, "key": base64.b64encode(key).decode()}
                    for kid, key in self.keks.items()
                ],
                "lookup": base64.b64encode(self.lookup_secret).decode(),
                "secret_key": self.secret_key,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, source: str = "key file") -> KeyRing:
        try:
            data = json.loads(text)
            if data.get("format") != "tipline-keys" or data.get("version") != 1:
                raise KeyFileError(f"{source}: not a tipline key file (format/version)")
            keks = {k["id"]: base64.b64decode(k["key"], validate=True) for k in data["keys"]}
            lookup = base64.b64decode(data["lookup"], validate=True)
            active = data["active"]
            secret_key = str(data.get("secret_key") or "")
        except KeyFileError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyFileError(f"{source}: malformed ({exc.__class__.__name__})") from None
        if active not in keks:
            raise KeyFileError(f"{source}: active key {active!r} is not in the file")
        if any(len(k) != 32 for k in keks.values()) or len(lookup) != 32:
            raise KeyFileError(f"{source}: every key must be 32 bytes")
        return cls(keks=keks, active_id=active, lookup_secret=lookup, secret_key=secret_key)

    @classmethod
    def generate(cls) -> KeyRing:
        kid = new_key_id()
        return cls(
            keks={kid: secrets.token_bytes(32)},
            active_id=kid,
            lookup_secret=secrets.token_bytes(32),
            secret_key=secrets.token_urlsafe(48),
        )

    def with_new_active(self) -> KeyRing:
        """A copy with a freshly generated KEK made active; old KEKs are kept to unwrap."""
        kid = new_key_id()
        keks = dict(self.keks)
        keks[kid] = secrets.token_bytes(32)
        return KeyRing(keks, kid, self.lookup_secret, self.secret_key)

    def without(self, retired: set[str]) -> KeyRing:
        if self.active_id in retired:
            raise KeyFileError("the active key cannot be retired")
        keks = {k: v for k, v in self.keks.items() if k not in retired}
        return KeyRing(keks, self.active_id, self.lookup_secret, self.secret_key)


def new_key_id() -> str:
    return f"k-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"


def load_key_file(path: Path) -> KeyRing:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    except OSError as exc:
        raise KeyFileError(f"key file {path} cannot be read: {exc.strerror}") from None
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"key file {path} is readable by other users (mode {oct(mode & 0o777)}); chmod 600 it"
        )
    return KeyRing.from_json(text, source=str(path))


def write_key_file(path: Path, ring: KeyRing) -> None:
    """Write atomically with mode 0600, so no reader ever sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(ring.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
