"""Starting real processes (tipline run, gunicorn, celery, a private redis) for end-to-end tests."""

from __future__ import annotations

import html
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.livesupport import free_port

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start(name: str, cmd: list[str], env: dict[str, str], logdir: Path) -> Proc:
    log = logdir / f"{name}.log"
    fh = open(log, "ab")  # noqa: SIM115 - handed to the child
    popen = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                             cwd=REPO, start_new_session=True)
    return Proc(name, popen, log)


class Supervised:
    """A process restarted whenever it exits on its own, as ``docker-compose.yml``'s
    ``restart: unless-stopped`` does for the worker in a deployment.

    Celery 5.7's worker can exit when Redis goes away while it still holds an unacknowledged
    task (kombu fails to restore it: ``'NoneType' object has no attribute 'hostname'``); the
    deployment's restart policy is what brings it back, so the outage tests run it the same
    way. ``restarts`` says how often that happened.
    """

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], logdir: Path) -> None:
        import threading

        self._args = (name, cmd, env, logdir)
        self.proc = start(*self._args)
        self.restarts = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    @property
    def log(self) -> Path:
        return self.proc.log

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            if self.proc.popen.poll() is not None and not self._stopping.is_set():
                self.restarts += 1
                self.proc = start(*self._args)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self.proc.stop(sig, timeout)

    def output(self) -> str:
        return self.proc.output()


def child_pids(pid: int) -> list[int]:
    """The direct children of a process (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIPLINE_", "TWILIO_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    # The rigs' tips repeat a few texts at one school; each must alert (tests/surge has
    # grouping's own tests).
    env["TIPLINE_SURGE_GROUPING"] = "false"
    env.update(extra)
    return env


def start_redis(logdir: Path, port: int | None = None) -> tuple[Proc, int]:
    port = port or free_port()
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = start(f"redis-{port}", [exe, "--port", str(port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no"], base_env(), logdir)
    wait_for(lambda: _tcp_open(port), 10, f"redis on {port}")
    return proc, port


def _tcp_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_http(url: str, timeout: float = 30, proc: Proc | None = None) -> None:
    """Wait for ``/healthz``. Given the serving process, stop waiting as soon as it exits and
    put its output in the failure, so a start that never answers says why."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            last = f"{proc.name} exited with {proc.popen.returncode}"
            break
        try:
            status, _h, _b = request("GET", url + "/healthz")
        except Exception as exc:
            last = exc
        else:
            if status == 200:
                return
            last = status
        time.sleep(0.2)
    message = f"{url} did not answer within {timeout}s (last: {last!r})"
    if proc is not None:
        message += f"\n--- {proc.name} output ---\n{proc.output()[-4000:]}"
    raise AssertionError(message)


@dataclass
class Browserless:
    """A tiny HTTP client with a cookie jar and a chosen source address (to check logs)."""

    base: str
    source: str = "127.0.0.1"
    user_agent: str = "tipline-e2e-agent/1.0"
    cookies: dict[str, str] = field(default_factory=dict)

    def call(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, str]:
        headers = {"User-Agent": self.user_agent}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        status, resp_headers, text = request(method, self.base + path, body, headers, self.source)
        for name, value in resp_headers:
            if name.lower() == "set-cookie":
                k, _, rest = value.partition("=")
                self.cookies[k] = rest.split(";", 1)[0]
        return status, text

    def submit_tip(self, body: str, school: str = "slps-roosevelt",
                   category: str = "weapon") -> tuple[int, str]:
        status, page = self.call("GET", "/report")
        assert status == 200, page[:500]
        hidden = hidden_fields(page)
        assert "csrf_token" in hidden, "no CSRF token in the form"
        # As a browser sends it: every hidden field (CSRF token, submission nonce) and the
        # send button; no language-switch button.
        return self.call("POST", "/report", {
            **hidden, "school": school, "category": category, "danger_now": "no",
            "body": body, "send": "1",
        })


_INPUT = re.compile(r"<input\b[^>]*>")
_ATTR = re.compile(r'([\w-]+)="([^"]*)"')


def hidden_fields(page: str) -> dict[str, str]:
    """The hidden inputs of a page's forms, as a browser would send them back."""
    out = {}
    for tag in _INPUT.findall(page or ""):
        attrs = dict(_ATTR.findall(tag))
        if attrs.get("type") == "hidden" and attrs.get("name"):
            out[attrs["name"]] = html.unescape(attrs.get("value", ""))
    return out


def request(method: str, url: str, body: str | None = None, headers: dict[str, str] | None = None,
            source: str = "127.0.0.1") -> tuple[int, list[tuple[str, str]], str]:
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=20,
                                      source_address=(source, 0))
    try:
        path = u.path + (f"?{u.query}" if u.query else "")
        conn.request(method, path or "/", body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def receipt_code(page: str) -> str | None:
    m = re.search(r"<code>([0-9A-Z]{4}(?:-[0-9A-Z]{4}){3})</code>", page)
    return m.group(1) if m else None
