"""A tiny local stand-in for Twilio's REST API that timestamps what it receives and can fail.

The Prism mock checks requests against Twilio's contract but cannot fail on demand, hang, or
say when a request arrived; fault tests and the routing benchmark need all three. Point
``TIPLINE_TWILIO_API_BASE`` at ``StubTwilio.url``. Each request is answered by the next
entry of ``script`` (an HTTP status such as 500 or 400, or ``("hang", seconds)``), then 201.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass(frozen=True)
class StubRequest:
    at: float  # time.time() on arrival
    kind: str  # sms | voice
    form: dict[str, str]


@dataclass
class StubTwilio:
    url: str = ""
    requests: list[StubRequest] = field(default_factory=list)
    script: list[Any] = field(default_factory=list)
    # Optional per-request rule (kind, form) -> behaviour, consulted before ``script``.
    rule: Callable[[str, dict[str, str]], Any] | None = None
    # Seconds to wait before answering each request: Twilio's own response time, which a
    # worker thread spends waiting (the arrival time is still taken on arrival).
    latency: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _server: ThreadingHTTPServer | None = None

    def start(self, port: int = 0) -> StubTwilio:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; without this, Nagle holds the body
            # back until the client acknowledges the headers (up to 40 ms each request).
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8", "replace")
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                kind = "voice" if self.path.endswith("/Calls.json") else "sms"
                behaviour = stub._arrive(kind, form)
                if stub.latency:
                    time.sleep(stub.latency)
                if isinstance(behaviour, tuple) and behaviour[0] == "hang":
                    time.sleep(float(behaviour[1]))
                    behaviour = 201
                status = int(behaviour)
                if status == 201:
                    with stub._lock:
                        n = next(stub._ids)
                    prefix = "CA" if kind == "voice" else "SM"
                    body: dict[str, Any] = {"sid": f"{prefix}{n:032x}", "status": "queued",
                                            "to": form.get("To"), "from": form.get("From")}
                elif status == 400:
                    body = {"code": 21211, "message": "The 'To' number is not valid.",
                            "more_info": "https://www.twilio.com/docs/errors/21211",
                            "status": 400}
                else:
                    body = {"code": 20500, "message": "Internal Server Error",
                            "status": status}
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client (a killed worker) went away
                    pass

            def log_message(self, format: str, *args: object) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def _arrive(self, kind: str, form: dict[str, str]) -> Any:
        with self._lock:
            self.requests.append(StubRequest(time.time(), kind, form))
            if self.rule is not None:
                decided = self.rule(kind, form)
                if decided is not None:
                    return decided
            return self.script.pop(0) if self.script else 201

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def received(self, kind: str | None = None, to: str | None = None) -> list[StubRequest]:
        with self._lock:
            return [r for r in self.requests
                    if (kind is None or r.kind == kind) and (to is None or r.form.get("To") == to)]
