"""Production shape on this machine: gunicorn + PostgreSQL + Redis + a separate Celery worker.

A private redis-server is started for this test so it can be stopped and restarted without
disturbing anything else. With Redis stopped, tips are still accepted (the commit comes
first); when it returns, the sweep gets every one of them routed, none twice.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.conftest import DEMO_DIRECTORY, PG_URL
from tests.e2e.procs import (
    REPO,
    VENV_BIN,
    Browserless,
    Proc,
    Supervised,
    base_env,
    receipt_code,
    start,
    start_redis,
    wait_for,
    wait_http,
)
from tests.livesupport import create_fresh_database, free_port
from tipline.crypto import KeyRing, write_key_file
from tipline.db import make_engine

pytestmark = pytest.mark.slow

CLIENT = "127.0.0.9"
MARK = "OCELOT-3390"


def test_tips_survive_a_redis_outage_and_are_routed_once(tmp_path) -> None:
    db_url = str(make_url(PG_URL).set(database=make_url(PG_URL).database + "_e2e"))
    create_fresh_database(db_url)
    redis_proc, redis_port = start_redis(tmp_path)
    web_port = free_port()
    key_file = tmp_path / "keys.json"
    write_key_file(key_file, KeyRing.generate())
    env = base_env(
        TIPLINE_MODE="test",
        TIPLINE_DATABASE_URL=db_url,
        TIPLINE_BROKER_URL=f"redis://127.0.0.1:{redis_port}/0",
        TIPLINE_KEY_FILE=str(key_file),
        TIPLINE_SECRET_KEY="e" * 40,
        TIPLINE_DATA_DIR=str(tmp_path),
        TIPLINE_PUBLIC_URL=f"http://127.0.0.1:{web_port}",
        TIPLINE_SWEEP_INTERVAL_SECONDS="2",
        TIPLINE_SWEEP_GRACE_SECONDS="3",
    )
    subprocess.run([str(VENV_BIN / "tipline"), "directory", "load", str(DEMO_DIRECTORY)],
                   env=env, check=True, timeout=60, capture_output=True)
    web = start("gunicorn", [str(VENV_BIN / "gunicorn"), "-c", str(REPO / "config" /
                "gunicorn.conf.py"), "--bind", f"127.0.0.1:{web_port}", "--workers", "2",
                "tipline.wsgi:app"], env, tmp_path)
    worker = Supervised("worker", [str(VENV_BIN / "celery"), "-A", "workers.celery_app",
                                   "worker", "--beat", "--schedule", str(tmp_path / "beat"),
                                   "--concurrency", "2", "--loglevel", "INFO",
                                   "--without-gossip", "--without-mingle"], env, tmp_path)
    engine = make_engine(db_url)
    procs: list[Proc | Supervised] = [web, worker, redis_proc]
    try:
        wait_http(f"http://127.0.0.1:{web_port}", timeout=60)
        client = Browserless(f"http://127.0.0.1:{web_port}", source=CLIENT)

        # 1. Normal operation: routed by the separate worker within seconds.
        t0 = time.monotonic()
        status, page = client.submit_tip(f"{MARK} first tip: a gun in locker 12")
        assert status == 200 and receipt_code(page)

        def all_sent() -> bool:
            with engine.connect() as c:
                statuses = c.execute(text("SELECT status FROM alert_deliveries")).scalars().all()
            return bool(statuses) and set(statuses) == {"sent"}

        wait_for(all_sent, 20, "every one of the first tip's alerts")
        first_latency = time.monotonic() - t0
        assert first_latency < 10

        # 2. Redis goes away: tips are still accepted, quickly.
        redis_proc.stop()
        durations = []
        for i in range(5):
            t = time.monotonic()
            status, page = client.submit_tip(f"{MARK} outage tip {i}: fight planned Friday",
                                             category="threat")
            durations.append(time.monotonic() - t)
            assert status == 200 and receipt_code(page), page[:300]
        assert max(durations) < 5, durations
        with engine.connect() as c:
            pending = c.execute(text(
                "SELECT count(*) FROM routing_jobs WHERE status='pending'")).scalar()
        assert pending == 5

        # 3. Redis returns (same port): the sweep re-sends, every tip is routed exactly once.
        redis_proc, _ = start_redis(tmp_path, port=redis_port)
        procs.append(redis_proc)

        def all_routed() -> bool:
            with engine.connect() as c:
                jobs = c.execute(text("SELECT status FROM routing_jobs")).scalars().all()
                undelivered = c.execute(text(
                    "SELECT count(*) FROM alert_deliveries WHERE status <> 'sent'")).scalar()
            return len(jobs) == 6 and set(jobs) == {"done"} and undelivered == 0

        wait_for(all_routed, 90, "every tip routed after Redis returned", interval=0.5)
        with engine.connect() as c:
            per_tip = Counter(c.execute(text(
                "SELECT tip_id FROM dispatches")).scalars().all())
            outbox = Counter(c.execute(text(
                "SELECT delivery_id FROM outbox")).scalars().all())
            deliveries = c.execute(text("SELECT count(*) FROM alert_deliveries")).scalar()
            attempts = c.execute(text("SELECT max(attempts) FROM routing_jobs")).scalar()
        assert len(per_tip) == 6 and all(n >= 1 for n in per_tip.values())
        assert attempts == 1  # each job routed once
        assert len(outbox) == deliveries and max(outbox.values()) == 1  # each alert once

        # 4. Nothing readable in a database dump or in the logs.
        url = make_url(db_url)
        dump = subprocess.run(
            ["pg_dump", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432),
             "-U", url.username or "postgres", url.database or ""],
            capture_output=True, text=True, check=True, timeout=120,
        ).stdout
        assert "CREATE TABLE public.tips" in dump
        assert MARK not in dump and "locker 12" not in dump
    finally:
        engine.dispose()
        for p in procs:
            p.stop()
    logs = web.output() + worker.output()
    assert "GET /report" in web.output()  # the access log is on...
    assert CLIENT not in logs and "tipline-e2e-agent" not in logs  # ...without who asked
    assert MARK not in logs
