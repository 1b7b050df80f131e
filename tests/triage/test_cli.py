"""`tipline users reset-totp` and `tipline users unlock`: account recovery without the web."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from tests.staffsupport import make_staff
from tipline import crypto, migrations
from tipline.accounts.models import StaffUser
from tipline.audit.models import AuditEvent
from tipline.crypto import KeyRing, Vault, write_key_file
from tipline.db import Database, utcnow


def _cli(args: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIPLINE_")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "tipline.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_reset_totp_and_unlock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'u.sqlite3'}"
    key_file = tmp_path / "keys.json"
    ring = KeyRing.generate()
    write_key_file(key_file, ring)
    migrations.upgrade(url)
    vault = Vault(ring)
    crypto.install(vault)
    db = Database(url)
    with db.session() as s:
        user, _p, _secret = make_staff(s, vault, "auditor", email="a@staff.example.org")
        user.locked_until = utcnow() + timedelta(minutes=10)
        uid = user.id
    env = {"TIPLINE_DATABASE_URL": url, "TIPLINE_KEY_FILE": str(key_file),
           "TIPLINE_DATA_DIR": str(tmp_path), "TIPLINE_MODE": "embedded"}
    done = _cli(["users", "unlock", "A@staff.example.org"], env)
    assert done.returncode == 0, done.stderr
    done = _cli(["users", "reset-totp", "a@staff.example.org"], env)
    assert done.returncode == 0, done.stderr
    missing = _cli(["users", "unlock", "nobody@staff.example.org"], env)
    assert missing.returncode == 2 and "no account" in missing.stderr
    with db.session() as s:
        row = s.get(StaffUser, uid)
        assert row is not None
        assert row.locked_until is None and row.totp_confirmed is False
        assert row.totp_secret_ct is None and row.session_version == 3
        actions = s.execute(select(AuditEvent.action).where(
            AuditEvent.object_id == str(uid))).scalars().all()
        assert {"user.unlock", "user.reset_totp"} <= set(actions)
    db.dispose()
