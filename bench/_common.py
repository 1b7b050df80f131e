"""Helpers every benchmark shares: the machine's load, the production worker count, and a
WSGI call timed in the calling thread's CPU (the in-process benchmarks)."""

from __future__ import annotations

import io
import os
import runpy
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def load_average() -> str:
    """The 1/5/15-minute load averages and the CPU count, printed before and after each
    benchmark so that a run measured on a busy machine shows it."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def production_workers() -> int:
    """The sync worker count ``config/gunicorn.conf.py`` gives this machine by default (its
    own rule, read from the file, so the benchmark cannot drift from production)."""
    conf = runpy.run_path(str(REPO / "config" / "gunicorn.conf.py"))
    return int(conf["_default_workers"]())


def wsgi_environ(method: str, path: str, data: bytes = b"", ctype: str = "",
                 **headers: str) -> dict[str, Any]:
    """A WSGI environ for an in-process call; ``headers`` are extra CGI keys (``HTTP_...``)."""
    return {
        "REQUEST_METHOD": method, "PATH_INFO": path, "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(data), "wsgi.errors": sys.stderr,
        "CONTENT_TYPE": ctype, "CONTENT_LENGTH": str(len(data)), "REMOTE_ADDR": "127.0.0.1",
        **headers,
    }


def timed_call(app: Any, environ: dict[str, Any], must_hold: bytes = b"") -> float:
    """The calling thread's CPU seconds for one request; stops the benchmark on anything but
    a 200 whose body holds ``must_hold``, so a failing request is never timed as a fast one."""
    status: list[str] = []

    def start_response(s: str, _headers: Any, _exc: Any = None) -> None:
        status.append(s)

    started = time.thread_time()
    body = b"".join(app(environ, start_response))
    spent = time.thread_time() - started
    if not status or not status[0].startswith("200") or must_hold not in body:
        raise SystemExit(f"request failed: {status} {body[:300]!r}")
    return spent


def bench_workdir(prefix: str) -> tuple[Path, Path]:
    """A new temporary directory with a fresh key file and an empty settings file
    (``none.env``, so no developer's settings leak into a run); (directory, key file)."""
    from tipline.crypto import KeyRing, write_key_file

    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    key_file = workdir / "keys.json"
    write_key_file(key_file, KeyRing.generate())
    (workdir / "none.env").write_text("")
    return workdir, key_file
