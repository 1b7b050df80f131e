"""A tiny local stand-in for Twilio's REST API that timestamps what it receives and can fail.

The Prism mock checks requests against Twilio's contract but cannot fail on demand, hang, or
say when a request arrived; fault tests and the routing benchmark need all three. Point
``TIPLINE_TWILIO_API_BASE`` at ``StubTwilio.url``. Each request is answered by the next
entry of ``script``, then 201:

* an HTTP status such as 500 or 400 (nothing is created);
* ``("hang", seconds)``: Twilio is slow: the message or call is created after the wait,
  then answered 201 (a client that gave up earlier never sees it);
* ``("accept-hang", seconds)``: Twilio creates it at once and then does not answer for that
  long (a send whose outcome the client cannot know).

What was created can be listed as Twilio's API does (``GET .../Messages.json`` and
``.../Calls.json`` with ``To`` and ``From``, newest first), which is how a sender whose
outcome is unknown asks whether Twilio has it.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
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
    # Every message and call created, as Twilio would list them.
    created: list[dict[str, Any]] = field(default_factory=list)
    lookups: int = 0
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
                record = None
                if isinstance(behaviour, tuple) and behaviour[0] == "accept-hang":
                    record = stub._create(kind, form)
                    time.sleep(float(behaviour[1]))
                    behaviour = 201
                if isinstance(behaviour, tuple) and behaviour[0] == "hang":
                    time.sleep(float(behaviour[1]))
                    behaviour = 201
                status = int(behaviour)
                if status == 201:
                    body: dict[str, Any] = record or stub._create(kind, form)
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

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                params = {k: v[0] for k, v in parse_qs(query).items()}
                kind = "voice" if path.endswith("/Calls.json") else "sms"
                with stub._lock:
                    stub.lookups += 1
                    rows = [r for r in reversed(stub.created) if r["kind"] == kind
                            and r["to"] == params.get("To")
                            and (not params.get("From") or r["from"] == params["From"])]
                size = int(params.get("PageSize") or 50)
                key = "calls" if kind == "voice" else "messages"
                data = json.dumps({key: [{k: v for k, v in r.items() if k != "kind"}
                                         for r in rows[:size]],
                                   "next_page_uri": None, "page": 0, "page_size": size,
                                   "uri": path}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

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

    def _create(self, kind: str, form: dict[str, str]) -> dict[str, Any]:
        """Twilio's record of an accepted message or call."""
        with self._lock:
            n = next(self._ids)
            prefix = "CA" if kind == "voice" else "SM"
            record = {"sid": f"{prefix}{n:032x}", "status": "queued", "kind": kind,
                      "to": form.get("To"), "from": form.get("From"),
                      "body": form.get("Body") if kind == "sms" else None,
                      "date_created": formatdate(time.time(), usegmt=True)}
            self.created.append(record)
        return {k: v for k, v in record.items() if k != "kind"}

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def received(self, kind: str | None = None, to: str | None = None) -> list[StubRequest]:
        with self._lock:
            return [r for r in self.requests
                    if (kind is None or r.kind == kind) and (to is None or r.form.get("To") == to)]
