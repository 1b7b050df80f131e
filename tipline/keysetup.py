"""Loading (and, in the embedded default, creating) the key file at start."""

from __future__ import annotations

import logging
from pathlib import Path

from tipline.crypto import KeyFileError, KeyRing, load_key_file, write_key_file
from tipline.settings import Settings

log = logging.getLogger(__name__)


def load_or_create_keyring(settings: Settings) -> KeyRing:
    """Production and test modes require an existing key file; embedded mode creates one."""
    path: Path = settings.key_file
    if path.exists() or settings.mode != "embedded":
        try:
            return load_key_file(path)
        except KeyFileError as exc:
            if settings.mode == "production" and not path.exists():
                raise KeyFileError(
                    f"TIPLINE_KEY_FILE: key file {path} does not exist "
                    "(create one with `tipline keys init --key-file PATH`)"
                ) from exc
            raise
    ring = KeyRing.generate()
    write_key_file(path, ring)
    log.warning("created a new key file at %s (mode 0600): back it up; without it no tip "
                "can be read", path.resolve())
    return ring
