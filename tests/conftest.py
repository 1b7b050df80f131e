"""Shared fixtures: real PostgreSQL and Redis, SQLite for the embedded default, per-test rollback.

Services are required, not optional: if PostgreSQL or Redis cannot be reached the whole run
stops with a message naming it (no silent skips). ``make test`` starts them first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from argon2 import PasswordHasher
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from tests.browserclient import BrowserClient
from tipline import crypto, migrations
from tipline.accounts import services as account_services
from tipline.crypto import KeyRing, Vault, write_key_file
from tipline.db import Database, make_engine
from tipline.jobs import RecordingQueue
from tipline.settings import Settings
from tipline.web.inputs import TiplineFlask

# Every app's test client posts multipart bodies as a browser does (tests/browserclient.py).
TiplineFlask.test_client_class = BrowserClient

# Each pytest process gets its own databases unless a URL is given, so that runs in parallel
# (several developers on one machine) never drop each other's schema.
_PRIVATE_DB = "TIPLINE_TEST_DATABASE_URL" not in os.environ
PG_URL = os.environ.get(
    "TIPLINE_TEST_DATABASE_URL", f"postgresql://postgres@127.0.0.1:5432/tipline_test_{os.getpid()}"
)
REDIS_URL = os.environ.get("TIPLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REPO = Path(__file__).resolve().parent.parent
DEMO_DIRECTORY = REPO / "config" / "directory.demo.yaml"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail the run at once, loudly, when a required service is down."""
    _ensure_database(PG_URL)
    engine = make_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        pytest.exit(f"PostgreSQL is required at {PG_URL} and is unreachable: {exc}", returncode=3)
    finally:
        engine.dispose()
    try:
        redis_lib.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        pytest.exit(f"Redis is required at {REDIS_URL} and is unreachable: {exc}", returncode=3)


def _ensure_database(url: str) -> None:
    """Create the test database on the server if it does not exist yet."""
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = make_engine(str(target.set(database="postgres")), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}
            ).scalar()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    except Exception as exc:  # the connection check that follows reports it
        print(f"could not create the test database: {exc}")
    finally:
        admin.dispose()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the per-process databases this run created (a given URL is left alone)."""
    if not _PRIVATE_DB:
        return
    from sqlalchemy.engine import make_url

    base = make_url(PG_URL)
    admin = make_engine(str(base.set(database="postgres")), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for suffix in ("", "_live", "_e2e", "_migrations"):
                name = f"{base.database}{suffix}"
                conn.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    except Exception as exc:
        print(f"could not drop test databases: {exc}")
    finally:
        admin.dispose()


# Cheap Argon2 parameters in tests only (production keeps the library's defaults).
account_services.set_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def reset_postgres(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[Engine]:
    reset_postgres(PG_URL)
    migrations.upgrade(PG_URL)
    engine = make_engine(PG_URL)
    yield engine
    engine.dispose()


# Tests that route with surge grouping on (tipline.surge): its own tests, and the statement
# count of the routing hot path (grouping's reads are part of it).
SURGE_TESTS = ("tests/surge/", "tests/routing/test_hot_path.py")


@pytest.fixture(autouse=True)
def _surge_grouping(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Grouping folds a later tip about the same threat at the same school into the first
    one's alerts. Most tests route several tips with the factory's one default text and check
    each tip's own alerts, so in-process routing runs without grouping outside SURGE_TESTS."""
    from tipline.surge import services as surge

    path = str(request.node.path).replace(os.sep, "/")
    monkeypatch.setattr(surge, "GROUPING", any(p in path for p in SURGE_TESTS))
    monkeypatch.setattr(surge, "ENABLED", True)  # create_app sets it from the settings


@pytest.fixture(autouse=True)
def _fresh_school_index() -> Iterator[None]:
    """The process-wide index of schools that SMS and voice tips are matched against is kept
    for 30 s; school ids differ from test to test (each loads the directory anew), so every
    test starts and ends without one (a voice tip in tests/surge took a school id of the test
    before it: a foreign-key error that depended on the order the tests ran in)."""
    from tipline.telephony.schools import INDEX

    INDEX.clear()
    yield
    INDEX.clear()


@pytest.fixture(scope="session")
def keyring() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture
def vault(keyring: KeyRing) -> Vault:
    v = Vault(keyring)
    crypto.install(v)
    return v


@pytest.fixture
def connection(pg_engine: Engine) -> Iterator[Connection]:
    conn = pg_engine.connect()
    trans = conn.begin()
    yield conn
    trans.rollback()
    conn.close()


@pytest.fixture
def db_session(connection: Connection, vault: Vault) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test."""
    session = Session(bind=connection, join_transaction_mode="create_savepoint",
                      expire_on_commit=False)
    yield session
    session.close()


class BoundDatabase:
    """A ``Database`` whose sessions all run inside one test transaction."""

    def __init__(self, engine: Engine, connection: Connection) -> None:
        self.url = str(engine.url)
        self.engine = engine
        self.sessions = sessionmaker(bind=connection, join_transaction_mode="create_savepoint",
                                     expire_on_commit=False)

    def session(self) -> Any:

        @contextmanager
        def _cm() -> Iterator[Session]:
            with self.sessions() as s:
                try:
                    yield s
                    s.commit()
                except BaseException:
                    s.rollback()
                    raise

        return _cm()

    def held_session(self) -> Session:
        return self.sessions()

    def dispose(self) -> None:
        pass


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def key_file(tmp_path: Path, keyring: KeyRing) -> Path:
    path = tmp_path / "keys.json"
    write_key_file(path, keyring)
    return path


@pytest.fixture
def settings(tmp_path: Path, key_file: Path) -> Settings:
    return Settings(
        mode="test",
        data_dir=tmp_path,
        database_url=PG_URL,
        broker_url="memory://",
        key_file=key_file,
        secret_key="x" * 40,
        public_url="https://tips.example.org",
        ratelimit_storage_url="memory://",
        demo_data=False,
    )


@pytest.fixture
def app(settings: Settings, pg_engine: Engine, connection: Connection, queue: RecordingQueue,
        vault: Vault) -> Any:
    from tipline.app import create_app

    application = create_app(settings, db=BoundDatabase(pg_engine, connection), queue=queue)
    application.config.update(TESTING=True)
    crypto.install(vault)
    return application


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def demo_directory(db_session: Session) -> dict[str, int]:
    from tipline.directory.loader import load_directory_file

    counts = load_directory_file(db_session, DEMO_DIRECTORY)
    db_session.commit()
    return counts


@pytest.fixture
def sqlite_demo_db(tmp_path: Path, vault: Vault) -> Iterator[Database]:
    """The embedded default's database: a migrated SQLite file holding the demo directory."""
    url = f"sqlite:///{tmp_path / 'embedded.sqlite3'}"
    migrations.upgrade(url)
    db = Database(url)
    with db.session() as s:
        from tipline.directory.loader import load_directory_file

        load_directory_file(s, DEMO_DIRECTORY)
    yield db
    db.dispose()


@contextmanager
def recorded_statements(bind: Engine | Connection) -> Iterator[list[str]]:
    """Every SQL statement sent through ``bind`` while the block runs, in order."""
    from sqlalchemy import event

    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(bind, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(bind, "before_cursor_execute", record)
