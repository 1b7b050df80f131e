"""A long fuzz campaign over every route, signed in as each role: counts by status.

    .venv/bin/python -m bench fuzz [--requests 20000] [--seed N] [--examples 5]
    make fuzz                       (the same, with ARGS="--requests ...")

What it does, in-process (Flask test client, no network):

1. Creates a fresh PostgreSQL database ``tipline_bench_fuzz`` (dropped first if it exists),
   migrates it, loads the demo directory, makes one account per role and a few tips.
2. Builds the app with ``create_app`` as in production (real commits), signs every actor in
   the real way and scrapes the forms each one sees (``tests/web/fuzzing.py``).
3. Sends ``--requests`` requests drawn by Hypothesis (the same strategy as
   ``tests/web/test_fuzz.py``, without stopping at the first failure) and checks each: no 5xx,
   nothing logged at ERROR, and a refused request changed no table.
4. Prints the machine's load average before and after, the counts by status code, and the
   number of problems of each kind with the first examples; drops the database. Exit status
   1 if there was any problem.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import text

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "tipline_bench_fuzz"
BENCH_URL = f"postgresql://postgres@127.0.0.1:5432/{BENCH_DB}"


def _admin(statements: list[str]) -> None:
    from tipline.db import make_engine

    admin = make_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": BENCH_DB})
        for statement in statements:
            conn.execute(text(statement))
    admin.dispose()


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def _build(tmp: Path) -> tuple[Any, Any]:
    from tests.twilio_support import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM_NUMBER
    from tests.web import fuzzing
    from tipline import migrations
    from tipline.app import create_app
    from tipline.crypto import KeyRing, write_key_file
    from tipline.directory.loader import load_directory_file
    from tipline.jobs import RecordingQueue
    from tipline.settings import Settings

    _admin([f'DROP DATABASE IF EXISTS "{BENCH_DB}"', f'CREATE DATABASE "{BENCH_DB}"'])
    migrations.upgrade(BENCH_URL)
    write_key_file(tmp / "keys.json", KeyRing.generate())
    settings = Settings(
        mode="test", data_dir=tmp, database_url=BENCH_URL, broker_url="memory://",
        key_file=tmp / "keys.json", secret_key="f" * 40, public_url="https://tips.example.org",
        ratelimit_storage_url="memory://", demo_data=False, log_level="WARNING",
        twilio_account_sid=TEST_ACCOUNT_SID, twilio_auth_token=TEST_AUTH_TOKEN,
        twilio_from_number=TEST_FROM_NUMBER, trusted_proxy_hops=1)
    queue = RecordingQueue()
    app = create_app(settings, queue=queue)
    from flask.logging import default_handler

    for handler in [*logging.getLogger().handlers, default_handler]:  # no traceback per 500:
        handler.setLevel(logging.CRITICAL + 1)  # the summary has the first examples
    svc = app.extensions["tipline"]
    with svc.db.session() as session:
        load_directory_file(session, REPO / "config" / "directory.demo.yaml")
    with svc.db.session() as session:
        seeded = fuzzing.seed(session, svc.vault, queue)
        world = fuzzing.prepare(app, session, seeded)
    return app, world


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed (default: random)")
    parser.add_argument("--examples", type=int, default=5, help="problem examples printed per kind")
    args = parser.parse_args()

    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis import strategies as st

    from tests.web import fuzzing

    print(f"load average before (1/5/15 min): {_load()}")
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="tipline-fuzz-"))
    app, world = _build(tmp)
    print(f"{len(world.routes)} routes, {len(world.actors)} actors "
          f"({', '.join(a.name for a in world.actors)}), "
          f"{sum(map(len, world.forms.values()))} scraped forms; set up in "
          f"{time.monotonic() - started:.0f} s")

    engine = app.extensions["tipline"].db.engine
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    snapshot = fuzzing.Snapshot()
    client = fuzzing.fuzz_client(app)
    statuses: Counter[int] = Counter()
    by_endpoint: dict[str, Counter[str]] = defaultdict(Counter)
    kinds: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    sent = 0

    def run_one(data: st.DataObject) -> None:
        nonlocal sent
        req = data.draw(fuzzing.fuzz_requests(world))
        with fuzzing.capture_errors() as errors:
            outcome = fuzzing.send(app, client, world, req, conn, snapshot, errors)
        sent += 1
        statuses[outcome.status] += 1
        by_endpoint[req.endpoint or "(no route)"][f"{outcome.status // 100}xx"] += 1
        for problem in outcome.problems():
            kind = problem.split(":")[0].split(" yet ")[0]
            kind = "5xx" if kind.startswith("status 5") else kind
            kinds[kind] += 1
            if len(examples.setdefault(kind, [])) < args.examples:
                examples[kind].append(f"{req.describe()}\n      -> {outcome.status}: "
                                      f"{problem[:1500]}")
        if sent % 1000 == 0:
            print(f"  {sent} requests, {time.monotonic() - t0:.0f} s, "
                  f"{sum(kinds.values())} problems", flush=True)

    campaign = settings(max_examples=args.requests, deadline=None, database=None,
                        phases=[Phase.generate], suppress_health_check=list(HealthCheck),
                        derandomize=False)(given(data=st.data())(run_one))
    if args.seed is not None:
        campaign = seed(args.seed)(campaign)
    t0 = time.monotonic()
    try:
        campaign()
    finally:
        elapsed = time.monotonic() - t0
        conn.close()
        app.extensions["tipline"].db.dispose()
        _admin([f'DROP DATABASE IF EXISTS "{BENCH_DB}"'])

    print(f"\n{sent} requests in {elapsed:.0f} s ({sent / max(elapsed, 1e-9):.0f}/s)")
    print("by status: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    print("by endpoint (2xx/3xx/4xx/5xx):")
    for endpoint, counts in sorted(by_endpoint.items()):
        print(f"  {endpoint:34} " + "/".join(str(counts[f"{c}xx"]) for c in (2, 3, 4, 5)))
    fives = sum(n for s, n in statuses.items() if s >= 500)
    print(f"5xx: {fives}")
    print("problems: " + (", ".join(f"{k}: {n}" for k, n in kinds.most_common()) or "none"))
    for kind, found in examples.items():
        print(f"\nfirst examples of {kind}:")
        for line in found:
            print(f"  - {line}")
    print(f"\nload average after: {_load()}")
    return 1 if kinds else 0


if __name__ == "__main__":
    sys.exit(main())
