"""`tipline run` stops, with its worker and scheduler, within 5 s of SIGTERM or Ctrl+C.

A service manager sends SIGTERM and waits a few seconds before SIGKILL; a person presses
Ctrl+C. Either way nothing may be left behind: a stray worker keeps the SQLite file and the
queue directory busy and would send alerts from a tip line its owner believes stopped.

The worst case is a worker in the middle of a task that waits: here the routing of a fresh tip
waits for the database's write lock, which the test holds (as a backup or a long command
would). Celery's warm shutdown would wait for that task; every task is idempotent and the
sweep re-routes a tip whose routing did not finish, so cutting it short loses nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.e2e.procs import REPO, VENV_BIN, Browserless, base_env, start, wait_for, wait_http
from tests.livesupport import free_port

pytestmark = pytest.mark.slow

STOP_WITHIN = 5.0


def _children() -> dict[int, int]:
    """Every live process's parent, read from /proc (no psutil)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    return parents


def _descendants(pid: int) -> set[int]:
    parents = _children()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _command(launcher: str, port: int, data: Path) -> list[str]:
    args = ["--port", str(port), "--data-dir", str(data)]
    if launcher == "make":  # the README's way: `make run`, make being the signalled parent
        return ["make", "-s", "-C", str(REPO), "run", f"VENV={VENV_BIN.parent}",
                f"ARGS={' '.join(args)}"]
    return [str(VENV_BIN / "tipline"), "run", *args]


@pytest.mark.parametrize("launcher", ["tipline", "make"], ids=["tipline-run", "make-run"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_stops_with_its_children_within_5_seconds(tmp_path, sig: int, launcher: str) -> None:
    """SIGTERM goes to the started process (a service manager's ``kill``); SIGINT as well for
    ``tipline run``, and for ``make run`` to its whole process group, as Ctrl+C in a terminal
    sends it."""
    port = free_port()
    data = tmp_path / "data"
    proc = start(f"{launcher}-run", _command(launcher, port, data), base_env(), tmp_path)
    lock: sqlite3.Connection | None = None
    family: set[int] = set()
    try:
        # A first start creates the database, the key file and the demo admin's keys (Argon2id):
        # seconds on a quiet machine, more on a CI runner busy with the rest of the suite.
        wait_http(f"http://127.0.0.1:{port}", timeout=120, proc=proc)
        # The worker (Celery with its embedded scheduler) is a child of `tipline run`; let it
        # start consuming, then give it a task that waits on the database's write lock.
        wait_for(lambda: _descendants(proc.popen.pid), 30, "the worker process")
        time.sleep(3)
        status, page = Browserless(f"http://127.0.0.1:{port}").submit_tip("a knife at school")
        assert status == 200, page[:300]
        lock = sqlite3.connect(data / "tipline.sqlite3", isolation_level=None, timeout=10)
        lock.execute("BEGIN IMMEDIATE")
        time.sleep(1.5)  # the worker picks the routing task up and waits for the lock
        family = _descendants(proc.popen.pid)
        assert family, "tipline run started no worker"

        t0 = time.monotonic()
        if launcher == "make" and sig == signal.SIGINT:
            os.killpg(proc.popen.pid, sig)  # the terminal's foreground group
        else:
            os.kill(proc.popen.pid, sig)
        deadline = t0 + STOP_WITHIN
        while time.monotonic() < deadline and (
            proc.popen.poll() is None or any(_alive(p) for p in family)
        ):
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        left = sorted(p for p in family if _alive(p))
        assert proc.popen.poll() is not None, (
            f"tipline run still running {elapsed:.1f}s after {signal.Signals(sig).name}")
        assert not left, f"children {left} still running {elapsed:.1f}s after the signal"
        assert proc.popen.returncode in (0, -sig, 128 + sig), proc.output()[-2000:]
    finally:
        if lock is not None:
            lock.close()
        for pid in family | _descendants(proc.popen.pid) | {proc.popen.pid}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.popen.wait(timeout=10)
    assert "Traceback" not in proc.output(), proc.output()[-3000:]
