"""Benchmark the web tip submission against a bare Flask route, both under gunicorn.

    .venv/bin/python -m bench intake [--duration 10] [--concurrency 8 32] [--repeat 1]
                                     [--forms urlencoded multipart] [--workers N]
                                     [--access-log] [--without surge publish]

What it does, all on 127.0.0.1 and bounded in time:

1. Creates a fresh PostgreSQL database ``tipline_bench`` (dropped first if it exists), migrates
   it, loads the demo directory, and writes a throw-away key file in a temporary directory.
2. Starts gunicorn with the project's ``config/gunicorn.conf.py`` (its sync worker count for
   this machine, or ``--workers``) twice: one serving tipline (production mode, the real Redis
   job queue on 127.0.0.1:6379 db 12), one serving a bare Flask route with the same settings.
   Both with gunicorn's access log off, as issue 15 measured: the log line costs every
   request about the same (0.22 ms of worker CPU on the 2-CPU machine, docs/performance.md),
   a third of the bare route's cost and a few per cent of a tip's, so leaving it on raises
   the ratio. ``--access-log`` keeps the production config's access log.
3. Fetches the tip form ONCE to get the session cookie and CSRF token; every measured request
   is then a full ``POST /report``, sent as a browser sends it: URL-encoded (the page's
   JavaScript, no picture chosen) or multipart with a new random boundary per request (no
   JavaScript): parse, CSRF check, form
   validation, school lookup, automatic triage when present, sealing, commit, routing job
   published to Redis after the commit, and the receipt page rendered. The form fetch is NOT
   included in the timed requests. Each request carries its own random form nonce, so each
   one stores a new tip.
4. Drives load with ``wrk`` (apt package) and a Lua script, at each concurrency for
   ``--duration`` seconds after a short warm-up, and reads p50/p99 from wrk's histogram. The
   rows are interleaved (bare route, URL-encoded, multipart at one concurrency, then the
   next), ``--repeat`` rounds of them; the median round of each row is reported, with its
   ratio to the bare route at the same concurrency and lines to paste into
   docs/performance.md.
5. Reads the gunicorn workers' CPU time (and, for context, all PostgreSQL processes' CPU time)
   from /proc before and after each run.

With ``--without``, a third gunicorn serves ``bench/ablate.py``: tipline with the named parts
of a tip's work switched off (surge grouping's signature, the routing publish), measured with
URL-encoded tips in the same rounds, to show how much of the gap to the bare route those parts
make. It is for measuring only: a tip needs both.

Afterwards the database is dropped, the Redis keys it created are deleted and gunicorn stops.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path

from flask import Flask

from bench._common import bench_workdir, load_average, production_workers
from bench.ablate import PARTS as ABLATE_PARTS

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "tipline_bench"
BENCH_DB_URL = f"postgresql://postgres@127.0.0.1:5432/{BENCH_DB}"
REDIS_URL = "redis://127.0.0.1:6379/12"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The bare route served by the same gunicorn settings (imported by gunicorn as
# ``bench.intake:bare_app``).
bare_app = Flask("bare")


@bare_app.get("/bare")
def _bare() -> str:
    return "ok"


LUA = r"""
-- One full tip submission per request, each with its own random form nonce. "multipart" is
-- what a page without JavaScript (or with a picture) sends, with a new random boundary each
-- time as a browser makes one; "urlencoded" is what the page's JavaScript sends with no picture.
local mode = "__MODE__"
local cookie, token, path = "__COOKIE__", "__TOKEN__", "__PATH__"
local fields = {
  {"school", "slps-roosevelt"}, {"category", "threat"}, {"danger_now", "no"},
  {"body", "A student said he will start a fight at the bus stop after school on Friday."},
  {"when", "Friday after school"}, {"where", "Bus stop on Arsenal St"}, {"who", ""},
  {"how_known", "I heard it in class"}, {"school_q", ""}, {"website", ""},
  {"ui_lang", "en"}, {"send", "1"},
}
local hex = "0123456789abcdef"
local thread_id = 0

