"""Server CPU per tip submission in one process, each kind against a bare route in one run.

    .venv/bin/python -m bench submitcpu [--requests 200] [--rounds 5]

``bench intake`` gives throughput and latency under gunicorn and wrk, which only a quiet
machine measures well. This one calls the WSGI app directly (no network, no client work in the
measured time) with prepared request bodies and reads the calling thread's CPU time around
each call. That time still grows when other processes share the cores (we saw the same code
read 1.8 ms per submit at load 4 and 4.4 ms at load 10 on 2 CPUs): compare the kinds within
one run, as the ratios do, not runs on a differently loaded machine. Each round sends, in
turn, one request of each kind: a bare Flask route (``bench.intake``'s), the tip form
URL-encoded (the page's JavaScript with no picture) and the tip form as multipart with a new
random boundary (no JavaScript); the median per kind per round is kept, and the median of the
rounds reported, with the ratio of the bare route's CPU to each.

Like ``bench intake`` it uses a fresh PostgreSQL database ``tipline_bench`` and the Redis job
queue on 127.0.0.1:6379 db 12 (production mode), and drops and deletes what it made.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import statistics
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from bench._common import bench_workdir, load_average, timed_call, wsgi_environ
from bench.intake import (
    BENCH_DB_URL,
    REDIS_URL,
    bare_app,
    clean_redis,
    drop_database,
    fresh_database,
    redis_keys,
)

FIELDS = [
    ("school", "slps-roosevelt"), ("category", "threat"), ("danger_now", "no"),
    ("body", "A student said he will start a fight at the bus stop after school on Friday."),
    ("when", "Friday after school"), ("where", "Bus stop on Arsenal St"), ("who", ""),
    ("how_known", "I heard it in class"), ("school_q", ""), ("website", ""), ("ui_lang", "en"),
    ("send", "1"),
]


def _body(kind: str, token: str) -> tuple[str, bytes]:
    fields = [*FIELDS, ("csrf_token", token), ("submission", secrets.token_hex(16))]
    if kind == "urlencoded":
        return ("application/x-www-form-urlencoded",
                urlencode([*fields, ("attachments", "")]).encode())
    boundary = "----WebKitFormBoundary" + secrets.token_hex(8)
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
             for k, v in fields]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="attachments"; '
                 'filename=""\r\nContent-Type: application/octet-stream\r\n\r\n\r\n'
                 f"--{boundary}--\r\n")
    return f"multipart/form-data; boundary={boundary}", "".join(parts).encode()


def _environ(method: str, path: str, cookie: str = "", ctype: str = "",
             data: bytes = b"") -> dict[str, Any]:
    return wsgi_environ(method, path, data, ctype, HTTP_COOKIE=cookie)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per kind per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"load average before: {load_average()}", flush=True)

    workdir, key_file = bench_workdir("tipline-bench-cpu-")
    fresh_database()
    redis_before = redis_keys()
    saved = dict(os.environ)
    os.environ.update({
        "TIPLINE_CONFIG_FILE": str(workdir / "none.env"), "TIPLINE_MODE": "production",
        "TIPLINE_DATABASE_URL": BENCH_DB_URL, "TIPLINE_BROKER_URL": REDIS_URL,
        "TIPLINE_SECRET_KEY": "b" * 48, "TIPLINE_KEY_FILE": str(key_file),
        "TIPLINE_PUBLIC_URL": "http://127.0.0.1", "TIPLINE_RATELIMIT_STORAGE_URL": "memory://",
        "TIPLINE_LOG_LEVEL": "WARNING", "TIPLINE_DEMO_DATA": "false",
    })
    try:
        from tipline.app import create_app
        from tipline.settings import load_settings

        app = create_app(load_settings())
        client = app.test_client()
        page = client.get("/report")
        html = page.get_data(as_text=True)
        found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
        if found is None:
            raise SystemExit("no CSRF token in the form")
        token = found.group(1)
        cookie = "; ".join(h.split(";", 1)[0] for h in page.headers.getlist("Set-Cookie"))
        kinds: dict[str, Callable[[], dict[str, Any]]] = {
            "bare Flask route": lambda: _environ("GET", "/bare"),
            "tip, URL-encoded": lambda: _environ("POST", "/report", cookie,
                                                 *_body("urlencoded", token)),
            "tip, multipart": lambda: _environ("POST", "/report", cookie,
                                               *_body("multipart", token)),
        }
        apps = {"bare Flask route": bare_app}
        for kind, make in kinds.items():  # warm-up: caches, prepared statements, connections
            for _ in range(50):
                timed_call(apps.get(kind, app), make())
        medians: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _round in range(args.rounds):
            spent: dict[str, list[float]] = {kind: [] for kind in kinds}
            for _ in range(args.requests):
                for kind, make in kinds.items():
                    environ = make()  # built outside the measured time
                    spent[kind].append(timed_call(apps.get(kind, app), environ))
            for kind, values in spent.items():
                medians[kind].append(1000 * statistics.median(values))
    finally:
        os.environ.clear()
        os.environ.update(saved)
        clean_redis(redis_before)
        drop_database()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nserver CPU per request, in-process, the calling thread's CPU time; {args.rounds} "
          f"rounds of {args.requests} requests per kind, interleaved\n")
    bare = statistics.median(medians["bare Flask route"])
    print("| | CPU ms/request (median of rounds) | rounds | bare route's CPU / this |")
    print("|---|---|---|---|")
    for kind, values in medians.items():
        mid = statistics.median(values)
        print(f"| {kind} | {mid:.2f} | {_fmt(values)} | {bare / mid:.3f} |")
    print(f"\nload average after: {load_average()}")


def _fmt(values: Iterable[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
