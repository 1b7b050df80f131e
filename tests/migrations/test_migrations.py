"""Every revision upgrades and downgrades, and the head schema matches the models, on both
PostgreSQL (production) and SQLite (the embedded default)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, pool

from tests.conftest import PG_URL
from tests.livesupport import create_fresh_database
from tipline import migrations
from tipline.db import make_engine
from tipline.models import Base


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_db_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.sqlite3'}"
        return
    from sqlalchemy.engine import make_url

    url = str(make_url(PG_URL).set(database=make_url(PG_URL).database + "_migrations"))
    create_fresh_database(url)  # creates and migrates; reset to empty below
    migrations.downgrade(url, "base")
    yield url


def _revisions(url: str) -> list[str]:
    script = ScriptDirectory.from_config(migrations.alembic_config(url))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def test_every_revision_upgrades_and_downgrades(empty_db_url: str) -> None:
    revisions = _revisions(empty_db_url)
    assert revisions, "no migrations found"
    for rev in revisions:
        migrations.upgrade(empty_db_url, rev)
    migrations.upgrade(empty_db_url, "heads")
    engine = make_engine(empty_db_url, poolclass=pool.NullPool)
    assert "tips" in inspect(engine).get_table_names()
    engine.dispose()
    migrations.downgrade(empty_db_url, "base")
    engine = make_engine(empty_db_url, poolclass=pool.NullPool)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    migrations.upgrade(empty_db_url, "heads")  # and back up again from nothing


def test_head_schema_matches_the_models(empty_db_url: str) -> None:
    migrations.upgrade(empty_db_url, "heads")
    engine = make_engine(empty_db_url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


def test_single_head() -> None:
    script = ScriptDirectory.from_config(migrations.alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1, (
        f"several migration heads {script.get_heads()}: add a merge revision"
    )


def _has_queue_index(url: str) -> bool:
    """The dashboard queue's expression index, asked of the catalogue (SQLAlchemy's inspector
    skips expression indexes on SQLite)."""
    from sqlalchemy import text

    query = ("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = :n"
             if url.startswith("sqlite") else
             "SELECT 1 FROM pg_indexes WHERE indexname = :n")
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        found = conn.execute(text(query), {"n": "ix_tips_queue_order"}).first() is not None
    engine.dispose()
    return found


def test_the_queue_index_survives_every_step_down_and_back_up(empty_db_url: str) -> None:
    """On SQLite a migration that copies ``tips`` (a batch column drop) loses the expression
    index unless it makes it again; a later downgrade then fails on the missing index."""
    revisions = _revisions(empty_db_url)
    made_at = revisions.index("0004")
    migrations.upgrade(empty_db_url, "heads")
    assert _has_queue_index(empty_db_url)
    for rev in reversed(revisions[made_at:-1]):  # step down one revision at a time to 0004
        migrations.downgrade(empty_db_url, rev)
        assert _has_queue_index(empty_db_url), f"ix_tips_queue_order lost at {rev}"
    migrations.upgrade(empty_db_url, "heads")
    assert _has_queue_index(empty_db_url)