setup = function(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

init = function(args)
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
end

local function random_hex(n)
  local t = {}
  for i = 1, n do
    local k = math.random(1, 16)
    t[i] = hex:sub(k, k)
  end
  return table.concat(t)
end

local function urlencode(v)
  return (v:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function multipart()
  local boundary = "----WebKitFormBoundary" .. random_hex(16)
  local head = "--" .. boundary .. "\r\nContent-Disposition: form-data; name="
  local parts = {}
  for _, f in ipairs(fields) do
    parts[#parts + 1] = head .. "\"" .. f[1] .. "\"\r\n\r\n" .. f[2] .. "\r\n"
  end
  parts[#parts + 1] = head .. "\"csrf_token\"\r\n\r\n" .. token .. "\r\n"
  parts[#parts + 1] = head .. "\"submission\"\r\n\r\n" .. random_hex(32) .. "\r\n"
  parts[#parts + 1] = head .. "\"attachments\"; filename=\"\"\r\n" ..
    "Content-Type: application/octet-stream\r\n\r\n\r\n"
  parts[#parts + 1] = "--" .. boundary .. "--\r\n"
  return "multipart/form-data; boundary=" .. boundary, table.concat(parts)
end

local function urlencoded()
  local parts = {}
  for _, f in ipairs(fields) do
    parts[#parts + 1] = f[1] .. "=" .. urlencode(f[2])
  end
  parts[#parts + 1] = "csrf_token=" .. urlencode(token)
  parts[#parts + 1] = "submission=" .. random_hex(32)
  parts[#parts + 1] = "attachments="
  return "application/x-www-form-urlencoded", table.concat(parts, "&")
end

request = function()
  local ctype, body
  if mode == "urlencoded" then ctype, body = urlencoded() else ctype, body = multipart() end
  local headers = {}
  headers["Content-Type"] = ctype
  headers["Cookie"] = cookie
  return wrk.format("POST", path, headers, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""

BARE_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass
class Run:
    label: str
    concurrency: int
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    cpu_seconds: float
    db_cpu_seconds: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_seconds / self.requests if self.requests else 0.0

    @property
    def db_cpu_ms_per_request(self) -> float:
        return 1000 * self.db_cpu_seconds / self.requests if self.requests else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def psql(sql: str, url: str = PG_ADMIN) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"),
                           isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


_TERMINATE = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
              "WHERE datname = 'tipline_bench'")


def fresh_database(sealed: bool = True) -> None:
    """An empty schema with the demo directory. ``sealed``: every district and police agency
    gets a read key (as once a district's first staff member has signed in, or after
    ``tipline keys seal-existing``), so intake seals each tip to its audience as production
    does; the private halves are dropped, which a benchmark does not need."""
    psql(_TERMINATE)
    psql(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')
    psql(f'CREATE DATABASE "{BENCH_DB}"')
    from tipline import migrations
    from tipline.db import Database
    from tipline.directory.loader import load_directory_file

    migrations.upgrade(BENCH_DB_URL)
    db = Database(BENCH_DB_URL)
    with db.session() as session:
        load_directory_file(session, REPO / "config" / "directory.demo.yaml")
        if sealed:
            from sqlalchemy import select

            from tipline.accounts.keys import create_read_key
            from tipline.crypto.models import Owner
            from tipline.directory.models import District, PoliceAgency

            for owner, model in ((Owner.DISTRICT, District), (Owner.AGENCY, PoliceAgency)):
                for owner_id in session.execute(select(model.id)).scalars():
                    create_read_key(session, owner, owner_id)
        session.commit()
    db.dispose()


def count_tips(sealed_only: bool = False) -> int:
    """Tips stored; ``sealed_only``: those whose data key has no key-file slot."""
    from sqlalchemy import create_engine, text

    sql = ("SELECT count(*) FROM tips JOIN data_keys ON data_keys.id = tips.data_key_id "
           "WHERE data_keys.kek_id = 'sealed'") if sealed_only else "SELECT count(*) FROM tips"
    engine = create_engine(BENCH_DB_URL.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        n = int(conn.execute(text(sql)).scalar_one())
    engine.dispose()
    return n


def drop_database() -> None:
    psql(_TERMINATE)
    psql(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True,
                         text=True, check=False).stdout
    return [int(p) for p in out.split()]


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / CLK_TCK


def postgres_pids() -> list[int]:
    """Every PostgreSQL server process on this machine (other users' load counts too)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


class Gunicorn:
    def __init__(self, app: str, env: dict[str, str], workdir: Path, workers: int = 2,
                 access_log: bool = True) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (workdir / f"gunicorn-{self.port}.log").open("w")
        config = REPO / "config" / "gunicorn.conf.py"
        if not access_log:
            # The production config with ``accesslog`` unset, gunicorn's default: no line is
            # built or written (its command line takes only a file name for the access log).
            wrapper = workdir / "gunicorn-no-access-log.conf.py"
            wrapper.write_text(f"exec(compile(open({str(config)!r}).read(), {str(config)!r}, "
                               "'exec'))\naccesslog = None\n")
            config = wrapper
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(config),
             "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers), app],
            cwd=str(REPO), env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"gunicorn exited; see {self.log.name}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit("gunicorn did not start in 30 s")
        deadline = time.monotonic() + 10
        while len(worker_pids(self.proc.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.1)

    def workers(self) -> list[int]:
        return worker_pids(self.proc.pid)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def wrk(url: str, script: Path, concurrency: int, seconds: float) -> dict[str, int]:
    threads = 2 if concurrency >= 2 else 1
    proc = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{max(1, round(seconds))}s",
         "--timeout", "10s", "-s", str(script), url],
        capture_output=True, text=True, check=False, timeout=seconds + 60,
    )
    if proc.returncode != 0:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    out = proc.stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise SystemExit("wrk printed no summary:\n" + out)
    data: dict[str, int] = json.loads(line[len("WRKJSON "):])
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    data["non2xx"] = int(m.group(1)) if m else 0
    return data


def measure(label: str, server: Gunicorn, url: str, script: Path, concurrency: int,
            seconds: float) -> Run:
    pids = server.workers()
    pg = postgres_pids()
    before, pg_before = cpu_seconds(pids), cpu_seconds(pg)
    data = wrk(url, script, concurrency, seconds)
    cpu, pg_cpu = cpu_seconds(pids) - before, cpu_seconds(pg) - pg_before
    errors = data["connect"] + data["read"] + data["write"] + data["timeout"] + data["non2xx"]
    return Run(label, concurrency, data["requests"], data["duration_us"] / 1e6,
               data["p50_us"] / 1000, data["p90_us"] / 1000, data["p99_us"] / 1000,
               data["max_us"] / 1000, errors, cpu, pg_cpu)


def session_for(url: str) -> tuple[str, str]:
    """Fetch the form once: the session cookie and the CSRF token every request reuses."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    deadline = time.monotonic() + 60
    while True:  # workers still importing the app (several at once on a busy machine)
        try:
            html = opener.open(url + "/report", timeout=10).read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*'
                      r'name="csrf_token"', html)
    if token is None:
        raise SystemExit("no CSRF token in the form")
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    return cookie, token.group(1) or token.group(2)


def redis_keys() -> set[str]:
    import redis

    return {k.decode() for k in redis.Redis.from_url(REDIS_URL).keys("*")}


def clean_redis(before: set[str]) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    new = [k for k in client.keys("*") if k.decode() not in before]
    if new:
        client.delete(*new)


LABELS = {"bare": "bare Flask route", "urlencoded": "tip, URL-encoded",
          "multipart": "tip, multipart"}


def median_run(runs: list[Run]) -> Run:
    """The run with the median throughput of repeated runs (its own latencies and CPU)."""
    ordered = sorted(runs, key=lambda r: r.rps)
    return ordered[len(ordered) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--key-file-mode", action="store_true",
                        help="no district read keys: tips stay under the key file (before "
                             "sealing); the default seals every tip as production does")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per server")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--forms", nargs="+", choices=["urlencoded", "multipart"],
                        default=["urlencoded", "multipart"],
                        help="how the tip form is sent: URL-encoded (the page's JavaScript, no "
                             "picture) and/or multipart (no JavaScript)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="interleaved rounds; the median round of each row is reported")
    parser.add_argument("--workers", type=int, default=0,
                        help="gunicorn sync workers for both servers (default: the production "
                             "rule of config/gunicorn.conf.py for this machine)")
    parser.add_argument("--access-log", action="store_true",
                        help="keep the production config's access log on both servers (off by "
                             "default, as issue 15 measured)")
    parser.add_argument("--without", nargs="+", choices=list(ABLATE_PARTS), default=[],
                        help="also measure a third server with these parts of a tip's work "
                             "switched off (bench/ablate.py; measuring only, never a "
                             "deployment): URL-encoded tips, one more row per concurrency")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is required: apt-get install wrk")

    workdir, key_file = bench_workdir("tipline-bench-")
    fresh_database(sealed=not args.key_file_mode)
    redis_before = redis_keys()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TIPLINE_")},
        "TIPLINE_CONFIG_FILE": str(workdir / "none.env"),
        "TIPLINE_MODE": "production",
        "TIPLINE_DATABASE_URL": BENCH_DB_URL,
        "TIPLINE_BROKER_URL": REDIS_URL,
        "TIPLINE_SECRET_KEY": "b" * 48,
        "TIPLINE_KEY_FILE": str(key_file),
        "TIPLINE_PUBLIC_URL": "http://127.0.0.1",
        "TIPLINE_RATELIMIT_STORAGE_URL": "memory://",
        "TIPLINE_LOG_LEVEL": "WARNING",
        "TIPLINE_DEMO_DATA": "false",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    workers = args.workers or production_workers()
    print(f"load average before: {load_average()}", flush=True)
    rounds: dict[tuple[str, int], list[Run]] = {}
    tips_before = count_tips()
    servers: list[Gunicorn] = []
    try:
        tipline_server = Gunicorn("tipline.wsgi:app", env, workdir, workers, args.access_log)
        servers.append(tipline_server)
        bare_server = Gunicorn("bench.intake:bare_app", env, workdir, workers, args.access_log)
        servers.append(bare_server)
        labels = dict(LABELS)
        ablated_server = None
        if args.without:
            ablated_server = Gunicorn("bench.ablate:create()",
                                      {**env, "BENCH_WITHOUT": ",".join(args.without)},
                                      workdir, workers, args.access_log)
            servers.append(ablated_server)
        cookie, token = session_for(tipline_server.url)
        targets: dict[str, tuple[Gunicorn, str, Path]] = {}
        bare_script = workdir / "bare.lua"
        bare_script.write_text(BARE_LUA)
        targets["bare"] = (bare_server, bare_server.url + "/bare", bare_script)
        for form in args.forms:
            script = workdir / f"submit-{form}.lua"
            script.write_text(LUA.replace("__COOKIE__", cookie).replace("__TOKEN__", token)
                              .replace("__PATH__", "/report").replace("__MODE__", form))
            targets[form] = (tipline_server, tipline_server.url + "/report", script)
        if ablated_server is not None:
            # The same session cookie and token: both servers have the same secret key.
            script = workdir / "submit-ablated.lua"
            script.write_text(LUA.replace("__COOKIE__", cookie).replace("__TOKEN__", token)
                              .replace("__PATH__", "/report").replace("__MODE__", "urlencoded"))
            targets["ablated"] = (ablated_server, ablated_server.url + "/report", script)
            labels["ablated"] = "tip, URL, w/o " + "+".join(args.without)
        for _server, url, script in targets.values():
            wrk(url, script, 8, args.warmup)
        # Interleaved: each round measures every row once, so a change in the machine's load
        # during the benchmark falls on all rows alike and the ratios stay comparable.
        for _round in range(args.repeat):
            for c in args.concurrency:
                for key, (server, url, script) in targets.items():
                    run = measure(labels[key], server, url, script, c, args.duration)
                    rounds.setdefault((key, c), []).append(run)
    finally:
        for server in servers:
            server.stop()
    count_all = count_tips()
    stored, sealed = count_all - tips_before, count_tips(sealed_only=True)
    clean_redis(redis_before)
    drop_database()
    shutil.rmtree(workdir, ignore_errors=True)

    runs = {key: median_run(rs) for key, rs in rounds.items()}
    access = "on (the production config)" if args.access_log else "off (as issue 15 measured)"
    print(f"\ngunicorn: {workers} sync workers, config/gunicorn.conf.py, access log {access}; "
          "PostgreSQL 127.0.0.1; "
          f"Redis broker; wrk, {args.duration:g} s per run, {args.repeat} interleaved "
          f"round(s), median round shown")
    print("timed request: POST /report (full submission); the form fetch is NOT included")
    print(f"tips sealed to staff keys (no key-file slot): {sealed} of {count_all} stored\n")
    header = (f"{'':27} {'conc':>4} {'req':>7} {'req/s':>8} {'p50 ms':>7} {'p90 ms':>7} "
              f"{'p99 ms':>7} {'max ms':>7} {'errors':>6} {'CPU ms/req':>10} {'PG ms/req':>9}")
    print(header)
    for r in runs.values():
        print(f"{r.label:27} {r.concurrency:>4} {r.requests:>7} {r.rps:>8.1f} {r.p50_ms:>7.1f} "
              f"{r.p90_ms:>7.1f} {r.p99_ms:>7.1f} {r.max_ms:>7.1f} {r.errors:>6} "
              f"{r.cpu_ms_per_request:>10.2f} {r.db_cpu_ms_per_request:>9.2f}")
    print()
    rows = []
    for (key, c), r in runs.items():
        bare = runs[("bare", c)]
        ratio = r.rps / bare.rps if bare.rps else 0.0
        rows.append(f"| {r.label} | {c} | {r.rps:.1f} | {r.p99_ms:.1f} | "
                    f"{r.cpu_ms_per_request:.2f} | {r.errors} | {ratio:.3f} |")
        if key == "bare":
            continue
        verdict = [f"ratio {ratio:.3f} {'>=' if ratio >= 0.1 else '<'} 0.1"]
        if c == 8:
            verdict.append(f"p99 {r.p99_ms:.1f} ms {'<=' if r.p99_ms <= 50 else '>'} 50 ms")
        verdict.append(f"{r.errors} errors")
        print(f"{r.label}, concurrency {c}: tips/s {r.rps:.1f} vs bare {bare.rps:.1f} req/s; "
              f"server CPU per tip {r.cpu_ms_per_request:.2f} ms (gunicorn workers) + "
              f"{r.db_cpu_ms_per_request:.2f} ms (PostgreSQL); " + "; ".join(verdict))
    measured = sum(r.requests for (key, _c), rs in rounds.items() if key != "bare" for r in rs)
    print(f"tips stored: {stored} (timed requests {measured}, plus warm-up and requests still "
          "in flight when wrk stopped)")
    print(f"load average after: {load_average()}")
    print("\nrows for docs/performance.md (ok/s, p99 ms, CPU ms per request, errors, "
          "ratio to the bare route):")
    print("| | conc | req/s | p99 ms | CPU ms/req | errors | ratio |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
