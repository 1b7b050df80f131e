"""axe-core on every page a reporter can see, in each language: no serious or critical issue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.livesupport import LiveServer, axe_violations, start_live_server
from tipline import crypto
from tipline.tips.models import Message, Tip

pytestmark = pytest.mark.browser


def _check(page: Any, label: str) -> None:
    assert page.locator("aside.crisis").count() == 1, label  # 911/988 on every page
    problems = axe_violations(page)
    assert problems == [], (label, [(v["id"], v["impact"], v["help"],
                                     [n["target"] for n in v["nodes"]][:3]) for v in problems])


def _submit(page: Any, server: LiveServer) -> str:
    page.goto(server.url + "/report")
    page.select_option("#school", "cty-northview")
    page.check("input[name=category][value=other]")
    page.fill("#body", "Something worries me about the bus line")
    page.click("button.send")
    page.wait_for_selector("#receipt-code")
    return str(page.inner_text("#receipt-code")).strip()


@pytest.mark.parametrize("lang", ["en", "es", "bs"])
def test_every_reporter_page_passes_axe(live_server: LiveServer, page: Any, lang: str) -> None:
    base = live_server.url
    page.goto(f"{base}/?lang={lang}")
    for path in ("/", "/danger", "/report", "/report?danger=yes", "/report?school_q=north",
                 "/report?school_q=zzzz", "/privacy", "/followup", "/no-such-page"):
        page.goto(base + path)
        _check(page, f"{lang} {path}")

    # The form with every error showing.
    page.goto(base + "/report")
    page.click("button.send")
    page.wait_for_selector("#error-summary")
    _check(page, f"{lang} report with errors")

    # The receipt, the code page with a wrong code, and the conversation.
    code = _submit(page, live_server)
    _check(page, f"{lang} receipt")
    page.goto(base + "/followup")
    page.fill("#code", "0000-0000-0000-0000")
    page.click("#codeform button[type=submit]")
    page.wait_for_selector("#code-error")
    _check(page, f"{lang} wrong code")

    svc = live_server.app.extensions["tipline"]
    crypto.install(svc.vault)
    with svc.db.session() as s:
        tip = s.query(Tip).order_by(Tip.id.desc()).first()
        assert tip is not None
        with s.no_autoflush:  # the body is sealed with the tip's key before the insert
            question = Message(tip=tip, author="staff", channel="web")
            question.body = "Can you tell us which bus?"
        s.add(question)
    page.fill("#code", code)
    page.click("#codeform button[type=submit]")
    page.wait_for_selector(".conversation")
    _check(page, f"{lang} conversation")
    page.click("#replyform button[type=submit]")  # empty answer: an error
    page.wait_for_selector("#body-error")
    _check(page, f"{lang} reply error")
    page.fill("#body", "Bus 12")
    page.click("#replyform button[type=submit]")
    page.wait_for_selector(".ok")
    _check(page, f"{lang} reply sent")
    page.click(".leave button")
    page.wait_for_selector(".ok")
    _check(page, f"{lang} left")
    page.goto(base + "/followup/tip")
    _check(page, f"{lang} signed out")


def test_too_many_tries_page_passes_axe(live_server: LiveServer, page: Any) -> None:
    page.goto(live_server.url + "/followup")
    for _ in range(11):
        page.fill("#code", "0000-0000-0000-0000")
        page.click("#codeform button[type=submit]")
        if "wait" in page.title().lower():
            break
    assert "Please wait" in page.content()
    _check(page, "429")


@pytest.fixture
def broken_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = start_live_server("postgresql://postgres@127.0.0.1:1/nowhere", tmp_path)
    yield server
    server.stop()


def test_unavailable_page_passes_axe(broken_server: LiveServer, page: Any) -> None:
    page.goto(broken_server.url + "/report")
    assert "could not send your tip" in page.content()
    _check(page, "unavailable")
