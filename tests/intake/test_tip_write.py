"""A web tip without attachments is one statement, sent without BEGIN and COMMIT
(``tipline.intake.services.begin_tip_write``), on an app bound to a real engine: the tests'
rollback fixture joins a connection already in a transaction, which keeps its transaction.

What must still hold: the tip is stored before the reporter is told, the routing job is
published only once it is; a tip with a picture is written in one transaction, tip and picture
together or neither; a repeated submission is still one tip; and the pooled connection goes
back to transactions for whoever takes it next.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from tests.conftest import DEMO_DIRECTORY, PG_URL
from tests.intake.helpers import jpeg_with_gps, nonce_from, open_form, tip_fields
from tests.keysupport import reader
from tests.livesupport import create_fresh_database, drop_database
from tipline.db import Database
from tipline.jobs import RecordingQueue
from tipline.routing.models import RoutingJob
from tipline.settings import Settings
from tipline.tips.models import Attachment, Tip


@pytest.fixture(scope="module")
def engine_db() -> Iterator[Database]:
    url = str(make_url(PG_URL).set(database=f"{make_url(PG_URL).database}_write"))
    create_fresh_database(url)

    # One pooled connection: the next session is sure to get the one a tip used.
    db = Database(url, pool_size=1, max_overflow=0)
    yield db
    db.dispose()
    drop_database(url)


@pytest.fixture
def web(engine_db: Database, settings: Settings, vault: Any) -> Iterator[tuple[Any, Any]]:
    from tipline import crypto
    from tipline.app import create_app
    from tipline.directory.loader import load_directory_file

    with engine_db.session() as s:
        for table in ("attachments", "tip_signatures", "routing_jobs", "messages", "tips"):
            s.execute(text(f"DELETE FROM {table}"))
        if not s.execute(text("SELECT count(*) FROM schools")).scalar():
            load_directory_file(s, DEMO_DIRECTORY)
            reader(s, vault, "slps")  # the district has a read key: its tips are sealed
    queue = RecordingQueue()
    s2 = Settings(**{**settings.__dict__, "database_url": engine_db.url})
    app = create_app(s2, db=engine_db, queue=queue)
    app.config.update(TESTING=True)
    crypto.install(vault)
    yield app.test_client(), queue


@pytest.fixture
def tx_status(engine_db: Database) -> Iterator[list[tuple[str, Any, bool]]]:
    """For every statement: its first word or table, the connection's transaction status
    right after it (IDLE: committed on its own; INTRANS: inside a transaction) and whether
    the connection was in autocommit."""
    seen: list[tuple[str, Any, bool]] = []

    def after(conn: Any, _cursor: Any, statement: str, *_a: Any) -> None:
        dbapi = conn.connection.dbapi_connection
        seen.append((statement.split()[0] + (" attachments" if "attachments (" in statement
                                             else ""),
                     dbapi.info.transaction_status, dbapi.autocommit))

    event.listen(engine_db.engine, "after_cursor_execute", after)
    yield seen
    event.remove(engine_db.engine, "after_cursor_execute", after)


def _send(client: Any, **overrides: Any) -> Any:
    token, html = open_form(client)
    data = tip_fields(token, attachments="", submission=nonce_from(html), **overrides)
    return client.post("/report", data=data, content_type="application/x-www-form-urlencoded")


def _count(db: Database, model: Any) -> int:
    with db.session() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def test_a_tip_without_a_picture_is_one_statement_committed_on_its_own(
        web, engine_db, tx_status) -> None:
    client, queue = web
    # The first tip of a kind reads the policy and the keys (a statement of its own).
    assert _send(client, body="He said he will bring a knife on Monday").status_code == 200
    tx_status.clear()
    resp = _send(client, body="He said he will bring a knife on Friday TW-1")
    assert resp.status_code == 200 and "Your tip was received" in resp.get_data(as_text=True)
    # The insert (a WITH ... INSERT) is the only statement, and it left no transaction open:
    # no BEGIN before it, no COMMIT after it.
    assert [(w, st, ac) for w, st, ac in tx_status] == [
        ("WITH", TransactionStatus.IDLE, True)], tx_status
    assert _count(engine_db, Tip) == 2
    with engine_db.session() as s:
        jobs = s.execute(select(RoutingJob.id).order_by(RoutingJob.id)).scalars().all()
    assert queue.sent == [("tipline.route_job", (jobs[0],)), ("tipline.route_job", (jobs[1],))]


def test_the_pooled_connection_is_transactional_again_for_the_next_session(
        web, engine_db) -> None:
    client, _queue = web
    assert _send(client, body="A tip that used autocommit TW-2").status_code == 200
    with engine_db.sessions() as s:
        conn = s.connection().connection.dbapi_connection
        assert conn.autocommit is False
        s.execute(text("DELETE FROM routing_jobs"))
        assert conn.info.transaction_status == TransactionStatus.INTRANS
        s.rollback()
    assert _count(engine_db, RoutingJob) == 1  # the delete was rolled back


def test_a_tip_with_a_picture_is_one_transaction_and_all_or_nothing(
        web, engine_db, tx_status) -> None:
    client, queue = web
    token, html = open_form(client)
    data = tip_fields(token, submission=nonce_from(html), body="A picture of the note TW-3",
                      attachments=[(_jpeg(), "note.jpg", "image/jpeg")])
    assert client.post("/report", data=data,
                       content_type="multipart/form-data").status_code == 200
    assert [st for _w, st, _ac in tx_status] and all(
        st == TransactionStatus.INTRANS and not ac for _w, st, ac in tx_status), tx_status
    assert _count(engine_db, Tip) == 1 and _count(engine_db, Attachment) == 1

    def refuse(_conn: Any, _cursor: Any, statement: str, *_a: Any) -> None:
        if statement.startswith("INSERT INTO attachments"):
            raise OperationalError(statement, None, Exception("disk full"))

    event.listen(engine_db.engine, "before_cursor_execute", refuse)
    try:
        token, html = open_form(client)
        data = tip_fields(token, submission=nonce_from(html), body="Lost with its picture TW-4",
                          attachments=[(_jpeg(), "note.jpg", "image/jpeg")])
        resp = client.post("/report", data=data, content_type="multipart/form-data")
    finally:
        event.remove(engine_db.engine, "before_cursor_execute", refuse)
    assert resp.status_code == 503  # not "received": the other ways to get help
    assert "Lost with its picture TW-4" in resp.get_data(as_text=True)
    assert _count(engine_db, Tip) == 1 and _count(engine_db, Attachment) == 1
    assert len(queue.sent) == 1


def test_the_same_page_sent_twice_is_one_tip_and_the_same_receipt(web, engine_db) -> None:
    client, queue = web
    token, html = open_form(client)
    data = tip_fields(token, attachments="", submission=nonce_from(html),
                      body="Sent twice by a double tap TW-5")
    first = client.post("/report", data=data,
                        content_type="application/x-www-form-urlencoded")
    again = client.post("/report", data=data,
                        content_type="application/x-www-form-urlencoded")
    assert first.status_code == again.status_code == 200
    code = _receipt_code(first.get_data(as_text=True))
    assert code and code == _receipt_code(again.get_data(as_text=True))
    assert _count(engine_db, Tip) == 1 and len(queue.sent) == 1


def _jpeg() -> Any:
    return io.BytesIO(jpeg_with_gps())


def _receipt_code(html: str) -> str | None:
    found = re.search(r'id="receipt-code"[^>]*><code>([0-9A-Z-]+)</code>', html)
    return found.group(1).strip() if found else None
