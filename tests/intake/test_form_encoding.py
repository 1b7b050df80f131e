"""The tip form sent URL-encoded, as the page's JavaScript sends it when no picture is chosen.

A multipart body is read part by part (``tipline.web.formparser``; with Werkzeug's parser,
which compiles two regular expressions for each new boundary, it was most of a submit's
parsing cost). A URL-encoded form must be taken exactly as the multipart one is: stored,
validated, re-shown with every word on an error, and never parsed as multipart.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests.intake.helpers import nonce_from, open_form, tip_fields
from tipline.routing.models import RoutingJob
from tipline.tips.models import Tip
from tipline.web.formparser import PushFormDataParser


@pytest.fixture
def no_multipart(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fails any request that reaches the app's multipart parser; records the attempts."""
    seen: list[str] = []

    def refuse(self: Any, stream: Any, mimetype: str, content_length: Any,
               options: dict[str, str]) -> Any:
        seen.append(options.get("boundary", ""))
        raise AssertionError("the multipart parser ran for a URL-encoded form")

    monkeypatch.setattr(PushFormDataParser, "_parse_multipart", refuse)
    return seen


def _post(client: Any, **overrides: Any) -> Any:
    token, html = open_form(client)
    # A browser sends an empty file input in a URL-encoded form as "attachments=".
    data = tip_fields(token, attachments="", submission=nonce_from(html), **overrides)
    return client.post("/report", data=data, content_type="application/x-www-form-urlencoded")


def test_a_urlencoded_tip_is_stored_routed_and_receipted_without_multipart(
        client, db_session, queue, demo_directory, no_multipart) -> None:
    resp = _post(client, body="Sent without a picture UE-1")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200, html
    assert "Your tip was received" in html and 'id="receipt-code"' in html
    assert no_multipart == []
    db_session.expire_all()
    (tip,) = db_session.execute(select(Tip)).scalars()
    assert tip.messages[0].body == "Sent without a picture UE-1"
    assert tip.attachments == []
    job = db_session.execute(select(RoutingJob).where(RoutingJob.tip_id == tip.id)).scalar_one()
    assert queue.sent == [("tipline.route_job", (job.id,))]


def test_a_urlencoded_form_with_an_error_is_validated_and_keeps_the_words(
        client, db_session, demo_directory, no_multipart) -> None:
    resp = _post(client, category="", where="By the gym doors UE-2")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "By the gym doors UE-2" in html and 'id="error-summary"' in html
    assert no_multipart == []
    assert db_session.execute(select(Tip)).first() is None


def test_a_urlencoded_text_too_long_is_a_form_error(client, db_session, demo_directory) -> None:
    resp = _post(client, body="word " * 2001 + "END-UE-3")
    assert resp.status_code == 400
    assert "END-UE-3" in resp.get_data(as_text=True)
    assert db_session.execute(select(Tip)).first() is None


def test_the_form_still_declares_multipart_for_pages_without_javascript(
        client, demo_directory) -> None:
    _token, html = open_form(client)
    assert 'id="tipform"' in html and 'enctype="multipart/form-data"' in html


def test_the_guard_catches_a_multipart_post(client, demo_directory, no_multipart) -> None:
    """The fixture above can fail: a multipart post reaches the parser it guards."""
    token, html = open_form(client)
    data = tip_fields(token, submission=nonce_from(html))
    with pytest.raises(AssertionError, match="multipart parser ran"):
        client.post("/report", data=data, content_type="multipart/form-data")
    assert len(no_multipart) == 1 and no_multipart[0].startswith("----BrowserFormBoundary")
