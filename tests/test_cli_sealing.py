"""`tipline keys seal-existing`, `recovery-init`, `recover`, `district-init` (issue 13)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from sqlalchemy import select

from tests.test_cli_keys import _cli
from tipline import crypto, migrations
from tipline.accounts import keys
from tipline.accounts import services as accounts
from tipline.accounts.seal_existing import seal_existing
from tipline.crypto import SEALED_ONLY, KeyRing, KeyUnavailable, Vault, using, write_key_file
from tipline.crypto.models import KeyGrant, ReadKey, RecoveryKey
from tipline.db import Database, utcnow
from tipline.jobs import RecordingQueue
from tipline.tips.models import DataKey, Tip

PASSWORD = "correct horse battery staple"


class _Stop(Exception):
    pass


@pytest.fixture
def installation(tmp_path):
    from tests.conftest import DEMO_DIRECTORY
    from tests.factories import make_tip
    from tipline.directory.loader import load_directory_file

    url = f"sqlite:///{tmp_path / 'k.sqlite3'}"
    key_file = tmp_path / "keys.json"
    ring = KeyRing.generate()
    write_key_file(key_file, ring)
    migrations.upgrade(url)
    vault = Vault(ring)
    crypto.install(vault)
    db = Database(url)
    bodies = [f"tip number {i} about CAPYBARA-{i}" for i in range(12)]
    with db.session() as s:
        load_directory_file(s, DEMO_DIRECTORY)
        # Tips from before sealing: no district has a read key yet.
        ids = [make_tip(s, vault, RecordingQueue(), body=b, school_code="slps-roosevelt").tip_id
               for b in bodies]
        county = make_tip(s, vault, RecordingQueue(), body="county tip",
                          school_code="cty-northview").tip_id
        user = accounts.create_user(s, vault, email="admin@slps.example.org", password=PASSWORD,
                                    role="district_admin", district_code="slps",
                                    must_change=False)
        user_id = user.id
    env = {"TIPLINE_DATABASE_URL": url, "TIPLINE_KEY_FILE": str(key_file),
           "TIPLINE_DATA_DIR": str(tmp_path)}
    yield {"db": db, "vault": vault, "ids": ids, "bodies": bodies, "env": env,
           "user_id": user_id, "county": county, "tmp": tmp_path}
    db.dispose()


def _bodies(db, ids, chain=None):
    with db.session() as s, using(chain or crypto.Keychain()):
        return [s.get(Tip, i).messages[0].body for i in ids]


def _chain(db, user_id, password=PASSWORD):
    with db.session() as s:
        user = s.get(accounts.StaffUser, user_id)
        personal = keys.unlock_personal_key(s, user, password)
        assert personal is not None
        return keys.keychain_for(s, user_id, personal)


def test_seal_existing_dry_run_then_resumable_and_idempotent(installation) -> None:
    db, vault, ids, env = (installation[k] for k in ("db", "vault", "ids", "env"))
    dry = _cli(["keys", "seal-existing", "--dry-run"], env, installation["tmp"])
    assert dry.returncode == 0, dry.stderr
    assert "would seal 12 data keys" in dry.stdout
    assert "1 data keys left with the key file" in dry.stdout  # the county has no key yet
    assert _bodies(db, ids) == installation["bodies"]  # nothing changed

    # Interrupted after the first batch of 5 ...
    calls = []

    def stop(n: int) -> None:
        calls.append(n)
        raise _Stop

    with pytest.raises(_Stop):
        seal_existing(db.session, vault, batch=5, progress=stop)
    with db.session() as s:
        sealed = s.execute(select(DataKey).where(DataKey.kek_id == SEALED_ONLY)).scalars().all()
    assert len(sealed) == 5
    # ... and run again: it finishes, and a third run finds nothing to do.
    out = _cli(["keys", "seal-existing", "--batch", "4"], env, installation["tmp"])
    assert out.returncode == 0, out.stderr
    assert "sealed 7 data keys" in out.stdout
    again = _cli(["keys", "seal-existing"], env, installation["tmp"])
    assert "sealed 0 data keys" in again.stdout
    status = _cli(["keys", "status"], env, installation["tmp"])
    assert "sealed to staff keys only (no key-file slot): 12 data keys" in status.stdout

    with pytest.raises(KeyUnavailable):
        _bodies(db, ids[:1])  # the key file alone opens none of them now
    assert _bodies(db, ids, _chain(db, installation["user_id"])) == installation["bodies"]
    with db.session() as s:
        for row in s.execute(select(DataKey).where(DataKey.kek_id == SEALED_ONLY)).scalars():
            assert vault.slot_key_ids(row.wrapped()) == []
        # The county tip (no read key) and the staff account's TOTP key keep their kek slot.
        county = s.get(Tip, installation["county"])
        assert county.data_key.kek_id == vault.active_key_id


def test_recovery_init_and_recover(installation) -> None:
    db, ids, env, tmp = (installation[k] for k in ("db", "ids", "env", "tmp"))
    assert _cli(["keys", "seal-existing"], env, tmp).returncode == 0
    out_file = tmp / "slps-recovery.txt"
    made = subprocess.run(
        [sys.executable, "-m", "tipline.cli", "keys", "recovery-init", "--district", "slps",
         "--out", str(out_file), "--user", "admin@slps.example.org"],
        input=PASSWORD + "\n", env={**{k: v for k, v in os.environ.items()
                                       if not k.startswith("TIPLINE_")}, **env},
        cwd=tmp, capture_output=True, text=True, timeout=120, check=False)
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
    text = out_file.read_text()
    assert text.startswith("tipline-recovery-v1:slps:")
    with db.session() as s:
        stored = s.execute(select(RecoveryKey)).scalar_one()
        secret_part = text.strip().rsplit(":", 1)[1]
        assert secret_part.encode() not in bytes(stored.public_key)
    again = _cli(["keys", "recovery-init", "--district", "slps"], env, tmp)
    assert again.returncode == 2 and "already has a recovery key" in again.stderr

    # Everyone forgets: the account is reset (its key and grants dropped) and signs in again.
    with db.session() as s:
        user = s.get(accounts.StaffUser, installation["user_id"])
        one_time = accounts.reset_credentials(user, now=utcnow())
        personal = keys.unlock_or_create(s, user, one_time)
        chain = keys.keychain_for(s, user.id, personal)
    with pytest.raises(KeyUnavailable):
        _bodies(db, ids[:1], chain)
    # Not onto a key under the one-time password: the holder chooses a password first.
    early = _cli(["keys", "recover", "--district", "slps", "--recovery-key", str(out_file),
                  "--user", "admin@slps.example.org"], env, tmp)
    assert early.returncode == 2 and "one-time password" in early.stderr
    own = "a passphrase of my own 2"
    with db.session() as s:
        user = s.get(accounts.StaffUser, installation["user_id"])
        accounts.change_password(s, user, one_time, own, now=utcnow())
    wrong = tmp / "wrong.txt"
    wrong.write_text(text.replace("slps", "stlco-demo"))
    bad = _cli(["keys", "recover", "--district", "slps", "--recovery-key", str(wrong),
                "--user", "admin@slps.example.org"], env, tmp)
    assert bad.returncode == 2
    ok = _cli(["keys", "recover", "--district", "slps", "--recovery-key", str(out_file),
               "--user", "admin@slps.example.org"], env, tmp)
    assert ok.returncode == 0, ok.stderr
    assert _bodies(db, ids, _chain(db, installation["user_id"], own)) \
        == installation["bodies"]


def test_recovery_init_without_district_key_prints_once_and_district_init(installation) -> None:
    db, env, tmp = installation["db"], installation["env"], installation["tmp"]
    out = _cli(["keys", "recovery-init", "--district", "stlco-demo"], env, tmp)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("tipline-recovery-v1:"))
    with db.session() as s:
        key = s.execute(select(ReadKey).where(ReadKey.owner == "district")
                        .order_by(ReadKey.id.desc())).scalars().first()
        grants = s.execute(select(KeyGrant).where(KeyGrant.read_key_id == key.id)).scalars().all()
        assert [g.recovery_key_id is not None for g in grants] == [True]
        district_id = key.owner_id
        chain = keys.recovery_keychain(s, district_id, keys.parse_recovery(line, "stlco-demo"))
        assert key.rid in chain
    dup = _cli(["keys", "district-init", "--district", "stlco-demo"], env, tmp)
    assert dup.returncode == 2 and "already has a read key" in dup.stderr
    unknown = _cli(["keys", "district-init", "--district", "nope"], env, tmp)
    assert unknown.returncode == 2 and "unknown district" in unknown.stderr


def test_embedded_demo_gives_the_demo_admin_keys_and_seals_new_tips(tmp_path, settings) -> None:
    """`tipline run`'s demo seeding: the demo admin holds SLPS's key; a new tip is sealed."""
    from tests.factories import make_tip
    from tipline.app import build_services
    from tipline.cli import _ensure_demo

    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    migrations.upgrade(url)
    local = settings.with_overrides(database_url=url)
    svc = build_services(local, queue=RecordingQueue())
    try:
        email, password = _ensure_demo(svc, local)
        with svc.db.session() as s:
            user = accounts.find_user(s, email)
            assert keys.has_access(s, user) and keys.read_keys_for(s, user)
            receipt = make_tip(s, svc.vault, RecordingQueue(), body="demo CAPYBARA tip",
                               school_code="slps-roosevelt")
            tip = s.get(Tip, receipt.tip_id)
            assert tip.data_key.kek_id == SEALED_ONLY
            chain = keys.keychain_for(s, user.id, keys.unlock_personal_key(s, user, password))
            with using(chain):
                assert tip.messages[0].body == "demo CAPYBARA tip"
    finally:
        svc.db.dispose()
