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

With a ``Network`` (issue 18) it also does what Twilio does after accepting, so that figures
mean what a phone would see: each sender sends ``sender_mps`` segments a second from its own
first-in-first-out queue (a Messaging Service's pool with sticky sender: a recipient's texts
always go from the number it was first given, the least busy one); a text still queued when
its ``ValidityPeriod`` runs out fails with error 30036 and is never sent; calls start at most
``cps`` a second; and the status callbacks (``sent``/``delivered``/``failed`` for texts,
``ringing``/``in-progress``/``completed`` for calls) are POSTed, signed as Twilio signs them,
to ``callback_base`` after a carrier's or a callee's delay.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests


@dataclass
class Network:
    """Twilio past acceptance: sender queues, validity periods, calls per second, callbacks."""

    callback_base: str  # where the app listens; callbacks keep the signed public URL's path
    auth_token: str
    pool: tuple[str, ...] = ()  # a Messaging Service's numbers (MessagingServiceSid sends)
    sender_mps: float = 1.0  # segments per second per sender (a US long code: 1)
    cps: float = 1.0  # calls the account may start per second (Twilio's default: 1)
    sms_delay: tuple[float, float] = (1.0, 4.0)  # sent -> the carrier's delivery receipt
    ring: tuple[float, float] = (3.0, 8.0)  # call started -> answered
    talk: float = 20.0  # answered -> completed
    seed: int = 7
    # Filled in as it runs: sender per recipient, queue ends, what happened.
    sticky: dict[str, str] = field(default_factory=dict)
    free_at: dict[str, float] = field(default_factory=dict)
    expired: int = 0
    delivered: int = 0
    callbacks_failed: int = 0
    _calls_free: float = 0.0
    _events: list[tuple[float, int, str, dict[str, str]]] = field(default_factory=list)
    _seq: Any = field(default_factory=itertools.count)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _stop: bool = False

    def start(self) -> Network:
        import random

        self._rng = random.Random(self.seed)
        self._session = requests.Session()
        self._pool_exec = ThreadPoolExecutor(max_workers=8)
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._pool_exec.shutdown(wait=False, cancel_futures=True)

    # -- what Twilio does with an accepted message or call -----------------------------
    def accepted(self, kind: str, form: dict[str, str], sid: str, now: float) -> None:
        with self._cond:
            if kind == "sms":
                self._message(form, sid, now)
            else:
                self._call(form, sid, now)
            self._cond.notify_all()

    def _sender(self, form: dict[str, str]) -> str:
        to = form.get("To", "")
        if form.get("MessagingServiceSid") and self.pool:
            if to not in self.sticky:  # sticky sender: the least busy number, then always it
                self.sticky[to] = min(self.pool, key=lambda n: self.free_at.get(n, 0.0))
            return self.sticky[to]
        return form.get("From", "")

    def _message(self, form: dict[str, str], sid: str, now: float) -> None:
        from tipline.routing.pacing import segments

        sender = self._sender(form)
        leaves = max(now, self.free_at.get(sender, 0.0))
        validity = float(form.get("ValidityPeriod") or 36000)
        url = form.get("StatusCallback", "")
        base = {"MessageSid": sid, "SmsSid": sid, "AccountSid": form.get("AccountSid", ""),
                "From": sender, "To": form.get("To", ""), "ApiVersion": "2010-04-01"}
        if leaves - now > validity:  # expires in the queue: never sent, takes no slot
            self.expired += 1
            self._at(now + validity, url, base | {"MessageStatus": "failed",
                                                  "ErrorCode": "30036"})
            return
        self.free_at[sender] = leaves + segments(form.get("Body", "")) / self.sender_mps
        self._at(leaves, url, base | {"MessageStatus": "sent"})
        self._at(leaves + self._rng.uniform(*self.sms_delay), url,
                 base | {"MessageStatus": "delivered"})

    def _call(self, form: dict[str, str], sid: str, now: float) -> None:
        starts = max(now, self._calls_free)
        self._calls_free = starts + 1.0 / self.cps
        url = form.get("StatusCallback", "")
        base = {"CallSid": sid, "AccountSid": form.get("AccountSid", ""),
                "From": form.get("From", ""), "To": form.get("To", ""),
                "ApiVersion": "2010-04-01", "Direction": "outbound-api"}
        answered = starts + 0.1 + self._rng.uniform(*self.ring)
        self._at(starts + 0.1, url, base | {"CallStatus": "ringing"})
        self._at(answered, url, base | {"CallStatus": "in-progress"})
        self._at(answered + self.talk, url, base | {"CallStatus": "completed",
                                                    "CallDuration": str(int(self.talk))})

    def _at(self, when: float, url: str, params: dict[str, str]) -> None:
        if url:
            heapq.heappush(self._events, (when, next(self._seq), url, params))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self._events
                                          or self._events[0][0] > time.time()):
                    wait = self._events[0][0] - time.time() if self._events else 1.0
                    self._cond.wait(timeout=max(0.005, min(wait, 1.0)))
                if self._stop:
                    return
                _when, _n, url, params = heapq.heappop(self._events)
            if params.get("MessageStatus") == "delivered" or \
                    params.get("CallStatus") == "in-progress":
                self.delivered += 1
            self._pool_exec.submit(self._post, url, params)

    def _post(self, url: str, params: dict[str, str]) -> None:
        from twilio.request_validator import RequestValidator

        parts = urlsplit(url)
        target = self.callback_base.rstrip("/") + parts.path
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        try:
            resp = self._session.post(target, data=params, timeout=10,
                                      headers={"X-Twilio-Signature": signature})
            if resp.status_code >= 300:
                self.callbacks_failed += 1
        except requests.RequestException:
            self.callbacks_failed += 1


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
    # Optional: what Twilio does after accepting (queues, validity, status callbacks).
    network: Network | None = None
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
                    if stub.network is not None:
                        account = self.path.partition("/Accounts/")[2].partition("/")[0]
                        stub.network.accepted(kind, {**form, "AccountSid": account},
                                              str(body["sid"]), time.time())
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
        if self.network is not None:
            self.network.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def received(self, kind: str | None = None, to: str | None = None) -> list[StubRequest]:
        with self._lock:
            return [r for r in self.requests
                    if (kind is None or r.kind == kind) and (to is None or r.form.get("To") == to)]
