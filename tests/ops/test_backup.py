"""The backup drill: tips by web and SMS, ``tipline backup``, wipe, ``tipline restore``, and
the same tips readable, the audit chain intact, the follow-up codes still working. Run through
the real command line, on PostgreSQL (pg_dump/pg_restore) and on SQLite (online backup API)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import DEMO_DIRECTORY
from tests.intake.helpers import post_tip
from tests.ops.pg import drop, recreate, scratch_url
from tests.telephony.helpers import send_sms
from tests.twilio_support import PUBLIC_BASE, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM_NUMBER
from tipline.audit.services import record, verify_chain
from tipline.crypto import KeyRing, write_key_file
from tipline.jobs import RecordingQueue
from tipline.settings import Settings
from tipline.tips.models import Message, Tip

ROOT = Path(__file__).resolve().parents[2]
CODE = re.compile(r'id="receipt-code"[^>]*><code>([0-9A-Z-]+)</code>')
TIPLINE = [sys.executable, "-c", "from tipline.cli import main; main()"]


def _env(tmp: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIPLINE_", "TWILIO_"))}
    env.update(TIPLINE_MODE="test", TIPLINE_DATABASE_URL=url, TIPLINE_BROKER_URL="memory://",
               TIPLINE_KEY_FILE=str(tmp / "live" / "keys.json"), TIPLINE_DATA_DIR=str(tmp / "live"),
               TIPLINE_CONFIG_FILE=str(tmp / "empty.env"), PYTHONPATH=str(ROOT))
    (tmp / "empty.env").write_text("")
    return env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TIPLINE, *args], env=env, cwd=env["TIPLINE_DATA_DIR"],
                          capture_output=True, text=True, timeout=180)


def _settings(tmp: Path, url: str) -> Settings:
    return Settings(mode="test", data_dir=tmp / "live", database_url=url, broker_url="memory://",
                    key_file=tmp / "live" / "keys.json", secret_key="x" * 40,
                    public_url=PUBLIC_BASE, demo_data=False,
                    twilio_account_sid=TEST_ACCOUNT_SID, twilio_auth_token=TEST_AUTH_TOKEN,
                    twilio_from_number=TEST_FROM_NUMBER)


def _app(settings: Settings) -> Any:
    from tipline.app import create_app

    app = create_app(settings, queue=RecordingQueue())
    app.config.update(TESTING=True)
    return app


def _readable(app: Any) -> dict[str, Any]:
    """What staff-side code can read of each tip: the words where a key-file slot opens them,
    else a digest of the sealed slots (tips sealed to staff keys stay sealed to this server)."""
    from tipline.crypto import CryptoError

    svc = app.extensions["tipline"]
    seen: dict[str, Any] = {}
    with svc.db.session() as session:
        for tip in session.execute(select(Tip).order_by(Tip.id)).scalars():
            msgs = session.execute(select(Message).where(Message.tip_id == tip.id)
                                   .order_by(Message.id)).scalars().all()
            try:
                seen[tip.reference] = [m.body for m in msgs]
            except CryptoError:
                slots = tip.data_key.slots if tip.data_key else ""
                seen[tip.reference] = "sealed:" + hashlib.sha256(slots.encode()).hexdigest()
    return seen


def _followup_shows(app: Any, code: str, words: str) -> bool:
    from tests.intake.helpers import csrf_from

    client = app.test_client()
    token = csrf_from(client.get("/followup").get_data(as_text=True))
    resp = client.post("/followup", data={"csrf_token": token, "code": code})
    if resp.status_code != 303:
        return False
    return words in client.get("/followup/tip").get_data(as_text=True)


def _drill(tmp: Path, url: str, wipe: Any) -> None:
    (tmp / "live").mkdir()
    write_key_file(tmp / "live" / "keys.json", KeyRing.generate())
    env = _env(tmp, url)
    up = _cli(env, "db", "upgrade")
    assert up.returncode == 0, up.stderr
    assert _cli(env, "directory", "load", str(DEMO_DIRECTORY)).returncode == 0

    settings = _settings(tmp, url)
    app = _app(settings)
    client = app.test_client()
    words = "He showed a gun in his backpack at lunch near the gym"
    page = post_tip(client, category="weapon", body=words).get_data(as_text=True)
    code = CODE.search(page).group(1)  # type: ignore[union-attr]
    assert send_sms(client, "A kid at Soldan is selling pills in the bathroom").status_code == 200
    with app.extensions["tipline"].db.session() as session:
        tips = session.execute(select(Tip.reference, Tip.channel)).all()
        assert sorted(c for _, c in tips) == ["sms", "web"]
        record(session, "tip.read", actor="drill", object_type="tip", object_id=tips[0][0])
    before = _readable(app)
    assert _followup_shows(app, code, words)
    app.extensions["tipline"].db.dispose()

    backup = _cli(env, "backup", str(tmp / "backup"), "--key-file-to",
                  str(tmp / "keys-elsewhere" / "keys.json"))
    assert backup.returncode == 0, backup.stderr
    manifest = json.loads((tmp / "backup" / "manifest.json").read_text())
    assert manifest["counts"]["tips"] == 2 and manifest["tipline_version"]
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())
    assert not any("keys" in p.name for p in (tmp / "backup").iterdir())  # never beside it
    assert (tmp / "keys-elsewhere" / "keys.json").stat().st_mode & 0o777 == 0o600
    beside = _cli(env, "backup", str(tmp / "b2"), "--key-file-to", str(tmp / "b2" / "k.json"))
    assert beside.returncode == 2 and "beside" in beside.stderr

    wipe()
    (tmp / "live" / "keys.json").unlink()

    restored = _cli(env, "restore", str(tmp / "backup"), "--key-file",
                    str(tmp / "keys-elsewhere" / "keys.json"))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "row counts: match the manifest" in restored.stdout
    assert "audit log: OK" in restored.stdout and "0 bad" in restored.stdout
    again = _cli(env, "restore", str(tmp / "backup"))
    assert again.returncode == 2 and "not empty" in again.stderr
    assert _cli(env, "check").returncode == 0
    assert _cli(env, "audit", "verify").returncode == 0

    app = _app(settings)
    try:
        assert _readable(app) == before
        assert _followup_shows(app, code, words)
        with app.extensions["tipline"].db.session() as session:
            assert verify_chain(session).ok
    finally:
        app.extensions["tipline"].db.dispose()


@pytest.mark.slow
def test_postgres_drill_backup_wipe_restore(tmp_path: Path) -> None:
    url = scratch_url("drill")
    recreate(url)
    try:
        _drill(tmp_path, url, lambda: recreate(url))
    finally:
        drop(url)


@pytest.mark.slow
def test_sqlite_drill_backup_wipe_restore(tmp_path: Path) -> None:
    db = tmp_path / "live" / "tipline.sqlite3"
    url = f"sqlite:///{db}"

    def wipe() -> None:
        for p in db.parent.glob("tipline.sqlite3*"):
            p.unlink()

    _drill(tmp_path, url, wipe)


def test_a_damaged_dump_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    from tipline.ops.backup import BackupError, Manifest, restore

    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "database.sqlite3").write_bytes(b"not what was written")
    Manifest("0.10.0", "now", "sqlite", "3", "api", ["0010"],
             {"database.sqlite3": {"sha256": "0" * 64, "bytes": 20}}, {}).write(folder)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.sqlite3'}",
                        key_file=tmp_path / "k.json")
    with pytest.raises(BackupError, match="checksum"):
        restore(settings, folder)
    assert not (tmp_path / "x.sqlite3").exists()


def test_a_key_file_without_the_data_s_keys_is_refused(tmp_path: Path) -> None:
    from tipline.ops.backup import BackupError, Manifest, restore

    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "database.sqlite3").write_bytes(b"dump")
    digest = hashlib.sha256(b"dump").hexdigest()
    Manifest("0.10.0", "now", "sqlite", "3", "api", ["0010"],
             {"database.sqlite3": {"sha256": digest, "bytes": 4}}, {},
             key_ids=["k-that-is-not-there"]).write(folder)
    other = tmp_path / "other-keys.json"
    write_key_file(other, KeyRing.generate())
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.sqlite3'}",
                        key_file=tmp_path / "k.json")
    with pytest.raises(BackupError, match="lacks keys"):
        restore(settings, folder, key_file=other)
    assert not (tmp_path / "x.sqlite3").exists() and not (tmp_path / "k.json").exists()
