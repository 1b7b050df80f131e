"""A database outage: the reporter is told plainly, given other ways to get help, and keeps
every word they typed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from tests.conftest import BoundDatabase
from tests.intake.helpers import csrf_from, nonce_from, open_form, tip_fields
from tipline.db import Database

WORDS = "He said he would bring a gun on Monday OUT-7"


def _assert_help(html: str) -> None:
    assert "911" in html and "988" in html
    assert "(314) 889-SAFE (7233)" in html and "(866) 748-7047" in html


@pytest.fixture
def dead_app(settings, queue, vault) -> Iterator[Any]:
    """The app with a database that refuses every connection."""
    from tipline import crypto
    from tipline.app import create_app

    db = Database("postgresql://postgres@127.0.0.1:1/nowhere", connect_args={"connect_timeout": 2})
    application = create_app(settings, db=db, queue=queue)
    application.config.update(TESTING=True)
    crypto.install(vault)
    yield application
    db.dispose()


def test_form_page_when_the_database_is_down(dead_app) -> None:
    resp = dead_app.test_client().get("/report")
    assert resp.status_code == 503
    _assert_help(resp.get_data(as_text=True))


def test_submission_when_the_database_is_down_keeps_the_words(dead_app, queue) -> None:
    client = dead_app.test_client()
    token = csrf_from(client.get("/followup").get_data(as_text=True))  # no database needed
    resp = client.post("/report", data=tip_fields(token, body=WORDS, where="Gym"))
    html = resp.get_data(as_text=True)
    assert resp.status_code == 503
    _assert_help(html)
    assert "NOT sent yet" in html and WORDS in html and 'value="Gym"' in html
    assert queue.sent == []
    # The retry form posts everything back.
    assert 'id="retryform"' in html and 'name="csrf_token"' in html


def test_followup_when_the_database_is_down(dead_app) -> None:
    client = dead_app.test_client()
    token = csrf_from(client.get("/followup").get_data(as_text=True))
    resp = client.post("/followup", data={"csrf_token": token, "code": "AAAA-BBBB-CCCC-DDDD"})
    assert resp.status_code == 503
    _assert_help(resp.get_data(as_text=True))


class FailingCommitDatabase(BoundDatabase):
    """The database answers reads but every write fails, as when it goes down mid-request."""

    def __init__(self, engine: Any, connection: Any) -> None:
        super().__init__(engine, connection)

        @event.listens_for(self.sessions, "do_orm_execute")
        def _boom(state: Any) -> None:
            if state.is_insert or state.is_update:
                raise OperationalError("INSERT", {}, Exception("server closed the connection"))


def test_a_failed_commit_shows_help_and_keeps_the_words(settings, pg_engine, connection, queue,
                                                        vault, demo_directory) -> None:
    from tipline import crypto
    from tipline.app import create_app

    app = create_app(settings, db=FailingCommitDatabase(pg_engine, connection), queue=queue)
    app.config.update(TESTING=True)
    crypto.install(vault)
    client = app.test_client()
    assert client.get("/danger").status_code == 200  # reads still work (hotlines cached)
    token, html = open_form(client)
    resp = client.post("/report", data=tip_fields(token, body=WORDS, who="Two seniors",
                                                  submission=nonce_from(html)))
    out = resp.get_data(as_text=True)
    assert resp.status_code == 503
    _assert_help(out)
    # the district's, from the directory, its number a tappable link
    assert 'Safe Schools Hotline <a href="tel:+13148897233">(314) 889-SAFE</a> (7233)' in out
    assert WORDS in out and "Two seniors" in out
    nonce = nonce_from(html)
    assert nonce and nonce in out  # a retry is the same submission: still one tip
    assert queue.sent == []
