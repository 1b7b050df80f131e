"""The README's first command, as a district's IT person would try it: `tipline run`.

SQLite, the embedded broker, worker and scheduler, no external service. A web tip must be
routed and its alerts recorded in the outbox within seconds; the database file and the logs
must hold neither the tip's text nor the client's address.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time

import pytest

from tests.e2e.procs import (
    VENV_BIN,
    Browserless,
    base_env,
    child_pids,
    receipt_code,
    start,
    wait_for,
    wait_http,
)
from tests.livesupport import free_port

pytestmark = pytest.mark.slow

SECRET = "WOMBAT-CELERY-8812 has a knife in his backpack"
CLIENT = "127.0.0.7"  # a distinct loopback source address, to look for in the logs


def test_embedded_default_routes_a_web_tip_within_seconds(tmp_path) -> None:
    port = free_port()
    data = tmp_path / "data"
    proc = start("tipline-run", [str(VENV_BIN / "tipline"), "run", "--port", str(port),
                                 "--data-dir", str(data)], base_env(), tmp_path)
    try:
        wait_http(f"http://127.0.0.1:{port}", timeout=120, proc=proc)
        banner = proc.output()
        assert "demo admin:" in banner and f"http://127.0.0.1:{port}/" in banner
        assert (data / "keys.json").stat().st_mode & 0o077 == 0

        client = Browserless(f"http://127.0.0.1:{port}", source=CLIENT)
        t0 = time.monotonic()
        status, page = client.submit_tip(SECRET)
        assert status == 200, page[:400]
        assert receipt_code(page)

        db = data / "tipline.sqlite3"

        def outbox_rows() -> list[tuple[str, str]]:
            with sqlite3.connect(db) as conn:
                return conn.execute("SELECT recipient, body FROM outbox").fetchall()

        rows = wait_for(outbox_rows, 30, "alerts in the outbox")
        elapsed = time.monotonic() - t0
        assert elapsed < 15, f"routing took {elapsed:.1f}s"
        assert all("WOMBAT" not in body for _r, body in rows)
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT status FROM routing_jobs").fetchall() == [("done",)]

        dump = subprocess.run(["sqlite3", str(db), ".dump"], capture_output=True, text=True,
                              check=True, timeout=60).stdout
        assert "CREATE TABLE tips" in dump
        assert "WOMBAT" not in dump and "knife in his backpack" not in dump
    finally:
        proc.stop()
    logs = proc.output()
    assert CLIENT not in logs
    assert "tipline-e2e-agent" not in logs
    assert "WOMBAT" not in logs


def test_embedded_runner_restarts_a_killed_worker(tmp_path) -> None:
    """`tipline run` restarts its worker when it dies, as docker-compose does; a tip sent
    while it was down is routed once the new worker is up (the sweep finds it)."""
    port = free_port()
    data = tmp_path / "data"
    proc = start("tipline-run", [str(VENV_BIN / "tipline"), "run", "--port", str(port),
                                 "--data-dir", str(data)], base_env(), tmp_path)
    try:
        wait_http(f"http://127.0.0.1:{port}", timeout=120, proc=proc)
        [worker] = wait_for(lambda: child_pids(proc.popen.pid), 30, "the worker process")
        os.killpg(worker, signal.SIGKILL)
        client = Browserless(f"http://127.0.0.1:{port}")
        t0 = time.monotonic()
        status, page = client.submit_tip("Tip while the worker is down: a fight on Friday")
        assert status == 200 and receipt_code(page)
        replaced = wait_for(lambda: [p for p in child_pids(proc.popen.pid) if p != worker], 30,
                            "a new worker")
        db = data / "tipline.sqlite3"

        def routed() -> bool:
            with sqlite3.connect(db) as conn:
                jobs = conn.execute("SELECT status FROM routing_jobs").fetchall()
                sent = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
            return jobs == [("done",)] and sent > 0

        wait_for(routed, 60, "the tip routed by the restarted worker")
        took = time.monotonic() - t0
        assert replaced and "restarting it" in proc.output()
        assert took < 30, took
        print(f"embedded: worker killed -> tip routed by the restarted worker in {took:.1f} s")
    finally:
        proc.stop()
