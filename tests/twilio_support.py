"""Test support for anything that talks to Twilio or receives its webhooks.

- ``twilio_mock_url``: session fixture running Prism (``$TIPLINE_TEST_PRISM``) on Twilio's own
  OpenAPI contract (``$TIPLINE_TEST_TWILIO_SPEC``); fails loudly when either is missing.
- ``RecordingHttpClient``: an SDK ``HttpClient`` that remembers every request the SDK made
  (method, path, query, form) and can answer with canned responses instead of the network.
- ``signed_post``: POST a webhook signed exactly as Twilio signs it.
- ``webhook_example``: the field sets from ``shared/twilio/webhook_examples.json``.

Import with ``from tests.twilio_support import ...``; to use the fixture in another test
directory, import ``twilio_mock_url`` into that directory's conftest.py or test module.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator

REPO = Path(__file__).resolve().parent.parent
TEST_ACCOUNT_SID = "AC" + "0" * 32
TEST_AUTH_TOKEN = "test-auth-token-0123456789abcdef"
TEST_FROM_NUMBER = "+13145550100"
PUBLIC_BASE = "https://tips.example.org"


def _spec_path() -> Path:
    default = REPO.parent / "shared" / "twilio" / "twilio_api_v2010.trimmed.json"
    return Path(os.environ.get("TIPLINE_TEST_TWILIO_SPEC", str(default)))


def _examples_path() -> Path:
    return _spec_path().parent / "webhook_examples.json"


@cache
def _examples() -> dict[str, Any]:
    path = _examples_path()
    if not path.exists():
        raise RuntimeError(f"Twilio webhook examples not found at {path} (set SHARED_DIR)")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["webhooks"]
    return data


def webhook_example(kind: str, variant: str = "example", **overrides: str) -> dict[str, str]:
    """A fresh copy of one example body from webhook_examples.json, with ``overrides`` applied."""
    body = copy.deepcopy(_examples()[kind][variant])
    body.update(overrides)
    return {str(k): str(v) for k, v in body.items()}


def webhook_fields(kind: str) -> dict[str, Any]:
    """The ``always``/``sometimes``/``values`` description of one webhook."""
    return copy.deepcopy(_examples()[kind])


def sign(url: str, params: Mapping[str, Any], token: str) -> str:
    """The ``X-Twilio-Signature`` Twilio would send for ``url`` and ``params``."""
    return str(RequestValidator(token).compute_signature(url, dict(params)))


def signed_post(client: Any, path: str, params: Mapping[str, Any], token: str = TEST_AUTH_TOKEN,
                public_base: str = PUBLIC_BASE, **kwargs: Any) -> Any:
    """POST ``params`` to ``path`` with the signature Twilio computes over public_base + path."""
    sig = sign(public_base.rstrip("/") + path, params, token)
    headers = dict(kwargs.pop("headers", {}) or {})
    headers["X-Twilio-Signature"] = sig
    return client.post(path, data=dict(params), headers=headers, **kwargs)


@dataclass(frozen=True)
class SentRequest:
    method: str
    path: str
    params: dict[str, Any]
    data: dict[str, Any]


class RecordingHttpClient(TwilioHttpClient):
    """Remembers what the SDK sent; optionally redirects api.twilio.com to ``base_url``.

    ``canned`` responses (``twilio.http.response.Response``) are returned in order instead of
    making a request, e.g. ``Response(400, '{"code": 21211, ...}')`` to test error handling.
    """

    def __init__(self, base_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._base = urlsplit(base_url) if base_url else None
        self.sent: list[SentRequest] = []
        self.canned: list[Response] = []

    def request(self, method: str, url: str, params: dict[str, object] | None = None,
                data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                auth: tuple[str, str] | None = None, timeout: float | None = None,
                allow_redirects: bool = False) -> Response:
        parts = urlsplit(url)
        self.sent.append(SentRequest(method.upper(), parts.path, dict(params or {}),
                                     dict(data or {})))
        if self.canned:
            return self.canned.pop(0)
        if self._base is not None:
            host = parts.hostname or ""
            if host.startswith("api.") and host.endswith(".twilio.com"):
                url = urlunsplit((self._base.scheme, self._base.netloc, parts.path, parts.query,
                                  ""))
        return super().request(method, url, params=params, data=data, headers=headers,
                               auth=auth, timeout=timeout, allow_redirects=allow_redirects)

    def last(self) -> SentRequest:
        assert self.sent, "the SDK sent nothing"
        return self.sent[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def twilio_mock_url() -> Iterator[str]:
    """Base URL of a Prism mock of Twilio's REST API, started once per test run."""
    yield from _prism(_spec_path())


# Twilio's Messaging v1 contract (messaging.twilio.com), cut to what the A2P registration check
# reads; its "x-derived-from" says from where and how.
MESSAGING_SPEC = Path(__file__).resolve().parent / "telephony" / \
    "twilio_messaging_v1.trimmed.json"


@pytest.fixture(scope="session")
def twilio_messaging_mock_url() -> Iterator[str]:
    """Base URL of a Prism mock of Twilio's Messaging v1 API, started once per test run."""
    yield from _prism(MESSAGING_SPEC)


def _prism(spec: Path) -> Iterator[str]:
    prism = os.environ.get("TIPLINE_TEST_PRISM", str(REPO / "node_modules" / ".bin" / "prism"))
    if not Path(prism).exists():
        pytest.fail(f"Prism not found at {prism} (set TIPLINE_TEST_PRISM; npm install)")
    if not spec.exists():
        pytest.fail(f"Twilio contract not found at {spec} (set TIPLINE_TEST_TWILIO_SPEC)")
    port = _free_port()
    proc = subprocess.Popen(
        [prism, "mock", "-h", "127.0.0.1", "-p", str(port), "-v", "warn", str(spec)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                urllib.request.urlopen(url + "/", timeout=1)  # noqa: S310 - local mock
                break
            except urllib.error.HTTPError:
                break  # any HTTP answer: it is listening
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"Prism exited with {proc.returncode} before listening")
                if time.monotonic() > deadline:
                    pytest.fail("Prism did not start within 60 s")
                time.sleep(0.1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
