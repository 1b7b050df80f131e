"""A tip without pictures is one INSERT, run in autocommit mode: no BEGIN/COMMIT round trips.

These tests need sessions on a real engine (the usual ``app`` fixture joins every session to a
rolled-back test transaction, where the ordinary transaction is kept), so they run against a
database of their own that really commits.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from tests.conftest import DEMO_DIRECTORY, PG_URL
from tests.intake.helpers import csrf_from, nonce_from, png_bytes, tip_fields
from tests.livesupport import create_fresh_database
from tipline.app import create_app
from tipline.db import make_engine
from tipline.directory.loader import load_directory_file
from tipline.intake.services import AttachmentIn, TipSubmission, writes_in_one_statement
from tipline.jobs import RecordingQueue
from tipline.routing.models import RoutingJob
from tipline.settings import Settings
from tipline.tips.models import Attachment, Channel, Tip


@pytest.fixture(scope="module")
def committed_db() -> Iterator[str]:
    url = make_url(PG_URL)
    db_url = str(url.set(database=f"{url.database}_onestmt")).replace("***", url.password or "")
    create_fresh_database(db_url)
    engine = make_engine(db_url)
    with Session(engine) as s:
        load_directory_file(s, DEMO_DIRECTORY)
        s.commit()
    engine.dispose()
    yield db_url
    admin = make_engine(str(url.set(database="postgres")), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = :n AND pid <> pg_backend_pid()"),
                     {"n": make_url(db_url).database})
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(db_url).database}"'))
    admin.dispose()


@pytest.fixture
def live(committed_db: str, settings: Settings) -> Iterator[tuple[Any, RecordingQueue, Engine,
                                                                   list[bool]]]:
    """The app on a real engine, the queue, an engine to look with, and the autocommit flag
    of the connection each INSERT INTO tips ran on."""
    queue = RecordingQueue()
    app = create_app(settings.with_overrides(database_url=committed_db), queue=queue)
    engine = app.extensions["tipline"].db.engine
    autocommit: list[bool] = []

    def _seen(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "INSERT INTO tips" in statement:
            autocommit.append(bool(conn.connection.driver_connection.autocommit))

    event.listen(engine, "before_cursor_execute", _seen)
    look = make_engine(committed_db)
    try:
        yield app, queue, look, autocommit
    finally:
        event.remove(engine, "before_cursor_execute", _seen)
        look.dispose()
        engine.dispose()


def _count(engine: Engine, model: Any) -> int:
    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(model)).scalar_one())


def test_a_tip_without_pictures_is_one_autocommitted_statement(live) -> None:
    app, queue, look, autocommit = live
    client = app.test_client()
    before = _count(look, Tip)
    html = client.get("/report").get_data(as_text=True)
    resp = client.post("/report", data=tip_fields(csrf_from(html), submission=nonce_from(html)))
    assert resp.status_code == 200 and "Your code" in resp.get_data(as_text=True)
    assert autocommit == [True]
    # Committed by the time the receipt was rendered, and routed after that.
    assert _count(look, Tip) == before + 1
    with look.connect() as c:
        job_id = c.execute(select(func.max(RoutingJob.id))).scalar_one()
    assert queue.sent == [("tipline.route_job", (job_id,))]
    # The pooled connection went back in its ordinary (transactional) mode.
    with app.extensions["tipline"].db.engine.connect() as conn:
        assert conn.connection.driver_connection.autocommit is False
        conn.execute(text("SELECT 1"))
        assert conn.in_transaction()


def test_the_same_page_sent_twice_still_makes_one_tip(live) -> None:
    app, queue, look, autocommit = live
    client = app.test_client()
    before = _count(look, Tip)
    html = client.get("/report").get_data(as_text=True)
    data = tip_fields(csrf_from(html), submission=nonce_from(html))
    first = client.post("/report", data=dict(data)).get_data(as_text=True)
    second = client.post("/report", data=dict(data))
    assert second.status_code == 200
    code = first.split('id="receipt-code" translate="no"><code>')[1].split("<")[0]
    assert code in second.get_data(as_text=True)
    assert _count(look, Tip) == before + 1  # the refused duplicate wrote nothing
    assert autocommit == [True, True] and len(queue.sent) == 1


def test_a_tip_with_a_picture_keeps_the_transaction(live) -> None:
    app, queue, look, autocommit = live
    client = app.test_client()
    tips, pictures = _count(look, Tip), _count(look, Attachment)
    html = client.get("/report").get_data(as_text=True)
    data = tip_fields(csrf_from(html), submission=nonce_from(html),
                      attachments=[(io.BytesIO(png_bytes()), "a.png", "image/png")])
    resp = client.post("/report", data=data, content_type="multipart/form-data")
    assert resp.status_code == 200 and "Your code" in resp.get_data(as_text=True)
    assert autocommit == [False]
    assert (_count(look, Tip), _count(look, Attachment)) == (tips + 1, pictures + 1)
    assert len(queue.sent) == 1


def test_which_submissions_are_one_statement(db_session) -> None:
    plain = TipSubmission(channel=Channel.WEB, body="x", school_code="slps-roosevelt",
                          school_ref=(1, 1))
    assert writes_in_one_statement(db_session, plain)
    assert writes_in_one_statement(
        db_session, TipSubmission(channel=Channel.WEB, body="x"))  # no school at all
    # The school still to be looked up, or pictures: more than one statement.
    assert not writes_in_one_statement(
        db_session, TipSubmission(channel=Channel.WEB, body="x", school_code="slps-roosevelt"))
    picture = AttachmentIn(kind="image", content_type="image/png", data=b"p")
    assert not writes_in_one_statement(
        db_session, TipSubmission(channel=Channel.WEB, body="x", attachments=[picture]))
    sqlite = create_engine("sqlite://")
    with Session(sqlite) as s:
        assert not writes_in_one_statement(s, plain)  # four statements there
    sqlite.dispose()
