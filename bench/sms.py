"""Benchmark a burst of signed inbound SMS webhooks against gunicorn + PostgreSQL + Redis.

    .venv/bin/python -m bench sms [--requests 1000] [--concurrency 16] [--followups 0.0]

What it does, all on 127.0.0.1:

1. Creates a fresh PostgreSQL database ``tipline_bench_sms`` (dropped first if it exists),
   migrates it, loads the demo directory, writes a throw-away key file and (unless
   ``--key-file-mode``) gives every district and police agency a read key, so each tip is
   sealed to its audience as in production.
2. Starts gunicorn with ``config/gunicorn.conf.py`` as it is, access log included (its
   production worker count for this machine, or ``--workers``) serving tipline in
   production mode, with Twilio credentials set and a real ``CeleryQueue`` on Redis
   127.0.0.1:6379 db 13 (no worker consumes it: the timed path is the webhook alone).
3. Builds ``--requests`` inbound SMS webhooks with the field set of
   ``shared/twilio/webhook_examples.json``, each signed exactly as Twilio signs it (the SDK's
   ``RequestValidator`` over TIPLINE_PUBLIC_URL + path and every parameter). By default every
   request comes from a different number, i.e. each is a first text that opens a tip (the
   heaviest path: signature check, keyword checks, staff-number check, conversation row,
   triage, school search, sealing, tip + message + routing job + Twilio task, commit,
   routing job and task published to Redis, TwiML reply). ``--followups F`` makes a share F
   of the requests later texts from numbers that already texted.
4. Sends them all at once from ``--concurrency`` client threads (one connection per request,
   as gunicorn's sync workers close each), timing every request, and reports throughput,
   p50/p90/p99/max latency and errors (anything but HTTP 200 with a TwiML <Message>).
5. Checks the database: one tip per first text, one message per request, nothing duplicated.

Afterwards the database is dropped, the Redis keys it created are deleted and gunicorn stops.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

from bench._common import load_average, production_workers
from bench.intake import REPO, Gunicorn, cpu_seconds, postgres_pids, psql

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "tipline_bench_sms"
BENCH_DB_URL = f"postgresql://postgres@127.0.0.1:5432/{BENCH_DB}"
REDIS_URL = "redis://127.0.0.1:6379/13"
PUBLIC_URL = "https://tips.bench.invalid"
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "bench-auth-token-" + "0" * 16
LINE_NUMBER = "+13145550100"

BODIES = [
    "someone said they are bringing a gun to roosevelt tomorrow",
    "there is going to be a fight behind the gym after school on friday",
    "my friend keeps saying she wants to kill herself, she goes to soldan",
    "a kid is selling vapes and pills in the bathroom at vashon",
    "people keep bullying a boy on the bus every morning",
    "hay una pelea planeada mañana en la escuela",
]


def db_url(name: str = BENCH_DB) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def fresh_database(name: str = BENCH_DB, sealed: bool = True) -> None:
    """An empty schema with the demo directory. ``sealed``: every district and police agency
    gets a read key (as once a district's first staff member has signed in), so each tip is
    sealed to its audience as production does; the private halves are dropped."""
    drop_database(name)
    psql(f'CREATE DATABASE "{name}"', PG_ADMIN)
    from sqlalchemy import select

    from tipline import migrations
    from tipline.accounts.keys import create_read_key
    from tipline.crypto.models import Owner
    from tipline.db import Database
    from tipline.directory.loader import load_directory_file
    from tipline.directory.models import District, PoliceAgency

    migrations.upgrade(db_url(name))
    db = Database(db_url(name))
    with db.session() as session:
        load_directory_file(session, REPO / "config" / "directory.demo.yaml")
        if sealed:
            for owner, model in ((Owner.DISTRICT, District), (Owner.AGENCY, PoliceAgency)):
                for owner_id in session.execute(select(model.id)).scalars():
                    create_read_key(session, owner, owner_id)
    db.dispose()


def drop_database(name: str = BENCH_DB) -> None:
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "  # noqa: S608 - our names
         f"WHERE datname = '{name}'", PG_ADMIN)
    psql(f'DROP DATABASE IF EXISTS "{name}"', PG_ADMIN)


def db_counts() -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(BENCH_DB_URL.replace("postgresql://", "postgresql+psycopg://"))
    out = {}
    with engine.connect() as conn:
        for table in ("tips", "messages", "routing_jobs", "sms_conversations", "inbound_events",
                      "telephony_tasks"):
            query = text(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed names
            out[table] = int(conn.execute(query).scalar_one())
    engine.dispose()
    return out


def example_fields() -> dict[str, str]:
    """The inbound SMS example body from the shared webhook field sets."""
    import json

    shared = Path(os.environ.get("TIPLINE_TEST_TWILIO_SPEC",
                                 REPO.parent / "shared" / "twilio" / "x.json")).parent
    path = shared / "webhook_examples.json"
    if not path.exists():
        raise SystemExit(f"webhook examples not found at {path} (set TIPLINE_TEST_TWILIO_SPEC)")
    data: dict[str, str] = json.loads(path.read_text())["webhooks"]["sms_inbound"]["example"]
    return dict(data)


def build_requests(n: int, followups: float, seed: int = 7,
                   first_number: int = 0) -> list[tuple[bytes, str, bool]]:
    """(form body, signature, is_first_text) for n webhooks, each with its own MessageSid."""
    from twilio.request_validator import RequestValidator

    rng = random.Random(seed)
    validator = RequestValidator(AUTH_TOKEN)
    base = example_fields()
    base["To"] = LINE_NUMBER
    out: list[tuple[bytes, str, bool]] = []
    numbers: list[str] = []
    for i in range(n):
        first = not numbers or rng.random() >= followups
        if first:
            number = f"+1555{first_number + i:07d}"  # fictional 555 numbers, one per reporter
            numbers.append(number)
            body = rng.choice(BODIES)
        else:
            number = rng.choice(numbers)
            body = "it is near the main entrance, room 114"
        sid = f"SM{i:08x}{rng.getrandbits(96):024x}"
        params = {**base, "MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid,
                  "From": number, "Body": body}
        signature = validator.compute_signature(PUBLIC_URL + "/twilio/sms", params)
        out.append((urlencode(params).encode(), signature, first))
    return out


def fire(port: int, requests: list[tuple[bytes, str, bool]], concurrency: int
         ) -> tuple[list[float], list[str], float]:
    """Send every request from ``concurrency`` threads; (latencies s, errors, wall time s)."""
    lock = threading.Lock()
    index = iter(range(len(requests)))
    latencies: list[float] = []
    errors: list[str] = []
    start_gate = threading.Barrier(concurrency)

    def worker() -> None:
        start_gate.wait()
        while True:
            with lock:
                i = next(index, None)
            if i is None:
                return
            body, sig, _ = requests[i]
            t0 = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
                conn.request("POST", "/twilio/sms", body=body, headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": sig, "Connection": "close"})
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                ok = resp.status == 200 and b"<Message" in data
                problem = None if ok else f"HTTP {resp.status}: {data[:80]!r}"
            except OSError as exc:
                problem = f"{type(exc).__name__}"
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
                if problem:
                    errors.append(problem)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t_start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors, time.perf_counter() - t_start


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def redis_keys(url: str = REDIS_URL) -> set[bytes]:
    import redis

    return set(redis.Redis.from_url(url).keys("*"))


def clean_redis(before: set[bytes], url: str = REDIS_URL) -> None:
    import redis

    client = redis.Redis.from_url(url)
    new = [k for k in client.keys("*") if k not in before]
    if new:
        client.delete(*new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--followups", type=float, default=0.0,
                        help="share of requests that are later texts from an earlier number")
    parser.add_argument("--warmup", type=int, default=50, help="untimed requests first")
    parser.add_argument("--key-file-mode", action="store_true",
                        help="no district read keys: tips stay under the key file (before "
                             "sealing); the default seals every tip as production does")
    parser.add_argument("--workers", type=int, default=0,
                        help="gunicorn sync workers (default: the production rule of "
                             "config/gunicorn.conf.py for this machine)")
    args = parser.parse_args()
    args.workers = args.workers or production_workers()
    print(f"load average before: {load_average()}", flush=True)

    from tipline.crypto import KeyRing, write_key_file

    workdir = Path(tempfile.mkdtemp(prefix="tipline-bench-sms-"))
    key_file = workdir / "keys.json"
    write_key_file(key_file, KeyRing.generate())
    (workdir / "none.env").write_text("")
    fresh_database(sealed=not args.key_file_mode)
    redis_before = redis_keys()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TIPLINE_", "TWILIO_"))},
        "TIPLINE_CONFIG_FILE": str(workdir / "none.env"),
        "TIPLINE_MODE": "production",
        "TIPLINE_DATABASE_URL": BENCH_DB_URL,
        "TIPLINE_BROKER_URL": REDIS_URL,
        "TIPLINE_SECRET_KEY": "s" * 48,
        "TIPLINE_KEY_FILE": str(key_file),
        "TIPLINE_PUBLIC_URL": PUBLIC_URL,
        "TIPLINE_RATELIMIT_STORAGE_URL": "memory://",
        "TIPLINE_LOG_LEVEL": "WARNING",
        "TIPLINE_DEMO_DATA": "false",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TIPLINE_TWILIO_FROM_NUMBER": LINE_NUMBER,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    warm = build_requests(args.warmup, 0.0, seed=1, first_number=9000000) if args.warmup else []
    timed = build_requests(args.requests, args.followups, seed=2, first_number=7000000)
    firsts = sum(1 for _, _, first in timed if first)
    server = Gunicorn("tipline.wsgi:app", env, workdir, workers=args.workers)
    try:
        if warm:
            fire(server.port, warm, min(args.concurrency, 8))
        before = db_counts()
        pids, pg = server.workers(), postgres_pids()
        cpu0, pg0, client0 = cpu_seconds(pids), cpu_seconds(pg), time.process_time()
        latencies, errors, wall = fire(server.port, timed, args.concurrency)
        cpu, pg_cpu = cpu_seconds(pids) - cpu0, cpu_seconds(pg) - pg0
        client_cpu = time.process_time() - client0
        after = db_counts()
    finally:
        server.stop()
        clean_redis(redis_before)
        drop_database()
        shutil.rmtree(workdir, ignore_errors=True)

    n = len(latencies)
    ms = [x * 1000 for x in latencies]
    print(f"\nPOST /twilio/sms, {n} signed webhooks ({firsts} first texts opening a tip, "
          f"{n - firsts} later texts), concurrency {args.concurrency}")
    print(f"gunicorn: {args.workers} sync workers (config/gunicorn.conf.py, access log on), "
          "PostgreSQL + Redis broker on 127.0.0.1")
    print(f"throughput   {n / wall:8.1f} req/s  ({wall:.2f} s wall)")
    print(f"latency ms   p50 {percentile(ms, 50):.1f}  p90 {percentile(ms, 90):.1f}  "
          f"p99 {percentile(ms, 99):.1f}  max {max(ms):.1f}  mean {statistics.fmean(ms):.1f}")
    print(f"errors       {len(errors)}" + (f"  (first: {errors[0]})" if errors else ""))
    print(f"server CPU   {1000 * cpu / n:.2f} ms/req (gunicorn workers) + "
          f"{1000 * pg_cpu / n:.2f} ms/req (all PostgreSQL processes); this Python client "
          f"{1000 * client_cpu / n:.2f} ms/req on the same CPUs")
    grown = {k: after[k] - before[k] for k in after}
    print(f"stored       tips +{grown['tips']} (expected {firsts}), messages "
          f"+{grown['messages']} (expected {n}), routing jobs +{grown['routing_jobs']}, "
          f"Twilio tasks +{grown['telephony_tasks']}")
    p99 = percentile(ms, 99)
    verdict = "MET" if p99 <= 100 and not errors else "NOT MET"
    print(f"target p99 <= 100 ms and 0 errors: {verdict} (p99 {p99:.1f} ms, "
          f"{len(errors)} errors)")
    if grown["tips"] != firsts or grown["messages"] < n:
        print("WARNING: stored rows do not match the requests sent")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
