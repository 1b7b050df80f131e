"""Benchmark routing and alert delivery under a surge of tips, and escalation lateness.

    .venv/bin/python -m bench.routing [--rate 50] [--seconds 60] [--concurrency 2]
                                      [--threads N] [--twilio-latency-ms MS]
                                      [--policy FILE | --no-policy]
                                      [--pool 5] [--sender-mps 1] [--cps 1]
                                      [--life-safety 0.1] [--no-network] [--short-code]

What it does, all on 127.0.0.1:

1. Creates a fresh PostgreSQL database ``tipline_bench_routing``, migrates it, loads the demo
   directory and (unless ``--no-policy``) the demo routing policy; writes a throw-away key file.
2. Starts its own ``redis-server`` on a free port (the machine's Redis is not touched), a local
   stand-in for Twilio's REST API that timestamps each request on arrival
   (``tests/routing/twilio_stub.py``; the worker talks to it through the real
   ``RestTwilioGateway`` and the ``twilio`` SDK), ``--concurrency`` Celery worker processes
   (one prefork worker; or, with ``--threads N``, that many workers each running N threads)
   and a separate Celery beat, in production mode. ``--twilio-latency-ms`` makes the
   stand-in answer after that long, as Twilio's API does, so sending threads wait.
3. Surge: creates ``rate`` tips per second for ``seconds`` seconds through the real intake
   service (sealed, committed, routing job published to Redis after commit), a mix of
   categories and schools. For each tip, latency = arrival at the Twilio stand-in of the
   tip's FIRST alert minus the moment just before the tip's commit (so the commit is included),
   overall and per 10 s of the surge.
4. Escalation, twice: in the middle of the surge (half of ``--escalations``) and after it has
   drained, takes routed tips that have a later step waiting, sets their first step's
   acknowledgement deadline to a moment spread over the next 10 s (and their next step's
   planned time an hour later, so only the missed deadline can start it), and measures when
   the next step became active (``activated_at``) and when its first alert reached the Twilio
   stand-in, each minus the deadline.
5. Counts tips not routed (job not ``done``) and tips with no alert handed to Twilio, and
   says where the time to each tip's first alert at Twilio went (commit -> routing task start
   -> the alert's last claim by a delivery task -> arrival at the stand-in; and how many of
   those alerts the pacer held first).
6. Delivery (issue 18; off with ``--no-network``): the stand-in behaves like Twilio after
   accepting (``twilio_stub.Network``): texts go through a Messaging Service whose ``--pool``
   numbers each send ``--sender-mps`` segments a second from their own queue (sticky sender),
   a text whose ValidityPeriod runs out in the queue fails (30036), calls start at most
   ``--cps`` a second, and signed status callbacks arrive after a carrier's (1-4 s) or a
   callee's (3-8 s to answer) delay at a gunicorn running the app, which records
   ``delivered_at``. Reported: tip commit -> first alert delivered (p50/p99) per channel, for
   life-safety tips (``--life-safety``: that share of the tips is severity 4) and the others,
   and the ordinary alerts that waited past their validity without falling back.

The surge's tips repeat six texts, so surge grouping (``tipline.surge``) would fold most of
them into a few alert chains: unless ``--grouping``, the policy is loaded with
``surge_grouping: false`` in every district, so every tip is alerted and delivery is what is
measured. ``--short-code`` paces to senders that carry the surge (one short code at 100
segments/s, 50 calls/s): issue 15's commit -> first alert target measures tipline's own path,
not a long code's queue (docs/performance.md). ``--surge-groups`` instead runs the grouping
scenario (``bench/_surge.py``): grouping quality, and alert counts with and without grouping,
in this process, then exits.

Everything it started is stopped and the database dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import select, text, update  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench._common import load_average  # noqa: E402
from tests.routing.twilio_stub import Network, StubTwilio  # noqa: E402
from tipline import crypto, migrations  # noqa: E402
from tipline.celeryconf import build_celery  # noqa: E402
from tipline.crypto import KeyRing, Vault, write_key_file  # noqa: E402
from tipline.db import make_engine  # noqa: E402
from tipline.directory.loader import load_directory_file  # noqa: E402
from tipline.intake.services import TipSubmission, create_tip  # noqa: E402
from tipline.jobs import CeleryQueue  # noqa: E402
from tipline.routing.models import Dispatch  # noqa: E402
from tipline.settings import Settings  # noqa: E402
from tipline.tips.models import Category, Channel, Severity  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "tipline_bench_routing"
BENCH_DB_URL = f"postgresql://postgres@127.0.0.1:5432/{BENCH_DB}"
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "bench-auth-token-0123456789abcdef"  # noqa: S105 - a local stand-in's token
FROM_NUMBER = "+13145550100"
VENV_BIN = Path(sys.executable).parent

SCHOOLS = ("slps-roosevelt", "slps-soldan", "slps-vashon", "slps-carnahan", "slps-longmiddle",
           "cty-northview", "cty-riverbend", "cty-oakridge")
MIX = (
    (Category.WEAPON, Severity.HIGH, "Someone said there is a gun in a locker"),
    (Category.THREAT, Severity.HIGH, "A fight is planned at the bus stop on Friday"),
    (Category.BULLYING, Severity.MEDIUM, "A group keeps bullying a student online"),
    (Category.SELF_HARM, Severity.HIGH, "My friend says she wants to hurt herself"),
    (Category.SUBSTANCE, Severity.LOW, "Pills are being sold in the bathroom"),
    (Category.FAMILY_CRISIS, Severity.MEDIUM, "A student has been sleeping in a car"),
)


LIFE_SAFETY = (
    (Category.WEAPON, Severity.LIFE_SAFETY, "He showed a gun and said he will use it today"),
    (Category.THREAT, Severity.LIFE_SAFETY, "Someone posted they will shoot people at lunch"),
)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def psql(sql: str, **params: str) -> None:
    engine = make_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as c:
            c.execute(text(sql), params)
    finally:
        engine.dispose()


def fresh_database() -> None:
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n "
         "AND pid <> pg_backend_pid()", n=BENCH_DB)
    psql(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')
    psql(f'CREATE DATABASE "{BENCH_DB}"')
    migrations.upgrade(BENCH_DB_URL)


def drop_database() -> None:
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n "
         "AND pid <> pg_backend_pid()", n=BENCH_DB)
    psql(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    fh = open(log, "ab")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO,
                            start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def wait_port(port: int, timeout: float = 10) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.3)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listening on port {port} after {timeout} s")


CLK_TCK = os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgids: set[int]) -> float:
    """User + system CPU of every process in these process groups (our workers and beat)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in pgids:  # field 5 of stat: the process group
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def postgres_cpu_seconds() -> float:
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1: stat.rindex(")")]
        if name.startswith("postgres"):
            fields = stat.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def pct(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def fmt(values: Sequence[float], unit: str = "ms", scale: float = 1000.0) -> str:
    if not values:
        return "n/a (no samples)"
    d = 0 if unit == "ms" else 1
    return (f"n={len(values)}  p50={pct(values, 50) * scale:.{d}f} {unit}  "
            f"p90={pct(values, 90) * scale:.{d}f} {unit}  "
            f"p99={pct(values, 99) * scale:.{d}f} {unit}  max={max(values) * scale:.{d}f} {unit}"
            f"  mean={statistics.fmean(values) * scale:.{d}f} {unit}")


SERVICE_SID = "MG" + "0" * 32
POOL = tuple(f"+1314555{200 + n:04d}" for n in range(50))

# Ordinary call/text alerts that waited past their validity (+10 s for the carrier or the
# answer): delivered late or still waiting, or failed with no next channel opened. Counted
# apart (:last) for the dispatch's last channel, which has nothing to fall back to.
LATE_ORDINARY = text(
    "SELECT count(*) FROM alert_deliveries a JOIN dispatches d ON d.id = a.dispatch_id "
    "JOIN tips t ON t.id = d.tip_id WHERE d.repeat_every_seconds IS NULL AND t.severity < 4 "
    "AND a.channel IN ('sms', 'voice') AND "
    "((d.channels::jsonb ->> (jsonb_array_length(d.channels::jsonb) - 1)) = a.channel) = :last"
    " AND ((a.delivered_at IS NOT NULL AND a.delivered_at > a.created_at + "
    "make_interval(secs => :v + 10)) OR "
    "(a.status IN ('pending', 'sending', 'sent') AND a.delivered_at IS NULL AND "
    "coalesce(a.sent_at, now()) > a.created_at + make_interval(secs => :v + 10)) OR "
    "(a.status = 'failed' AND d.status IN ('active', 'expired') AND NOT :last "
    "AND NOT EXISTS (SELECT 1 FROM alert_deliveries b WHERE b.dispatch_id = a.dispatch_id "
    "AND b.alert_round = a.alert_round AND b.id > a.id)))")


def delivery_report(engine: Engine, committed: dict[str, float], ordinary_validity: int
                    ) -> list[str]:
    """Tip commit -> first alert delivered, per channel and over any channel, for
    life-safety tips and the others; and the ordinary alerts late without a fallback."""
    with Session(engine) as s:
        rows = s.execute(text(
            "SELECT t.reference, t.severity, a.channel, min(a.delivered_at) FROM "
            "alert_deliveries a JOIN dispatches d ON d.id = a.dispatch_id JOIN tips t ON "
            "t.id = d.tip_id WHERE a.delivered_at IS NOT NULL "
            "GROUP BY t.reference, t.severity, a.channel")).all()
        late = s.execute(LATE_ORDINARY, {"v": ordinary_validity, "last": False}).scalar()
        late_last = s.execute(LATE_ORDINARY, {"v": ordinary_validity, "last": True}).scalar()
        reasons = {str(k): int(v) for k, v in s.execute(text(
            "SELECT coalesce(substr(last_error, 1, 40), '-'), count(*) FROM alert_deliveries "
            "WHERE status = 'failed' GROUP BY 1 ORDER BY 2 DESC LIMIT 6")).all()}
    per: dict[tuple[bool, str], list[float]] = {}
    first: dict[str, float] = {}
    life_of: dict[str, bool] = {}
    for ref, severity, channel, at in rows:
        if ref not in committed or at is None:
            continue
        lat = at.timestamp() - committed[ref]
        life_of[ref] = int(severity) >= 4
        per.setdefault((life_of[ref], channel), []).append(lat)
        first[ref] = min(first.get(ref, lat), lat)
    out = []
    for life in (True, False):
        label = "life-safety tips" if life else "other tips"
        anyl = [v for r, v in first.items() if life_of[r] == life]
        out.append(f"  {label}: commit -> first alert delivered, any channel: "
                   f"{fmt(anyl, 's', 1.0)}")
        for channel in ("sms", "voice"):
            out.append(f"    first {channel} delivered: "
                       f"{fmt(per.get((life, channel), []), 's', 1.0)}")
    out.append(f"  tips with no alert delivered by phone: "
               f"{sum(1 for r in committed if r not in first)} of {len(committed)}")
    out.append(f"  ordinary call/text alerts that waited past their validity "
               f"({ordinary_validity} s) without falling back: {late}; on the dispatch's last "
               f"channel (nothing to fall back to, held until sent): {late_last}")
    out.append(f"  failed deliveries by reason: {reasons}")
    return out


CALLBACK_RE = re.compile(r"/twilio/alerts/(?:sms|call)-status/(\d+)$")


def arrivals(stub: StubTwilio) -> dict[int, float]:
    """Delivery id -> arrival of its (first) request at the Twilio stand-in, read from the
    status-callback URL every alert text and call carries."""
    out: dict[int, float] = {}
    for r in list(stub.requests):
        m = CALLBACK_RE.search(r.form.get("StatusCallback", ""))
        if m:
            dl = int(m.group(1))
            out[dl] = min(out.get(dl, r.at), r.at)
    return out


def delivery_map(engine: Engine) -> dict[int, tuple[str, int, int]]:
    """Delivery id -> (tip reference, routing job id, plan step)."""
    with Session(engine) as s:
        rows = s.execute(text(
            "SELECT a.id, t.reference, d.job_id, d.step_index FROM alert_deliveries a "
            "JOIN dispatches d ON d.id = a.dispatch_id JOIN tips t ON t.id = d.tip_id")).all()
    return {int(i): (str(ref), int(job), int(step)) for i, ref, job, step in rows}


def first_alerts(engine: Engine, stub: StubTwilio) -> dict[str, float]:
    """Tip reference -> arrival of the tip's first alert at the Twilio stand-in."""
    where = delivery_map(engine)
    out: dict[str, float] = {}
    for dl, at in arrivals(stub).items():
        if dl in where:
            ref = where[dl][0]
            out[ref] = min(out.get(ref, at), at)
    return out


def tips_alerted(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.execute(text(
            "SELECT count(DISTINCT d.tip_id) FROM alert_deliveries a JOIN dispatches d ON "
            "d.id = a.dispatch_id WHERE a.status IN ('sent', 'delivered')")).scalar() or 0)


def surge_drained(engine: Engine, n_jobs: int) -> bool:
    """Every routing job done, and every tip that has alerts of its own has one sent (with
    surge grouping most tips have none: they were folded into their group's chain)."""
    with Session(engine) as s:
        done = s.execute(text("SELECT count(*) FROM routing_jobs WHERE status <> 'pending'"))\
            .scalar() or 0
        with_alerts = s.execute(text(
            "SELECT count(DISTINCT d.tip_id) FROM alert_deliveries a JOIN dispatches d ON "
            "d.id = a.dispatch_id WHERE d.status <> 'notice'")).scalar() or 0
    return done >= n_jobs and tips_alerted(engine) >= with_alerts


# Per delivery: its tip's routing task start, and its last claim by a delivery task (``now`` of
# that run: ``sent_at``), whether the pacer held it, and its tip's severity.
STAGES = text(
    "SELECT a.id, j.started_at, a.sent_at, coalesce(a.last_error, '') LIKE 'held%', "
    "t.severity FROM alert_deliveries a JOIN dispatches d ON d.id = a.dispatch_id "
    "JOIN routing_jobs j ON j.id = d.job_id JOIN tips t ON t.id = d.tip_id "
    "WHERE a.id = ANY(:ids)")


def stage_report(engine: Engine, stub: StubTwilio, committed: dict[str, float]) -> list[str]:
    """Where the time from commit to the first alert at Twilio goes, per tip: commit ->
    routing task start (broker queue) -> that alert's last claim by a delivery task (routing,
    the delivery's wait in the broker, and any pacing holds) -> arrival at the stand-in (the
    pacer and the HTTP request)."""
    where = delivery_map(engine)
    first: dict[str, tuple[float, int]] = {}
    for dl, at in arrivals(stub).items():
        info = where.get(dl)
        if info is not None and info[0] in committed and (
                info[0] not in first or at < first[info[0]][0]):
            first[info[0]] = (at, dl)
    by_dl = {dl: (ref, at) for ref, (at, dl) in first.items()}
    with Session(engine) as s:
        rows = s.execute(STAGES, {"ids": list(by_dl)}).all()
    out = []
    for life in (True, False):
        queued: list[float] = []
        to_claim: list[float] = []
        to_twilio: list[float] = []
        held = 0
        for dl, started, claimed, was_held, severity in rows:
            if (int(severity) >= 4) != life or started is None or claimed is None:
                continue
            ref, at = by_dl[dl]
            queued.append(started.timestamp() - committed[ref])
            to_claim.append(claimed.timestamp() - started.timestamp())
            to_twilio.append(at - claimed.timestamp())
            held += bool(was_held)
        label = "life-safety tips" if life else "other tips"
        out.append(f"  {label} ({len(queued)}), first alert at Twilio; pacer held it first: "
                   f"{held}")
        out.append(f"    commit -> routing task start: {fmt(queued)}")
        out.append(f"    routing task start -> the alert's last claim: {fmt(to_claim)}")
        out.append(f"    last claim -> at the Twilio stand-in: {fmt(to_twilio)}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=50.0, help="tips per second")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the surge")
    ap.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
    ap.add_argument("--threads", type=int, default=0,
                    help="run each worker process with the threads pool and this many threads "
                         "(default: prefork, one task at a time per process)")
    ap.add_argument("--twilio-latency-ms", type=float, default=0.0,
                    help="how long the Twilio stand-in takes to answer each request (Twilio's "
                         "API typically answers in 100-300 ms; a sending thread waits that long)")
    ap.add_argument("--escalations", type=int, default=200, help="deadlines to measure")
    ap.add_argument("--drain", type=float, default=900.0,
                    help="seconds to wait for the backlog after the surge")
    ap.add_argument("--policy", default=str(REPO / "config" / "policy.demo.yaml"))
    ap.add_argument("--no-policy", action="store_true", help="route by the directory default")
    ap.add_argument("--log-level", default="INFO", choices=["INFO", "WARNING"],
                    help="the workers' and beat's log level (default: INFO, docker-compose's: "
                         "Celery logs each task's receipt and success at INFO)")
    ap.add_argument("--keep", action="store_true", help="keep the database and logs")
    ap.add_argument("--pool", type=int, default=5,
                    help="numbers in the Messaging Service's sender pool (stand-in and settings)")
    ap.add_argument("--sender-mps", type=float, default=1.0,
                    help="segments per second per sender (a US long code: 1)")
    ap.add_argument("--cps", type=float, default=1.0,
                    help="calls per second the account may start (Twilio's default: 1)")
    ap.add_argument("--life-safety", type=float, default=0.1,
                    help="share of the tips at the life-safety level (weapon or threat)")
    ap.add_argument("--sms-validity", type=int, default=300,
                    help="TIPLINE_ALERT_SMS_VALIDITY_SECONDS (ordinary alerts)")
    ap.add_argument("--urgent-validity", type=int, default=30,
                    help="TIPLINE_URGENT_SMS_VALIDITY_SECONDS (life-safety alerts)")
    ap.add_argument("--no-network", action="store_true",
                    help="the stand-in accepts and does nothing more (no queues, no callbacks)")
    ap.add_argument("--short-code", action="store_true",
                    help="pace to senders that carry the surge (issue 15's measure of "
                         "tipline's own path): one short code at 100 segments/s and an "
                         "account allowed 50 calls/s; overrides --pool, --sender-mps, --cps")
    ap.add_argument("--grouping", action="store_true",
                    help="leave surge grouping on (folds the repeated texts)")
    ap.add_argument("--surge-groups", action="store_true",
                    help="run the surge grouping scenario instead (bench/_surge.py)")
    args = ap.parse_args()
    if args.short_code:
        args.pool, args.sender_mps, args.cps = 1, 100.0, 50.0
    if args.surge_groups:
        from bench import _surge

        _surge.run(REPO, psql, REPO / "config" / "directory.demo.yaml")
        return
    print(f"load average before: {load_average()}", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="tipline-bench-routing-"))
    procs: list[subprocess.Popen[bytes]] = []
    stub = StubTwilio(latency=args.twilio_latency_ms / 1000)
    web_port = free_port()
    if not args.no_network:
        stub.network = Network(f"http://127.0.0.1:{web_port}", AUTH_TOKEN,
                               pool=POOL[:args.pool], sender_mps=args.sender_mps,
                               cps=args.cps).start()
    stub.start()
    engine = None
    try:
        print(f"setting up in {tmp} ...", flush=True)
        fresh_database()
        ring = KeyRing.generate()
        key_file = tmp / "keys.json"
        write_key_file(key_file, ring)
        vault = Vault(ring)
        crypto.install(vault)
        engine = make_engine(BENCH_DB_URL, pool_size=5)
        with Session(engine) as s:
            load_directory_file(s, REPO / "config" / "directory.demo.yaml")
            s.commit()
        redis_port = free_port()
        redis_exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        procs.append(start([redis_exe, "--port", str(redis_port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no"], dict(os.environ),
                           tmp / "redis.log"))
        wait_port(redis_port)
        broker = f"redis://127.0.0.1:{redis_port}/0"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TIPLINE_", "TWILIO_"))}
        env.update(
            PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            TIPLINE_MODE="production", TIPLINE_DATABASE_URL=BENCH_DB_URL,
            TIPLINE_BROKER_URL=broker, TIPLINE_KEY_FILE=str(key_file),
            TIPLINE_SECRET_KEY="b" * 40, TIPLINE_DATA_DIR=str(tmp),
            TIPLINE_PUBLIC_URL="https://tips.example.org", TIPLINE_LOG_LEVEL=args.log_level,
            TIPLINE_ALERT_SENDER="twilio", TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=AUTH_TOKEN, TIPLINE_TWILIO_FROM_NUMBER=FROM_NUMBER,
            TIPLINE_TWILIO_API_BASE=stub.url, TIPLINE_DEMO_DATA="false",
            TIPLINE_TWILIO_SENDERS=str(args.pool), TIPLINE_TWILIO_SENDER_MPS=str(args.sender_mps),
            TIPLINE_TWILIO_CPS=str(args.cps),
            TIPLINE_ALERT_SMS_VALIDITY_SECONDS=str(args.sms_validity),
            TIPLINE_URGENT_SMS_VALIDITY_SECONDS=str(args.urgent_validity),
            TIPLINE_CONFIG_FILE=str(tmp / "none.env"),
        )
        (tmp / "none.env").write_text("")
        if not args.no_network:
            env["TIPLINE_TWILIO_MESSAGING_SERVICE_SID"] = SERVICE_SID
        planner = "directory default (no policy loaded)"
        if not args.no_policy:
            policy_file = args.policy if args.grouping else _without_grouping(args.policy, tmp)
            res = subprocess.run([str(VENV_BIN / "tipline"), "policy", "load", policy_file],
                                 env=env, cwd=REPO, capture_output=True, text=True,
                                 timeout=120, check=False)
            if res.returncode == 0:
                planner = f"policy {Path(args.policy).name}"
            else:
                print(f"policy load failed ({res.returncode}); using the directory default:\n"
                      f"{(res.stderr or res.stdout)[-400:]}", flush=True)
        celery_bin = str(VENV_BIN / "celery")
        if args.threads:
            # N worker processes, each a Celery worker running tasks in THREADS threads
            # (much of a delivery is waiting on PostgreSQL and on Twilio).
            for n in range(args.concurrency):
                procs.append(start([celery_bin, "-A", "workers.celery_app", "worker", "--pool",
                                    "threads", "--concurrency", str(args.threads),
                                    "--loglevel", args.log_level, "--without-gossip",
                                    "--without-mingle", "--hostname", f"bench{n}@%h"], env,
                                   tmp / f"worker{n}.log"))
        else:
            procs.append(start([celery_bin, "-A", "workers.celery_app", "worker",
                                "--concurrency", str(args.concurrency), "--loglevel",
                                args.log_level, "--without-gossip", "--without-mingle",
                                "--hostname", "bench@%h"], env, tmp / "worker.log"))
        procs.append(start([celery_bin, "-A", "workers.celery_app", "beat", "--schedule",
                            str(tmp / "beat"), "--loglevel", args.log_level], env,
                           tmp / "beat.log"))
        if not args.no_network:  # the app, for the status callbacks
            procs.append(start([str(VENV_BIN / "gunicorn"), "-c",
                                str(REPO / "config" / "gunicorn.conf.py"), "--bind",
                                f"127.0.0.1:{web_port}", "--workers", "3"], env,
                               tmp / "web.log"))
            wait_port(web_port, timeout=60)
        settings = Settings(mode="test", database_url=BENCH_DB_URL, broker_url=broker)
        queue = CeleryQueue(build_celery(settings), 1.0)
        # Warm-up: one tip through the whole path, so start-up is not in the figures.
        _make_tip(engine, vault, queue, random.Random(0))
        _wait(lambda: tips_alerted(engine) >= 1, 90, "the warm-up tip's alert")

        total = int(args.rate * args.seconds)
        pool = f"threads x{args.threads}" if args.threads else "prefork"
        print(f"surge: {total} tips at {args.rate:g}/s for {args.seconds:g} s; planner: "
              f"{planner}; {args.concurrency} worker processes ({pool}); Twilio stand-in "
              f"answers after {args.twilio_latency_ms:g} ms", flush=True)
        rng = random.Random(42)
        life_share = 0.0 if args.no_network else args.life_safety
        workers = {p.pid for p in procs[1:]}
        cpu0, pg0 = group_cpu_seconds(workers), postgres_cpu_seconds()
        committed: dict[str, float] = {}
        during: dict[int, datetime] = {}
        setter: threading.Thread | None = None
        t0, wall0 = time.monotonic(), time.time()
        behind = 0.0
        for i in range(total):
            due = t0 + i / args.rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            else:
                behind = max(behind, -wait)
            ref, at = _make_tip(engine, vault, queue, rng, life_share)
            committed[ref] = at
            if i == total // 2 and args.escalations:
                # On its own thread, so the tips keep arriving at the surge's pace.
                setter = threading.Thread(
                    target=lambda: during.update(_set_deadlines(engine, args.escalations // 2)))
                setter.start()
        surge_took = time.monotonic() - t0
        if setter is not None:
            setter.join()
        print(f"  created {total} tips in {surge_took:.1f} s "
              f"({total / surge_took:.1f}/s; generator at most {behind * 1000:.0f} ms behind)",
              flush=True)
        _wait(lambda: surge_drained(engine, len(committed) + 1),
              args.drain, "every surge tip's first alert", quiet=True)
        drained = time.monotonic() - t0
        cpu = group_cpu_seconds(workers) - cpu0
        pg_cpu = postgres_cpu_seconds() - pg0
        time.sleep(1)
        firsts = first_alerts(engine, stub)
        lat = [firsts[r] - committed[r] for r in committed if r in firsts]
        with engine.connect() as c:
            routed = c.execute(text("SELECT count(*) FROM routing_jobs WHERE status = 'done'"))\
                .scalar()
            not_done = c.execute(text(
                "SELECT count(*) FROM routing_jobs WHERE status <> 'done'")).scalar()
            n_dl = c.execute(text("SELECT count(*) FROM alert_deliveries")).scalar()
            by_status: dict[str, int] = dict(c.execute(text(
                "SELECT status, count(*) FROM alert_deliveries GROUP BY status")).all())
            dup = c.execute(text(
                "SELECT count(*) FROM (SELECT provider_ref FROM alert_deliveries WHERE "
                "provider_ref IS NOT NULL GROUP BY provider_ref HAVING count(*) > 1) x")).scalar()
        no_alert = [r for r in committed if r not in firsts]
        print("\nRESULTS (surge)")
        print(f"  tip commit -> first alert handed to Twilio: {fmt(lat)}")
        print(f"  all first alerts out {drained:.1f} s after the surge began")
        windows: dict[int, list[float]] = {}
        for r in committed:
            if r in firsts:
                windows.setdefault(int((committed[r] - wall0) // 10), []).append(
                    firsts[r] - committed[r])
        print("  p99 by 10 s of the surge (tip commit time): " + ", ".join(
            f"{w * 10}-{w * 10 + 10} s: {pct(v, 99) * 1000:.0f} ms"
            for w, v in sorted(windows.items())))
        print(f"  routing jobs done: {routed} (incl. warm-up); not done: {not_done}")
        print(f"  tips with no alert handed to Twilio: {len(no_alert)}")
        print(f"  CPU per tip (routing + its alerts): workers and beat {cpu / total * 1000:.1f}"
              f" ms, PostgreSQL (all databases on the server) {pg_cpu / total * 1000:.1f} ms; "
              f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"  deliveries: {n_dl} {by_status}; requests at the Twilio stand-in: "
              f"{len(stub.requests)}; provider refs used twice: {dup}")
        print(f"  senders paced to: {args.pool} x {args.sender_mps:g} segment/s, "
              f"{args.cps:g} calls/s")
        print("\nRESULTS (where the time to the first alert at Twilio went)")
        for line in stage_report(engine, stub, committed):
            print(line)

        if stub.network is not None:
            _settle(engine, args.sms_validity + 180.0)
            print(f"\nRESULTS (delivery: {args.pool} senders x {args.sender_mps:g} segment/s, "
                  f"{args.cps:g} calls/s; validity {args.sms_validity} s ordinary, "
                  f"{args.urgent_validity} s life-safety)")
            for line in delivery_report(engine, committed, args.sms_validity):
                print(line)
            net = stub.network
            print(f"  stand-in: texts expired in Twilio's queue (30036) {net.expired}; "
                  f"delivered/answered callbacks {net.delivered}; callbacks refused or lost "
                  f"{net.callbacks_failed}", flush=True)
        if during:
            _report_escalation(engine, stub, during, "set in the middle of the surge")
        after = _set_deadlines(engine, args.escalations)
        _report_escalation(engine, stub, after, "after the surge drained")
    finally:
        for p in reversed(procs):
            stop(p)
        stub.stop()
        if engine is not None:
            engine.dispose()
        if not args.keep:
            drop_database()
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept: database {BENCH_DB}, logs in {tmp}")
        print(f"load average after: {load_average()}")


def _without_grouping(path: str, tmp: Path) -> str:
    """A copy of the policy with ``surge_grouping: false`` in every district."""
    import yaml

    data = yaml.safe_load(Path(path).read_text("utf-8"))
    for body in (data.get("districts") or {}).values():
        body["surge_grouping"] = False
    out = tmp / Path(path).name
    out.write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
    return str(out)


def _make_tip(engine: Engine, vault: Vault, queue: CeleryQueue, rng: random.Random,
              life_share: float = 0.0) -> tuple[str, float]:
    category, severity, body = rng.choice(MIX)
    if life_share and rng.random() < life_share:
        category, severity, body = rng.choice(LIFE_SAFETY)
    with Session(engine) as s:
        r = create_tip(s, vault, queue, TipSubmission(
            channel=Channel.WEB, body=body, category=category, severity=severity,
            school_code=rng.choice(SCHOOLS)))
        at = time.time()
        s.commit()  # the routing job is published to Redis right after this commit
    return r.reference, at


def _settle(engine: Engine, timeout: float) -> None:
    """Wait until no first-round alert waits in tipline any more (sent, delivered or failed
    over), then for the callbacks of the last ones. Life-safety repeats (every 2 min, nobody
    acknowledges in the benchmark) keep adding rounds, so only round 0 is waited for."""
    def settled() -> bool:
        with engine.connect() as c:
            return not c.execute(text(
                "SELECT count(*) FROM alert_deliveries WHERE alert_round = 0 AND status IN "
                "('pending', 'sending')")).scalar()

    t0 = time.monotonic()
    _wait(settled, timeout, "every first-round alert's outcome", quiet=True)
    time.sleep(15)  # the carrier's and the callee's delays, then the callbacks
    print(f"  every first-round alert settled {time.monotonic() - t0:.1f} s after the first "
          f"alerts were out", flush=True)


def _wait(check: Callable[[], object], timeout: float, what: str, quiet: bool = False) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    msg = f"timed out after {timeout:.0f} s waiting for {what}"
    if not quiet:
        raise SystemExit(msg)
    print(f"  WARNING: {msg}", flush=True)


def _set_deadlines(engine: Engine, wanted: int, spread: float = 10.0) -> dict[int, datetime]:
    """Move first-step deadlines of up to ``wanted`` routed tips to the next ``spread`` s
    (and their next step's planned time an hour later, so only the missed deadline counts)."""
    with Session(engine) as s:
        rows = s.execute(text(
            "SELECT d.job_id FROM dispatches d WHERE d.step_index = 1 AND d.status = 'scheduled'"
            " AND EXISTS (SELECT 1 FROM dispatches a WHERE a.job_id = d.job_id AND "
            "a.step_index = 0 AND a.status = 'active') GROUP BY d.job_id ORDER BY d.job_id DESC "
            "LIMIT :n"), {"n": wanted}).scalars().all()
        base = datetime.now(UTC) + timedelta(seconds=3)
        deadlines: dict[int, datetime] = {}
        for i, job_id in enumerate(rows):
            at = base + timedelta(seconds=spread * i / max(len(rows), 1))
            deadlines[job_id] = at
            s.execute(update(Dispatch).where(Dispatch.job_id == job_id,
                                             Dispatch.step_index == 0,
                                             Dispatch.status == "active")
                      .values(ack_deadline=at))
            s.execute(update(Dispatch).where(Dispatch.job_id == job_id,
                                             Dispatch.step_index == 1)
                      .values(due_at=at + timedelta(hours=1),
                              ack_deadline=at + timedelta(hours=2)))
        s.commit()
    return deadlines


def _report_escalation(engine: Engine, stub: StubTwilio, deadlines: dict[int, datetime],
                       label: str) -> None:
    """Time from each deadline to the next step's activation and its first alert."""
    if not deadlines:
        print(f"\nRESULTS (escalation, {label}): no routed tip had a later step waiting")
        return

    def activated() -> dict[int, datetime]:
        with Session(engine) as s:
            got = s.execute(select(Dispatch.job_id, Dispatch.activated_at).where(
                Dispatch.job_id.in_(list(deadlines)), Dispatch.step_index == 1,
                Dispatch.activated_at.is_not(None))).all()
        out: dict[int, datetime] = {}
        for job_id, at in got:
            if at is not None:
                out[job_id] = min(out.get(job_id, at), at)
        return out

    _wait(lambda: len(activated()) == len(deadlines), 90, "every next step", quiet=True)
    time.sleep(3)  # let the step's alerts reach the stand-in
    act = activated()
    lateness = [(act[j] - deadlines[j]).total_seconds() for j in act]
    where = delivery_map(engine)
    first_step1: dict[int, float] = {}
    for dl, arrived in arrivals(stub).items():
        info = where.get(dl)
        if info is not None and info[1] in deadlines and info[2] == 1:
            first_step1[info[1]] = min(first_step1.get(info[1], arrived), arrived)
    alert_late = [t - deadlines[j].timestamp() for j, t in first_step1.items()]
    print(f"\nRESULTS (escalation, {label}; {len(deadlines)} deadlines over 10 s)")
    print(f"  deadline -> next step active: {fmt(lateness)}")
    print(f"  deadline -> next step's first alert handed to Twilio: {fmt(alert_late)}")
    print(f"  next steps not activated within 90 s: {len(deadlines) - len(act)}")


if __name__ == "__main__":
    main()
