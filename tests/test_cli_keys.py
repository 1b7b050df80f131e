"""`tipline keys rotate` re-wraps data keys without touching content; `retire` drops old keys."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import select

from tipline import crypto, migrations
from tipline.crypto import KeyRing, Vault, load_key_file, write_key_file
from tipline.db import Database
from tipline.jobs import RecordingQueue
from tipline.tips.models import DataKey, Tip


def _cli(args, env_extra, cwd):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("TIPLINE_")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "tipline.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


def test_rotate_then_retire_keeps_every_tip_readable(tmp_path) -> None:
    from tests.factories import make_tip

    url = f"sqlite:///{tmp_path / 'k.sqlite3'}"
    key_file = tmp_path / "keys.json"
    ring = KeyRing.generate()
    write_key_file(key_file, ring)
    migrations.upgrade(url)
    vault = Vault(ring)
    crypto.install(vault)
    db = Database(url)
    bodies = [f"tip number {i} about CAPYBARA-{i}" for i in range(25)]
    with db.session() as s:
        ids = [make_tip(s, vault, RecordingQueue(), body=b).tip_id for b in bodies]
    before = {}
    with db.session() as s:
        for row in s.execute(select(DataKey)).scalars():
            before[row.id] = row
    env = {"TIPLINE_DATABASE_URL": url, "TIPLINE_KEY_FILE": str(key_file),
           "TIPLINE_DATA_DIR": str(tmp_path)}

    out = _cli(["keys", "rotate", "--batch", "7"], env, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "re-wrapped 25 data keys" in out.stdout
    new_ring = load_key_file(key_file)
    assert new_ring.active_id != ring.active_id and ring.active_id in new_ring.keks

    again = _cli(["keys", "rotate"], env, tmp_path)  # nothing left: a fresh rotation starts
    assert again.returncode == 0 and "new active key" in again.stdout

    retire = _cli(["keys", "retire"], env, tmp_path)
    assert retire.returncode == 0 and ring.active_id in retire.stdout
    final = load_key_file(key_file)
    assert ring.active_id not in final.keks

    crypto.install(Vault(final))
    with db.session() as s:
        got = [s.get(Tip, i).messages[0].body for i in ids]
        kinds = {row.kek_id for row in s.execute(select(DataKey)).scalars()}
    assert got == bodies
    assert kinds == {final.active_id}
    db.dispose()


def test_keys_init_refuses_to_overwrite(tmp_path) -> None:
    path = tmp_path / "k.json"
    first = _cli(["keys", "init", "--key-file", str(path)], {}, tmp_path)
    assert first.returncode == 0 and path.exists()
    second = _cli(["keys", "init", "--key-file", str(path)], {}, tmp_path)
    assert second.returncode == 2 and "refusing to overwrite" in second.stderr


def test_shred_destroys_content(tmp_path) -> None:
    from tests.factories import make_tip

    url = f"sqlite:///{tmp_path / 's.sqlite3'}"
    key_file = tmp_path / "keys.json"
    ring = KeyRing.generate()
    write_key_file(key_file, ring)
    migrations.upgrade(url)
    vault = Vault(ring)
    crypto.install(vault)
    db = Database(url)
    with db.session() as s:
        r = make_tip(s, vault, RecordingQueue(), body="ARMADILLO")
    env = {"TIPLINE_DATABASE_URL": url, "TIPLINE_KEY_FILE": str(key_file),
           "TIPLINE_DATA_DIR": str(tmp_path)}
    out = _cli(["tips", "shred", r.reference, "--yes"], env, tmp_path)
    assert out.returncode == 0, out.stderr
    with db.session() as s:
        tip = s.get(Tip, r.tip_id)
        assert tip.data_key_id is None
        assert s.execute(select(DataKey)).first() is None
    db.dispose()
