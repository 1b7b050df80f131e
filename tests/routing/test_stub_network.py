"""The Twilio stand-in's ``Network`` (what Twilio does after accepting) behaves as documented:
per-sender rate, sticky sender in a pool, ValidityPeriod expiry (30036), calls per second,
and status callbacks signed exactly as Twilio signs them (issue 18)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from twilio.request_validator import RequestValidator

from tests.routing.twilio_stub import Network, StubTwilio
from tests.twilio_support import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM_NUMBER
from tipline.telephony.client import RestTwilioGateway

PUBLIC = "https://tips.example.org"
SERVICE = "MG" + "c" * 32
POOL = ("+13145550201", "+13145550202")


class Callbacks:
    """A local app stand-in: records each callback and whether its signature is Twilio's."""

    def __init__(self) -> None:
        self.got: list[tuple[float, str, dict[str, str], bool]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                ok = RequestValidator(TEST_AUTH_TOKEN).validate(
                    PUBLIC + self.path, form, self.headers.get("X-Twilio-Signature", ""))
                outer.got.append((time.time(), self.path, form, ok))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def statuses(self, sid: str) -> list[str]:
        return [f.get("MessageStatus") or f.get("CallStatus", "")
                for _t, _p, f, _ok in self.got if sid in (f.get("MessageSid"), f.get("CallSid"))]


@pytest.fixture
def world() -> Iterator[tuple[StubTwilio, Callbacks, RestTwilioGateway]]:
    cb = Callbacks()
    net = Network(cb.url, TEST_AUTH_TOKEN, pool=POOL, sender_mps=2.0, cps=2.0,
                  sms_delay=(0.2, 0.2), ring=(0.3, 0.3), talk=0.2).start()
    stub = StubTwilio(network=net).start()
    gw = RestTwilioGateway(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM_NUMBER,
                           api_base=stub.url, messaging_service_sid=SERVICE)
    yield stub, cb, gw
    stub.stop()
    cb.server.shutdown()


def _wait(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cond():
        time.sleep(0.05)
    assert cond()


def test_one_sender_sends_at_its_rate_and_expires_what_waits_past_validity(world) -> None:
    stub, cb, gw = world
    url = f"{PUBLIC}/twilio/alerts/sms-status/1"
    t0 = time.time()
    sids = [gw.send_sms("+13145550111", "alert", status_callback=url, validity_period=1)
            for _ in range(4)]  # 2 a second from one (sticky) sender: the 4th waits 1.5 s
    def final(sid: str) -> str:
        got = cb.statuses(sid)
        return "delivered" if "delivered" in got else "failed" if "failed" in got else ""

    _wait(lambda: all(final(s) for s in sids))
    assert [final(s) for s in sids] == ["delivered", "delivered", "delivered", "failed"]
    failed = next(f for _t, _p, f, _ok in cb.got if f.get("MessageStatus") == "failed")
    assert failed["ErrorCode"] == "30036"
    sent_at = sorted(t for t, _p, f, _ok in cb.got if f.get("MessageStatus") == "sent")
    assert sent_at[2] - t0 >= 0.9  # the third left the queue a second after the first
    assert all(ok for *_rest, ok in cb.got)  # signed as Twilio signs
    assert stub.network is not None and stub.network.expired == 1
    assert {f["From"] for _t, _p, f, _ok in cb.got} == {POOL[0]}  # sticky: one number


def test_a_pool_spreads_recipients_and_calls_are_answered(world) -> None:
    _stub, cb, gw = world
    a = gw.send_sms("+13145550111", "one", status_callback=f"{PUBLIC}/twilio/alerts/sms-status/1")
    b = gw.send_sms("+13145550112", "two", status_callback=f"{PUBLIC}/twilio/alerts/sms-status/2")
    call = gw.start_call("+13145550113", url=f"{PUBLIC}/twilio/alerts/call/3",
                         status_callback=f"{PUBLIC}/twilio/alerts/call-status/3")
    _wait(lambda: "delivered" in cb.statuses(a) and "delivered" in cb.statuses(b)
          and "completed" in cb.statuses(call))
    senders = {f["To"]: f["From"] for _t, _p, f, _ok in cb.got if "MessageSid" in f}
    assert senders["+13145550111"] != senders["+13145550112"]
    assert cb.statuses(call) == ["ringing", "in-progress", "completed"]
    assert all(p.startswith("/twilio/alerts/") for _t, p, _f, _ok in cb.got)
