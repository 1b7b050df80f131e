"""Scratch PostgreSQL databases for the backup and upgrade tests (beside the per-process one)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.conftest import PG_URL
from tipline.db import make_engine


def scratch_url(suffix: str) -> str:
    return str(make_url(PG_URL).set(database=f"{make_url(PG_URL).database}_{suffix}"))


def _admin(url: str, *sql: str) -> None:
    admin = make_engine(str(make_url(url).set(database="postgres")), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for statement in sql:
                conn.execute(text(statement))
    finally:
        admin.dispose()


def drop(url: str) -> None:
    name = make_url(url).database
    _admin(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
           f'DROP DATABASE IF EXISTS "{name}"')


def recreate(url: str) -> None:
    drop(url)
    _admin(url, f'CREATE DATABASE "{make_url(url).database}"')
