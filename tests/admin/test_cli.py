"""`tipline audit verify` walks the whole log and fails loudly on a changed entry."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import text

from tipline import migrations
from tipline.audit.services import record
from tipline.db import Database


def _cli(args: list[str], url: str, cwd) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIPLINE_")}
    env.update({"TIPLINE_DATABASE_URL": url, "TIPLINE_DATA_DIR": str(cwd)})
    return subprocess.run([sys.executable, "-m", "tipline.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


def test_audit_verify_ok_then_broken(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'a.sqlite3'}"
    migrations.upgrade(url)
    db = Database(url)
    with db.session() as s:
        ids = [record(s, "e", actor="cli", detail={"n": n}).id for n in range(5)]
    ok = _cli(["audit", "verify"], url, tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "audit log OK: 5 entries verified" in ok.stdout
    with db.engine.begin() as conn:
        conn.execute(text("""UPDATE audit_events SET detail = '{"n": 7}' WHERE id = :i"""),
                     {"i": ids[2]})
    db.dispose()
    bad = _cli(["audit", "verify"], url, tmp_path)
    assert bad.returncode == 1
    assert f"BROKEN at entry {ids[2]}: entry hash does not match its content" in bad.stderr


def test_users_add_makes_an_installation_admin_without_a_district(tmp_path, key_file) -> None:
    from click.testing import CliRunner
    from sqlalchemy import select

    from tipline.accounts.models import StaffUser
    from tipline.cli import main

    url = f"sqlite:///{tmp_path / 'u.sqlite3'}"
    migrations.upgrade(url)
    env = {"TIPLINE_DATA_DIR": str(tmp_path), "TIPLINE_DATABASE_URL": url,
           "TIPLINE_KEY_FILE": str(key_file), "TIPLINE_MODE": "embedded"}
    runner = CliRunner()
    refused = runner.invoke(main, ["users", "add", "it@x.example.org", "--role",
                                   "installation_admin", "--district", "slps"],
                            input="a long enough password 1\n", env=env)
    assert refused.exit_code == 2
    assert "an installation administrator belongs to no district" in refused.output
    done = runner.invoke(main, ["users", "add", "it@x.example.org", "--role",
                                "installation_admin"], input="a long enough password 1\n",
                         env=env)
    assert done.exit_code == 0, done.output
    db = Database(url)
    with db.session() as s:
        user = s.execute(select(StaffUser).where(
            StaffUser.email == "it@x.example.org")).scalar_one()
        assert (user.role, user.district_id, user.schools) == ("installation_admin", None, [])
    db.dispose()
