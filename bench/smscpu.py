"""Server CPU, SQL statements and Redis round trips per signed first text, in one process.

    .venv/bin/python -m bench smscpu [--requests 300] [--rounds 3] [--profile FILE]
                                     [--show-sql] [--key-file-mode]

``bench sms`` gives the webhook's latency under gunicorn, which only a quiet machine measures
well. This one calls the WSGI app directly with prepared, signed ``POST /twilio/sms`` bodies
(each from a new number, so each opens a tip: the heaviest path) and counts, per text:

- the calling thread's CPU time (``time.thread_time``; it still grows when other processes
  share the cores: compare runs made at a similar load average, which is printed);
- SQL statements sent (the engine's ``before_cursor_execute``) and transaction ends (commits
  and rollbacks), each a round trip to PostgreSQL;
- Redis round trips (every command or pipeline written to a redis-py connection: the Celery
  publish after commit, and anything else that talks to Redis).

``--profile FILE`` also runs cProfile with the thread-CPU timer over the measured texts, writes
the stats to FILE and prints the largest entries; ``--show-sql`` prints the statements of one
first text. Like ``bench sms`` it uses its own PostgreSQL database (``tipline_bench_smscpu``,
with the demo directory and, unless ``--key-file-mode``, a read key for every district and
police agency, so each tip is sealed to its audience as in production) and Redis db 14, and
drops and deletes what it made.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import statistics
import time
from collections import Counter
from typing import Any

from bench._common import bench_workdir, load_average, timed_call, wsgi_environ
from bench.sms import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    LINE_NUMBER,
    PUBLIC_URL,
    build_requests,
    clean_redis,
    db_url,
    drop_database,
    fresh_database,
    redis_keys,
)

BENCH_DB = "tipline_bench_smscpu"
REDIS_URL = "redis://127.0.0.1:6379/14"


class Counts:
    """Statements, transaction ends and Redis round trips seen since the last ``take``."""

    def __init__(self) -> None:
        self.statements = 0
        self.ends = 0
        self.redis = 0
        self.sql: list[str] = []
        self.keep_sql = False

    def take(self) -> tuple[int, int, int]:
        out = (self.statements, self.ends, self.redis)
        self.statements = self.ends = self.redis = 0
        return out


def _instrument(engine: Any, counts: Counts) -> None:
    from redis.connection import AbstractConnection
    from sqlalchemy import event

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        counts.statements += 1
        if counts.keep_sql:
            counts.sql.append(" ".join(statement.split())[:160])

    @event.listens_for(engine, "commit")
    def _commit(_conn: Any) -> None:
        counts.ends += 1
        if counts.keep_sql:
            counts.sql.append("COMMIT")

    @event.listens_for(engine, "rollback")
    def _rollback(_conn: Any) -> None:
        counts.ends += 1
        if counts.keep_sql:
            counts.sql.append("ROLLBACK")

    original = AbstractConnection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        counts.redis += 1
        if counts.keep_sql:
            counts.sql.append("REDIS")
        original(self, command, check_health)

    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]


def _environ(body: bytes, signature: str) -> dict[str, Any]:
    return wsgi_environ("POST", "/twilio/sms", body, "application/x-www-form-urlencoded",
                        HTTP_X_TWILIO_SIGNATURE=signature)


def _call(app: Any, environ: dict[str, Any]) -> float:
    """The calling thread's CPU seconds for one webhook; fails on anything but a TwiML reply."""
    return timed_call(app, environ, b"<Message")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="first texts per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--profile", metavar="FILE", help="cProfile (thread CPU) to FILE")
    parser.add_argument("--show-sql", action="store_true",
                        help="print the statements and round trips of one first text")
    parser.add_argument("--key-file-mode", action="store_true",
                        help="no district read keys: tips stay under the key file")
    args = parser.parse_args()
    print(f"load average before: {load_average()}", flush=True)

    workdir, key_file = bench_workdir("tipline-bench-smscpu-")
    fresh_database(BENCH_DB, sealed=not args.key_file_mode)
    redis_before = redis_keys(REDIS_URL)
    saved = dict(os.environ)
    os.environ.update({
        "TIPLINE_CONFIG_FILE": str(workdir / "none.env"), "TIPLINE_MODE": "production",
        "TIPLINE_DATABASE_URL": db_url(BENCH_DB), "TIPLINE_BROKER_URL": REDIS_URL,
        "TIPLINE_SECRET_KEY": "s" * 48, "TIPLINE_KEY_FILE": str(key_file),
        "TIPLINE_PUBLIC_URL": PUBLIC_URL, "TIPLINE_RATELIMIT_STORAGE_URL": "memory://",
        "TIPLINE_LOG_LEVEL": "WARNING", "TIPLINE_DEMO_DATA": "false",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TIPLINE_TWILIO_FROM_NUMBER": LINE_NUMBER,
    })
    counts = Counts()
    cpu: list[float] = []
    per_text: Counter[tuple[int, int, int]] = Counter()
    profiler = cProfile.Profile(time.thread_time) if args.profile else None
    try:
        from tipline.app import create_app
        from tipline.settings import load_settings

        app = create_app(load_settings())
        _instrument(app.extensions["tipline"].db.engine, counts)
        total = args.warmup + args.rounds * args.requests + 1
        prepared = [_environ(body, sig) for body, sig, _ in
                    build_requests(total, 0.0, seed=3, first_number=5000000)]
        for environ in prepared[:args.warmup]:  # caches, prepared statements, connections
            _call(app, environ)
        if args.show_sql:
            counts.take()
            counts.keep_sql = True
            _call(app, prepared[args.warmup])
            counts.keep_sql = False
            print("\none first text, in order:")
            for line in counts.sql:
                print("  " + line)
        medians: list[float] = []
        start = args.warmup + 1
        for r in range(args.rounds):
            spent = []
            for environ in prepared[start + r * args.requests:start + (r + 1) * args.requests]:
                counts.take()
                if profiler:
                    profiler.enable()
                spent.append(_call(app, environ))
                if profiler:
                    profiler.disable()
                per_text[counts.take()] += 1
            cpu.extend(spent)
            medians.append(1000 * statistics.median(spent))
    finally:
        os.environ.clear()
        os.environ.update(saved)
        clean_redis(redis_before, REDIS_URL)
        drop_database(BENCH_DB)
        shutil.rmtree(workdir, ignore_errors=True)

    n = len(cpu)
    print(f"\nPOST /twilio/sms in-process, {n} signed first texts ({args.rounds} rounds of "
          f"{args.requests}), {'key-file mode' if args.key_file_mode else 'sealed'}")
    print(f"thread CPU ms per text: median {statistics.median(medians):.2f} (rounds: "
          + " ".join(f"{m:.2f}" for m in medians) + f"), mean {1000 * statistics.fmean(cpu):.2f}")
    for (statements, ends, redis), k in per_text.most_common():
        print(f"per text: {statements} SQL statements + {ends} commit/rollback, "
              f"{redis} Redis round trips ({k} of {n} texts)")
    if profiler:
        profiler.dump_stats(args.profile)
        out = io.StringIO()
        stats = pstats.Stats(args.profile, stream=out)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(25)
        print(out.getvalue())
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
