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
