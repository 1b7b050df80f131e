"""The pool's checkout check (``tipline.db``): a connection the server closed is replaced before
a request uses it, without a round trip to PostgreSQL on every checkout."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import PG_URL
from tipline.db import Database, make_engine


@pytest.fixture
def database() -> Iterator[Database]:
    db = Database(PG_URL)
    yield db
    db.dispose()


def _backend_pid(db: Database) -> int:
    with db.session() as s:
        return int(s.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            deadline = time.monotonic() + 5
            while conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                               {"p": pid}).scalar_one() and time.monotonic() < deadline:
                time.sleep(0.02)
    finally:
        admin.dispose()


def test_a_connection_the_server_closed_is_replaced_at_checkout(database: Database) -> None:
    first = _backend_pid(database)
    assert _backend_pid(database) == first  # the pooled connection is reused
    _terminate(first)  # as a PostgreSQL restart or an idle timeout would
    second = _backend_pid(database)  # no OperationalError: replaced before use
    assert second != first


def test_a_checkout_sends_no_ping(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    pings: list[Any] = []
    real = database.engine.dialect.do_ping

    def counting(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return bool(real(dbapi_connection))

    monkeypatch.setattr(database.engine.dialect, "do_ping", counting)
    for _ in range(5):
        _backend_pid(database)
    assert pings == []
