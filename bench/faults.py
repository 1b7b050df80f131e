"""Faults during a surge: tips by web and signed SMS while a worker is killed, Redis stops,
PostgreSQL restarts and Twilio answers 500s and then does not answer.

    .venv/bin/python -m bench faults [--tips 3000] [--rate 25] [--threads 16] [--workers 2]
    .venv/bin/python -m bench faults --embedded     (tipline run, SQLite, a worker killed)

What it starts, all on 127.0.0.1 (the machine's PostgreSQL server and Redis are not stopped):
a fresh PostgreSQL database reached through a TCP proxy that can be cut (a PostgreSQL
restart, as the web and the workers see it: connections broken, new ones refused); its own
``redis-server``; the Twilio stand-in (``tests/routing/twilio_stub.py``) behind the real
gateway; gunicorn with ``config/gunicorn.conf.py``; ``--workers`` Celery workers with
``--threads`` threads each (as docker-compose.yml runs them), each restarted when it exits
(compose's ``restart: unless-stopped``); a separate Celery beat. All in production mode with
the demo directory and policy.

Tips arrive at ``--rate`` per second, open loop (3 of 4 by the web form, 1 of 4 as a signed
SMS from its own number; 8 schools, 8 categories). The five faults, in order, spread over the
surge (``FAULTS``): SIGKILL of one worker (all its threads), Redis stopped (20 s in the long
run), PostgreSQL cut, Twilio answering 500, Twilio accepting and then not answering.

Printed: sent, told received (a web page with a receipt code; an SMS reply saying received,
or a "being saved" reply followed by the texted reply), stored, routed, duplicate alerts by
cause (a text or call to one number with the same words created twice at Twilio, put down to
the fault window of the first copy), time to route everything after the last fault ends,
commit -> first alert p50/p99/max, and web submit p50/p99 per fault window. ``run`` is what
``tests/e2e/test_faults_e2e.py`` calls with a short schedule.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import text  # noqa: E402

from bench.routing import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, SCHOOLS, VENV_BIN  # noqa: E402
from tests.e2e.procs import (  # noqa: E402
    Browserless,
    Proc,
    Supervised,
    base_env,
    child_pids,
    hidden_fields,
    receipt_code,
    request,
    start,
    start_redis,
    wait_for,
    wait_http,
)
from tests.livesupport import create_fresh_database, drop_database, free_port  # noqa: E402
from tests.routing.twilio_stub import StubTwilio  # noqa: E402
from tests.twilio_support import sign  # noqa: E402
from tipline.crypto import KeyRing, write_key_file  # noqa: E402
from tipline.db import make_engine  # noqa: E402
from tipline.tips.models import Category  # noqa: E402

PG_HOST, PG_PORT = "127.0.0.1", 5432
CATEGORIES = tuple(c.value for c in Category)  # the eight the form offers
SMS_SCHOOL_WORDS = ("roosevelt", "soldan", "vashon", "carnahan", "long middle", "northview",
                    "riverbend", "oakridge")


@dataclass(frozen=True)
class Fault:
    name: str
    start: float  # seconds after the surge starts
    length: float  # 0: instantaneous (a kill)


# The long run: 3,000 tips at 25/s (120 s), the five faults of issue 11.
FAULTS = (Fault("worker kill -9", 15, 0), Fault("redis stopped", 30, 20),
          Fault("postgresql restart", 60, 10), Fault("twilio 500", 80, 15),
          Fault("twilio timeout", 95, 15))


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


# -- a PostgreSQL "restart" for the processes under test -----------------------------------
class PgProxy:
    """A TCP proxy to PostgreSQL. ``cut()`` breaks every connection and refuses new ones,
    ``restore()`` listens again on the same port: what a PostgreSQL restart looks like."""

    def __init__(self, upstream: tuple[str, int] = (PG_HOST, PG_PORT)) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(256)
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


# -- the load ----------------------------------------------------------------------------------
@dataclass
class Sent:
    n: int
    channel: str  # web | sms
    at: float  # time.time() just before the submit
    took: float = 0.0
    told: bool = False
    held: bool = False
    reference: str | None = None
    number: str | None = None
    window: str = "none"
    status: int = 0


@dataclass
class Report:
    sent: int = 0
    told: int = 0
    stored: int = 0
    routed: int = 0
    duplicates: Counter[str] = field(default_factory=Counter)
    route_all_after_last_fault: float | None = None
    first_alert_p50: float | None = None
    first_alert_p99: float | None = None
    first_alert_max: float | None = None
    submit_ms: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    worker_restarts: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    # Where the tail comes from (``tail_breakdown``).
    tail: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"sent {self.sent}, told received {self.told}, stored {self.stored}, "
               f"routed {self.routed}",
               "duplicate alerts by cause: " + (", ".join(
                   f"{k} {v}" for k, v in sorted(self.duplicates.items())) or "none"),
               f"every tip routed {self.route_all_after_last_fault:.1f} s after the last fault"
               if self.route_all_after_last_fault is not None else "NOT every tip routed"]
        if self.first_alert_p99 is not None:
            out.append(f"commit -> first alert: p50 {self.first_alert_p50:.1f} s, p99 "
                       f"{self.first_alert_p99:.1f} s, max {self.first_alert_max:.1f} s")
        for window, (p50, p99, n) in self.submit_ms.items():
            out.append(f"web submit during {window}: p50 {p50:.0f} ms, p99 {p99:.0f} ms "
                       f"({n} tips)")
        out.append("answers: " + ", ".join(f"{k} {v}" for k, v in sorted(self.answers.items())))
        out.append(f"worker restarts: {self.worker_restarts}")
        return out + self.tail


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


class Surge:
    """Everything the production-shaped run starts, and the faults it can inflict."""

    def __init__(self, workdir: Path, workers: int, threads: int, latency: float) -> None:
        self.workdir = workdir
        self.db_url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/tipline_bench_faults"
        create_fresh_database(self.db_url)
        self.proxy = PgProxy()
        self.redis, self.redis_port = start_redis(workdir)
        self.stub = StubTwilio(latency=latency).start()
        key_file = workdir / "keys.json"
        write_key_file(key_file, KeyRing.generate())
        self.web_port = free_port()
        self.public = f"http://127.0.0.1:{self.web_port}"
        self.env = base_env(
            TIPLINE_CONFIG_FILE=str(workdir / "none.env"), TIPLINE_MODE="production",
            TIPLINE_DATABASE_URL=(f"postgresql://postgres@127.0.0.1:{self.proxy.port}/"
                                  "tipline_bench_faults"),
            TIPLINE_BROKER_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            TIPLINE_SECRET_KEY="f" * 48, TIPLINE_KEY_FILE=str(key_file),
            TIPLINE_DATA_DIR=str(workdir), TIPLINE_PUBLIC_URL=self.public,
            TIPLINE_RATELIMIT_STORAGE_URL="memory://", TIPLINE_LOG_LEVEL="WARNING",
            TIPLINE_DEMO_DATA="false", TIPLINE_ALERT_SENDER="twilio",
            TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            TIPLINE_TWILIO_FROM_NUMBER=FROM_NUMBER, TIPLINE_TWILIO_API_BASE=self.stub.url)
        (workdir / "none.env").write_text("")
        for what in ("directory", "policy"):
            subprocess.run([str(VENV_BIN / "tipline"), what, "load",
                            str(REPO / "config" / f"{what}.demo.yaml")],
                           env=self.env, check=True, timeout=120, capture_output=True)
        self.web = start("gunicorn", [str(VENV_BIN / "gunicorn"), "-c",
                                      str(REPO / "config" / "gunicorn.conf.py"), "--bind",
                                      f"127.0.0.1:{self.web_port}"], self.env, workdir)
        self.workers = [Supervised(f"worker{i}", [
            str(VENV_BIN / "celery"), "-A", "workers.celery_app", "worker", "--pool", "threads",
            "--concurrency", str(threads), "--loglevel", "WARNING", "--without-gossip",
            "--without-mingle", "--hostname", f"w{i}@%h"], self.env, workdir)
            for i in range(workers)]
        self.beat = start("beat", [str(VENV_BIN / "celery"), "-A", "workers.celery_app", "beat",
                                   "--loglevel", "WARNING", "--schedule",
                                   str(workdir / "beat-schedule")], self.env, workdir)
        wait_http(self.public, timeout=90)
        self.engine = make_engine(self.db_url)
        self._twilio_mode: tuple[Any, ...] | int | None = None
        self.stub.rule = lambda kind, form: self._twilio_mode

    # faults
    def inflict(self, fault: Fault) -> Callable[[], None]:
        """Start a fault; returns what ends it."""
        if fault.name.startswith("worker"):
            self.workers[0].proc.stop(sig=signal.SIGKILL)  # Supervised starts it again
            return lambda: None
        if fault.name.startswith("redis"):
            self.redis.stop()

            def back() -> None:
                self.redis, _ = start_redis(self.workdir, port=self.redis_port)
            return back
        if fault.name.startswith("postgresql"):
            self.proxy.cut()
            return self.proxy.restore
        if fault.name == "twilio 500":
            self._twilio_mode = 500
        else:
            self._twilio_mode = ("accept-hang", 12)  # longer than the gateway's 10 s timeout

        def twilio_back() -> None:
            self._twilio_mode = None
        return twilio_back

    # load
    def submit(self, item: Sent, rng: random.Random) -> None:
        school = SCHOOLS[item.n % len(SCHOOLS)]
        category = CATEGORIES[(item.n // len(SCHOOLS)) % len(CATEGORIES)]
        body = f"Fault surge tip {item.n}: {category} at {school}, please look into it"
        try:
            if item.channel == "web":
                client = Browserless(self.public)
                status, page = client.call("GET", "/report")
                t = time.time()
                item.at = t
                status, page = client.call("POST", "/report", {
                    **hidden_fields(page), "school": school, "category": category,
                    "danger_now": "no", "body": body, "send": "1"})
                item.took = time.time() - t
                item.status = status
                item.reference = receipt_code(page) if status == 200 else None
                item.told = bool(item.reference)
            else:
                item.number = f"+1314{7000000 + item.n:07d}"[:12]
                sid = "SM" + f"{rng.getrandbits(128):032x}"
                params = {"MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid,
                          "AccountSid": ACCOUNT_SID, "From": item.number, "To": FROM_NUMBER,
                          "Body": f"{body} ({SMS_SCHOOL_WORDS[item.n % 8]})", "NumMedia": "0"}
                sig = sign(self.public + "/twilio/sms", params, AUTH_TOKEN)
                t = time.time()
                item.at = t
                status, _h, reply = request("POST", self.public + "/twilio/sms",
                                            urlencode(params), {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": sig})
                item.took = time.time() - t
                item.status = status
                item.told = status == 200 and "received" in reply
                item.held = status == 200 and "being saved" in reply
        except Exception as exc:  # a refused submit counts as not told
            item.took = item.took or 0.0
            print(f"  submit {item.n} failed: {type(exc).__name__}", file=sys.stderr)

    def stop(self) -> None:
        for p in [*self.workers, self.beat, self.web]:
            p.stop()
        self.redis.stop()
        self.stub.stop()
        self.proxy.cut()
        self.engine.dispose()
        drop_database(self.db_url)


def run(tips: int = 3000, rate: float = 25.0, faults: tuple[Fault, ...] = FAULTS,
        workers: int = 2, threads: int = 16, latency: float = 0.1, settle: float = 180.0,
        workdir: Path | None = None, log: Callable[[str], None] = print) -> Report:
    own = workdir is None
    workdir = workdir or Path(tempfile.mkdtemp(prefix="tipline-faults-"))
    surge = Surge(workdir, workers, threads, latency)
    rng = random.Random(11)
    items = [Sent(n, "sms" if n % 4 == 3 else "web", 0.0) for n in range(tips)]
    report = Report(sent=tips)
    try:
        t0 = time.time()
        ends: list[tuple[float, Callable[[], None]]] = []
        windows: list[tuple[str, float, float]] = []
        pool = ThreadPoolExecutor(max_workers=48)
        pending_faults = list(faults)
        last_fault_end = t0
        for item in items:
            due = t0 + item.n / rate
            while True:
                now = time.time()
                while pending_faults and now >= t0 + pending_faults[0].start:
                    f = pending_faults.pop(0)
                    ends.append((now + f.length, surge.inflict(f)))
                    windows.append((f.name, now, now + f.length))
                    log(f"  {now - t0:6.1f} s: {f.name}")
                for end in [e for e in ends if now >= e[0]]:
                    end[1]()
                    ends.remove(end)
                    last_fault_end = max(last_fault_end, now)
                    log(f"  {now - t0:6.1f} s: fault ended")
                if now >= due:
                    break
                time.sleep(min(0.01, due - now))
            pool.submit(surge.submit, item, rng)
        while ends or pending_faults:  # faults scheduled past the last tip
            now = time.time()
            while pending_faults and now >= t0 + pending_faults[0].start:
                f = pending_faults.pop(0)
                ends.append((now + f.length, surge.inflict(f)))
                windows.append((f.name, now, now + f.length))
            for end in [e for e in ends if now >= e[0]]:
                end[1]()
                ends.remove(end)
                last_fault_end = max(last_fault_end, now)
            time.sleep(0.05)
        pool.shutdown(wait=True)
        intake_done = time.time()
        for item in items:
            item.window = next((name for name, a, b in windows if a <= item.at <= max(b, a + 1)),
                               "none")

        def all_routed() -> bool:
            with surge.engine.connect() as c:
                left = c.execute(text("SELECT count(*) FROM routing_jobs WHERE status "
                                      "NOT IN ('done', 'failed')")).scalar()
                stored = c.execute(text("SELECT count(*) FROM tips")).scalar()
            return left == 0 and stored >= sum(1 for i in items if i.told or i.held)

        try:
            wait_for(all_routed, settle, "every tip routed", interval=0.5)
            report.route_all_after_last_fault = max(0.0, time.time() - last_fault_end)
        except AssertionError as exc:
            log(f"  {exc}")
        time.sleep(35)  # outcome-unknown sends settle (STALE_SENDING + one resolve run)
        with surge.engine.connect() as c:
            report.stored = int(c.execute(text("SELECT count(*) FROM tips")).scalar() or 0)
            report.routed = int(c.execute(text(
                "SELECT count(*) FROM routing_jobs WHERE status IN ('done', 'failed')")).scalar()
                or 0)
            refs = dict(c.execute(text("SELECT id, reference FROM tips")).all())
            committed = {r: t for r, t in c.execute(text(
                "SELECT reference, extract(epoch FROM created_at) FROM tips")).all()}
        replies = {r.form.get("To") for r in surge.stub.received("sms")
                   if "received" in r.form.get("Body", "")}
        report.told = sum(1 for i in items if i.told or (i.held and i.number in replies))
        report.answers = Counter(
            f"{i.channel} {i.status}" + (" held" if i.held else "") + (" told" if i.told else "")
            + ("" if i.told else f" ({i.window})") for i in items)
        # Duplicates: the same words to the same number created twice at Twilio.
        copies: dict[tuple[str, str], list[float]] = {}
        for rec in surge.stub.created:
            if rec["to"] and rec["to"].startswith("+1314555"):  # staff alerts, not replies
                key = (rec["to"], rec["body"] or rec["sid"][:2])
                copies.setdefault(key, []).append(_created_at(rec))
        for (_to, _body), times in copies.items():
            if len(times) > 1 and _body not in ("CA", "SM"):
                cause = next((name for name, a, b in windows if a - 5 <= min(times) <= b + 40),
                             "none")
                report.duplicates[cause] += len(times) - 1
        firsts: dict[str, float] = {}
        for r in surge.stub.received():
            for ref in re.findall(r"T-[0-9A-Z]{4}-[0-9A-Z]{2}", r.form.get("Body", "")):
                firsts[ref] = min(firsts.get(ref, r.at), r.at)
        lat = [firsts[ref] - float(committed[ref]) for ref in committed if ref in firsts]
        if lat:
            report.first_alert_p50 = statistics.median(lat)
            report.first_alert_p99 = _pct(lat, 0.99)
            report.first_alert_max = max(lat)
        del refs
        report.tail = tail_breakdown(surge.engine, firsts, windows, t0, last_fault_end,
                                     intake_done)
        by_window: dict[str, list[float]] = {}
        for i in items:
            if i.channel == "web" and i.took:
                by_window.setdefault(i.window, []).append(i.took * 1000)
        report.submit_ms = {w: (statistics.median(v), _pct(v, 0.99), len(v))
                            for w, v in sorted(by_window.items())}
        report.worker_restarts = sum(w.restarts for w in surge.workers)
        if any(i.status >= 500 and i.status != 503 for i in items):  # keep the logs to look at
            kept = Path(tempfile.mkdtemp(prefix="tipline-faults-logs-"))
            for f in workdir.glob("*.log"):
                shutil.copy(f, kept)
            log(f"  a request got a 5xx other than 503: logs kept in {kept}")
        return report
    finally:
        surge.stop()
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


# A tip counts in the tail when its first alert reached Twilio this long after its commit.
TAIL_SECONDS = 15.0


def tail_breakdown(engine: Any, firsts: dict[str, float], windows: list[tuple[str, float, float]],
                   t0: float, last_fault_end: float, intake_done: float) -> list[str]:
    """Where the slow tips lost their time: the intake itself (the load generator behind
    schedule), the fault window they were committed in and how long after its end their first
    alert reached Twilio, and whether the routing job or the first alert was late."""
    with engine.connect() as c:
        tips = c.execute(text(
            "SELECT t.reference, extract(epoch FROM t.created_at), "
            "extract(epoch FROM j.finished_at), extract(epoch FROM j.enqueued_at), j.attempts "
            "FROM tips t JOIN routing_jobs j ON j.tip_id = t.id AND j.reason = 'intake'")).all()
    last_commit = max((float(t[1]) for t in tips), default=t0)
    route_lag = sorted(float(f) - float(c) for _r, c, f, _e, _a in tips if f is not None)
    out = [f"tail: intake finished {intake_done - last_fault_end:.1f} s and the last tip was "
           f"committed {last_commit - last_fault_end:.1f} s after the last fault ended"]
    if route_lag:
        out.append(f"tail: commit -> routed p50 {statistics.median(route_lag):.1f} s, p99 "
                   f"{_pct(route_lag, 0.99):.1f} s, max {route_lag[-1]:.1f} s")
    # Per fault window: how long after the fault ended its tips' first alerts reached Twilio
    # (a tip committed during a fault cannot be alerted before the fault ends).
    after: dict[str, list[float]] = {}
    late_phase: Counter[str] = Counter()
    for ref, committed, finished, _enqueued, _attempts in tips:
        first = firsts.get(ref)
        if first is None:
            continue
        at = float(committed)
        window = next(((n, b) for n, a, b in windows if a <= at <= b), ("no fault", at))
        after.setdefault(window[0], []).append(first - max(at, window[1]))
        if first - at >= TAIL_SECONDS:
            routed = float(finished) - at if finished is not None else first - at
            phase = "routing" if routed >= first - at - TAIL_SECONDS / 2 else "first alert"
            late_phase[f"{window[0]}, late in {phase}"] += 1
    for window, values in sorted(after.items()):
        out.append(f"tail: committed during {window} ({len(values)}): first alert p50 "
                   f"{statistics.median(values):.1f} s, p99 {_pct(values, 0.99):.1f} s, max "
                   f"{max(values):.1f} s after the fault ended (or the commit)")
    every = sorted(v for values in after.values() for v in values)
    if every:
        out.append(f"tail: first alert after max(commit, end of its fault): p99 "
                   f"{_pct(every, 0.99):.1f} s, max {every[-1]:.1f} s")
    for cause, n in late_phase.most_common(8):
        out.append(f"tail: {n} tips with first alert >= {TAIL_SECONDS:.0f} s after commit: "
                   f"{cause}")
    return out


def _created_at(rec: dict[str, Any]) -> float:
    from email.utils import parsedate_to_datetime

    return parsedate_to_datetime(rec["date_created"]).timestamp()


# -- the embedded default --------------------------------------------------------------------
def run_embedded(tips: int = 200, rate: float = 10.0, kill_at: float = 5.0,
                 log: Callable[[str], None] = print) -> Report:
    """``tipline run`` (SQLite, filesystem broker, outbox): its worker killed mid-surge and
    restarted by the runner."""
    workdir = Path(tempfile.mkdtemp(prefix="tipline-faults-embedded-"))
    port = free_port()
    proc: Proc = start("tipline-run", [str(VENV_BIN / "tipline"), "run", "--port", str(port),
                                       "--data-dir", str(workdir / "data")], base_env(),
                       workdir)
    report = Report(sent=tips)
    try:
        wait_http(f"http://127.0.0.1:{port}", timeout=90)
        items = [Sent(n, "web", 0.0) for n in range(tips)]
        t0 = time.time()
        killed_at = None

        def submit(item: Sent) -> None:
            client = Browserless(f"http://127.0.0.1:{port}")
            t = time.time()
            item.at = t
            _status, form = client.call("GET", "/report")
            status, page = client.call("POST", "/report", {
                **hidden_fields(form), "school": SCHOOLS[item.n % 5],
                "category": CATEGORIES[item.n % 8], "danger_now": "no",
                "body": f"Embedded fault tip {item.n}", "send": "1"})
            item.took = time.time() - t
            item.told = status == 200 and bool(receipt_code(page))

        with ThreadPoolExecutor(max_workers=16) as pool:
            for item in items:
                while time.time() < t0 + item.n / rate:
                    time.sleep(0.005)
                if killed_at is None and time.time() - t0 >= kill_at:
                    worker = child_pids(proc.popen.pid)
                    for pid in worker:
                        os.killpg(pid, signal.SIGKILL)
                    killed_at = time.time()
                    log(f"  {killed_at - t0:6.1f} s: worker kill -9 ({worker})")
                pool.submit(submit, item)
        db = workdir / "data" / "tipline.sqlite3"

        def routed() -> bool:
            with sqlite3.connect(db) as conn:
                left = conn.execute("SELECT count(*) FROM routing_jobs WHERE status NOT IN "
                                    "('done', 'failed')").fetchone()[0]
            return left == 0

        wait_for(routed, 180, "every embedded tip routed", interval=0.5)
        report.route_all_after_last_fault = time.time() - (killed_at or t0)
        with sqlite3.connect(db) as conn:
            report.stored = conn.execute("SELECT count(*) FROM tips").fetchone()[0]
            report.routed = conn.execute("SELECT count(*) FROM routing_jobs WHERE status IN "
                                         "('done', 'failed')").fetchone()[0]
            dup = conn.execute("SELECT count(*) - count(DISTINCT delivery_id) FROM outbox "
                               "WHERE delivery_id IS NOT NULL").fetchone()[0]
        report.duplicates["worker kill -9"] = dup
        report.told = sum(1 for i in items if i.told)
        took = [i.took * 1000 for i in items if i.took]
        report.submit_ms = {"all": (statistics.median(took), _pct(took, 0.99), len(took))}
        report.worker_restarts = proc.output().count("restarting it")
        log("  worker exits: " + ", ".join(re.findall(r"the worker exited \((-?\d+)\)",
                                                       proc.output())))
        return report
    finally:
        proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tips", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=25.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--twilio-latency-ms", type=float, default=100.0)
    parser.add_argument("--embedded", action="store_true")
    args = parser.parse_args()
    print(f"load average before: {loadavg()}")
    if args.embedded:
        report = run_embedded()
    else:
        print(f"{args.tips} tips at {args.rate}/s; {args.workers} workers x {args.threads} "
              f"threads; faults: " + ", ".join(f"{f.name} at {f.start:.0f} s"
                                                + (f" for {f.length:.0f} s" if f.length else "")
                                                for f in FAULTS))
        report = run(args.tips, args.rate, FAULTS, args.workers, args.threads,
                     args.twilio_latency_ms / 1000)
    for line in report.lines():
        print(line)
    print(f"load average after: {loadavg()}")


if __name__ == "__main__":
    main()
