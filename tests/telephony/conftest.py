"""Fixtures for the telephony tests: the Prism mock and a small local media server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import BoundDatabase
from tests.twilio_support import (
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    TEST_FROM_NUMBER,
    twilio_mock_url,
)
from tipline.settings import Settings

__all__ = ["MediaServer", "media_server", "tw_app", "tw_client", "tw_settings",
           "twilio_mock_url"]


@pytest.fixture
def tw_settings(settings: Settings) -> Settings:
    return settings.with_overrides(twilio_account_sid=TEST_ACCOUNT_SID,
                                   twilio_auth_token=TEST_AUTH_TOKEN,
                                   twilio_from_number=TEST_FROM_NUMBER)


@pytest.fixture
def tw_app(tw_settings, pg_engine, connection, queue, vault):  # type: ignore[no-untyped-def]
    from tipline import crypto
    from tipline.app import create_app

    application = create_app(tw_settings, db=BoundDatabase(pg_engine, connection), queue=queue)
    application.config.update(TESTING=True)
    crypto.install(vault)
    return application


@pytest.fixture
def tw_client(tw_app):  # type: ignore[no-untyped-def]
    return tw_app.test_client()


@dataclass
class MediaServer:
    """Serves fixed bytes per path, like Twilio's media/recording URLs; records each GET."""

    base_url: str = ""
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization)
    redirects: dict[str, str] = field(default_factory=dict)
    fail_with: dict[str, int] = field(default_factory=dict)

    def add(self, path: str, content: bytes, content_type: str) -> str:
        self.files[path] = (content, content_type)
        return self.base_url + path


@pytest.fixture
def media_server() -> Iterator[MediaServer]:
    state = MediaServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append((self.path, self.headers.get("Authorization")))
            if self.path in state.fail_with:
                self.send_response(state.fail_with[self.path])
                self.end_headers()
                return
            if self.path in state.redirects:
                self.send_response(302)
                self.send_header("Location", state.redirects[self.path])
                self.end_headers()
                return
            if self.path not in state.files:
                self.send_response(404)
                self.end_headers()
                return
            body, ctype = state.files[self.path]
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
