"""`tipline users add`, `reset` and `unlock`: accounts and their recovery without the web.
What the command line hands over is a one-time password, replaced at the first sign-in."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.staffsupport import make_staff
from tipline import crypto, migrations
from tipline.accounts import services as accounts
from tipline.accounts.models import StaffUser
from tipline.audit.models import AuditEvent
from tipline.crypto import KeyRing, Vault, write_key_file
from tipline.db import Database, utcnow
from tipline.routing.models import OutboxMessage


@dataclass
class Installation:
    db: Database
    vault: Vault
    env: dict[str, str]

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIPLINE_")}
        env.update(self.env)
        return subprocess.run([sys.executable, "-m", "tipline.cli", *args], env=env,
                              input=stdin, capture_output=True, text=True, timeout=120,
                              check=False)


@pytest.fixture
def inst(tmp_path: Path) -> Iterator[Installation]:
    url = f"sqlite:///{tmp_path / 'u.sqlite3'}"
    key_file = tmp_path / "keys.json"
    ring = KeyRing.generate()
    write_key_file(key_file, ring)
    migrations.upgrade(url)
    vault = Vault(ring)
    crypto.install(vault)
    env = {"TIPLINE_DATABASE_URL": url, "TIPLINE_KEY_FILE": str(key_file),
           "TIPLINE_DATA_DIR": str(tmp_path), "TIPLINE_MODE": "embedded"}
    db = Database(url)
    yield Installation(db, vault, env)
    db.dispose()


def test_unlock_and_reset(inst: Installation) -> None:
    with inst.db.session() as s:
        user, old, _secret = make_staff(s, inst.vault, "auditor", email="a@staff.example.org")
        user.locked_until = utcnow() + timedelta(minutes=10)
        uid, version = user.id, user.session_version
    done = inst.cli("users", "unlock", "A@staff.example.org")
    assert done.returncode == 0, done.stderr
    done = inst.cli("users", "reset", "a@staff.example.org")
    assert done.returncode == 0, done.stderr
    match = re.search(r"one-time password: (\S+)", done.stdout)
    assert match, done.stdout
    one_time = match.group(1)
    missing = inst.cli("users", "unlock", "nobody@staff.example.org")
    assert missing.returncode == 2 and "no account" in missing.stderr
    assert inst.cli("users", "reset", "nobody@staff.example.org").returncode == 2
    with inst.db.session() as s:
        row = s.get(StaffUser, uid)
        assert row is not None
        assert row.locked_until is None and row.totp_confirmed is False
        assert row.totp_secret_ct is None and row.session_version == version + 2
        assert not accounts.verify_password(row.password_hash, old)
        assert accounts.verify_password(row.password_hash, one_time)
        assert row.must_change_password and row.password_expires_at is not None
        actions = s.execute(select(AuditEvent.action).where(
            AuditEvent.object_id == str(uid))).scalars().all()
        assert {"user.unlock", "user.reset_credentials"} <= set(actions)
        mails = s.execute(select(OutboxMessage.body).where(
            OutboxMessage.recipient == "a@staff.example.org")).scalars().all()
        assert len(mails) == 1 and one_time not in mails[0]
        assert "command line" in mails[0]


def test_users_add_makes_a_one_time_password(inst: Installation) -> None:
    added = inst.cli("users", "add", "b@staff.example.org", "--role", "auditor",
                     stdin="a typed first password\n")
    assert added.returncode == 0, added.stderr
    assert "new password" in added.stdout
    with inst.db.session() as s:
        user = accounts.find_user(s, "b@staff.example.org")
        assert user is not None and user.must_change_password
        assert user.password_expires_at is not None
        assert accounts.verify_password(user.password_hash, "a typed first password")
