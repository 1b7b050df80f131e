"""A live tipline served on localhost against its own PostgreSQL database, for browser tests.

Unlike unit tests, a live server runs in another thread and commits for real, so it uses a
separate database (``<test db>_live``), migrated once per run and emptied between modules.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from tipline import migrations
from tipline.crypto import KeyRing, write_key_file
from tipline.db import make_engine
from tipline.jobs import RecordingQueue
from tipline.settings import Settings

CHROMIUM = os.environ.get("TIPLINE_TEST_CHROMIUM", "/usr/bin/chromium")
AXE = os.environ.get(
    "TIPLINE_TEST_AXE",
    str(Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"),
)
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


def live_database_url(base_url: str) -> str:
    url = make_url(base_url)
    return str(url.set(database=f"{url.database}_live")).replace("***", url.password or "")


def create_fresh_database(url: str) -> None:
    target = make_url(url)
    admin = make_engine(str(target.set(database="postgres")), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": target.database})
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}"'))
        conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    migrations.upgrade(url)


def drop_database(url: str) -> None:
    """Drop a database a test created for itself (one conftest does not drop at the end)."""
    target = make_url(url)
    admin = make_engine(str(target.set(database="postgres")), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": target.database})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}"'))
    finally:
        admin.dispose()


def truncate_all(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        tables = [r[0] for r in conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname='public' "
            "AND tablename <> 'alembic_version'"))]
        if tables:
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables)
                              + " RESTART IDENTITY CASCADE"))
    engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    app: Any
    queue: RecordingQueue
    settings: Settings
    _server: Any

    def stop(self) -> None:
        self._server.close()


def start_live_server(database_url: str, tmp: Path, **settings_overrides: Any) -> LiveServer:
    from waitress.server import create_server

    from tipline.app import create_app

    key_file = tmp / "keys.json"
    if not key_file.exists():
        write_key_file(key_file, KeyRing.generate())
    port = free_port()
    settings = Settings(
        mode="test", data_dir=tmp, database_url=database_url, broker_url="memory://",
        key_file=key_file, secret_key="l" * 40, public_url=f"http://127.0.0.1:{port}",
        ratelimit_storage_url="memory://", demo_data=False,
    ).with_overrides(**settings_overrides)
    queue = RecordingQueue()
    app = create_app(settings, queue=queue)
    server = create_server(app, host="127.0.0.1", port=port, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    return LiveServer(f"http://127.0.0.1:{port}", app, queue, settings, server)


def launch_chromium(playwright: Any, javascript: bool = True) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                      headless=True)


def axe_violations(page: Any, impacts: tuple[str, ...] = ("serious", "critical")) -> list[Any]:
    """Run axe-core (from node_modules) in the page; return serious/critical violations."""
    # Evaluated through the DevTools protocol: an injected <script> would be refused by the CSP.
    page.evaluate(Path(AXE).read_text(encoding="utf-8"))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v.get("impact") in impacts]


def iter_none() -> Iterator[None]:
    yield None


def staff_sign_in(page: Any, base: str, email: str, password: str, secret: str) -> None:
    """Sign a staff account in through the real pages: password, then the TOTP code (the
    next step's code if this one was just used)."""
    import re

    from tests.staffsupport import current_code

    page.goto(base + "/staff/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/staff/login/code$"))
    for ahead in (0, 1):
        page.fill("#code", current_code(secret, ahead=ahead))
        page.click("main button[type=submit]")
        page.wait_for_load_state()
        if not page.url.endswith("/staff/login/code"):
            return
    raise AssertionError("the code was refused")
