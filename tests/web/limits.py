"""Helpers for the rate-limit tests: an app built with chosen settings, a wrong follow-up code."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import BoundDatabase
from tests.intake.helpers import csrf_from
from tipline import crypto

WRONG_CODE = "AAAA-BBBB-CCCC-DDDD"


@pytest.fixture
def build_app(settings, pg_engine, connection, queue, vault) -> Any:  # type: ignore[no-untyped-def]
    """``build_app(**overrides)``: the app on the test database with some settings changed."""
    from tipline.app import create_app

    def build(**overrides: Any) -> Any:
        application = create_app(settings.with_overrides(**overrides),
                                 db=BoundDatabase(pg_engine, connection), queue=queue)
        application.config.update(TESTING=True)
        crypto.install(vault)
        return application

    return build


def client_at(app: Any, addr: str) -> Any:
    """A test client whose requests come from ``addr`` (the peer address)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = addr
    return client


def wrong_code(client: Any, headers: dict[str, str] | None = None) -> int:
    """Open the follow-up page and try a code that opens nothing; the status code."""
    token = csrf_from(client.get("/followup", headers=headers).get_data(as_text=True))
    return int(client.post("/followup", headers=headers,
                           data={"csrf_token": token, "code": WRONG_CODE}).status_code)
