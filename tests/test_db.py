"""``Database.held_session``: the worker tasks' session, one connection for all its commits."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from tests.conftest import PG_URL
from tipline.db import Database


@pytest.fixture
def database():
    db = Database(PG_URL)
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS held_probe (n int)"))
        conn.execute(text("DELETE FROM held_probe"))
    yield db
    with db.engine.begin() as conn:
        conn.execute(text("DROP TABLE held_probe"))
    db.dispose()


def count(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM held_probe")).scalar_one())


def test_two_commits_use_one_checkout(database: Database) -> None:
    checkouts: list[int] = []
    event.listen(database.engine, "engine_connect", lambda conn: checkouts.append(1))
    with database.held_session() as s:
        s.execute(text("INSERT INTO held_probe VALUES (1)"))
        s.commit()
        assert count(database) == 1  # committed, visible to another connection
        s.execute(text("INSERT INTO held_probe VALUES (2)"))
        s.commit()
    # One checkout for the session's two transactions, one for the count in between.
    assert len(checkouts) == 2
    assert count(database) == 2


def test_what_is_not_committed_is_rolled_back(database: Database) -> None:
    with pytest.raises(RuntimeError), database.held_session() as s:
        s.execute(text("INSERT INTO held_probe VALUES (1)"))
        s.commit()
        s.execute(text("INSERT INTO held_probe VALUES (2)"))
        raise RuntimeError("worker lost mid-task")
    with database.held_session() as s:
        s.execute(text("INSERT INTO held_probe VALUES (3)"))  # never committed
    assert count(database) == 1
