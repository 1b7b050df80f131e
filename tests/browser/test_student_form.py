"""Issue 12, the student's form and receipt in a real Chromium, as a student would use them:
on a phone (390 x 844, touch) and a desktop, with and without JavaScript.

With ``TIPLINE_DOCS_SHOTS=docs/screenshots`` the student flow's screenshots for
``docs/reporter.md`` are written there (the command is in that document).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

from tests.livesupport import LiveServer, axe_violations
from tipline.tips.models import Severity, Tip

pytestmark = pytest.mark.browser

DOCS_SHOTS = os.environ.get("TIPLINE_DOCS_SHOTS")
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
DEVICES = {"phone": PHONE, "desktop": DESKTOP}


@pytest.fixture(params=[(d, js) for d in DEVICES for js in (True, False)],
                ids=lambda p: f"{p[0]}-{'js' if p[1] else 'nojs'}")
def student(request: pytest.FixtureRequest, browser: Any) -> Iterator[Any]:
    device, js = request.param
    context = browser.new_context(locale="en-US", java_script_enabled=js, **DEVICES[device])
    page = context.new_page()
    page.js = js  # type: ignore[attr-defined]
    yield page
    context.close()


def _tip_count(server: LiveServer) -> int:
    with server.app.extensions["tipline"].db.session() as s:
        return int(s.execute(select(func.count(Tip.id))).scalar_one())


def _last_tip(server: LiveServer) -> Tip:
    with server.app.extensions["tipline"].db.session() as s:
        tip = s.execute(select(Tip).order_by(Tip.id.desc()).limit(1)).scalar_one()
        s.expunge_all()
        return tip


def _press(page: Any, selector: str) -> None:
    """A tap on a phone, a click on a desktop."""
    if page.viewport_size == PHONE["viewport"]:
        page.tap(selector)
    else:
        page.click(selector)


def _no_serious_axe(page: Any, label: str) -> None:
    problems = axe_violations(page)
    assert problems == [], (label, [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
                                    for v in problems])


def _shot(page: Any, name: str) -> None:
    if DOCS_SHOTS:
        Path(DOCS_SHOTS).mkdir(parents=True, exist_ok=True)
        path = Path(DOCS_SHOTS) / name
        page.screenshot(path=str(path), full_page=True)
        # 64 colours are plenty for text on flat colours, and keep the repository small.
        Image.open(path).convert("RGB").quantize(colors=64).save(path, optimize=True)


def test_search_then_send_sends_once(live_server: LiveServer, student: Any) -> None:
    page = student
    before = _tip_count(live_server)
    page.goto(live_server.url + "/report")
    page.fill("#body", "Someone writes threats on my locker SEARCH-1")
    page.check("input[name=category][value=bullying]")
    page.check("input[name=danger_now][value=no]")
    page.fill("#school_q", "soldan")
    if not page.js:
        _press(page, "button[name=find_school]")
        page.wait_for_selector("#school-search-result")
    # With JavaScript the list narrows as they type and the one match is chosen.
    assert page.eval_on_selector("#school", "el => el.value") == "slps-soldan"
    _press(page, "button.send")
    page.wait_for_selector("#receipt-code")
    assert _tip_count(live_server) == before + 1
    assert "Soldan International" in page.inner_text("#sent-to")


def test_send_with_text_left_in_the_search_box_sends(live_server: LiveServer,
                                                     student: Any) -> None:
    page = student
    page.goto(live_server.url + "/report")
    page.fill("#school_q", "roos")  # typed, never searched (or searched live by JavaScript)
    page.select_option("#school", "slps-roosevelt")
    page.check("input[name=category][value=other]")
    page.fill("#body", "Words for a tip LEFT-2")
    _press(page, "button.send")
    page.wait_for_selector("#receipt-code")
    assert "not sent yet" not in page.content()


def test_enter_in_a_one_line_field_never_sends(live_server: LiveServer, student: Any) -> None:
    page = student
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto(live_server.url + "/report")
    page.select_option("#school", "slps-roosevelt")
    page.check("input[name=category][value=threat]")
    page.fill("#body", "Not finished yet ENTER-3")
    before = _tip_count(live_server)
    for field in ("#when", "#where", "#who", "#how_known"):
        page.fill(field, "half an answer")
        page.press(field, "Enter")  # a phone's Go key is the same key event
    page.wait_for_timeout(600)
    assert posts == [] and _tip_count(live_server) == before
    assert page.locator("#receipt-code").count() == 0
    assert page.input_value("#body") == "Not finished yet ENTER-3"


def test_unanswered_danger_question_counts_as_not_sure(live_server: LiveServer,
                                                       student: Any) -> None:
    page = student
    page.goto(live_server.url + "/report")
    assert page.locator("input[name=danger_now]:checked").count() == 0
    page.select_option("#school", "none")
    page.check("input[name=category][value=family_crisis]")
    page.fill("#body", "My friend's dad lost his job and they have no food DANGER-4")
    _press(page, "button.send")
    page.wait_for_selector("#receipt-code")
    assert "You did not say whether someone is in danger" in page.inner_text("#danger-note")
    assert "You did not name a school" in page.inner_text("#sent-to")
    assert "about an hour" in page.inner_text("#check-back")
    tip = _last_tip(live_server)
    assert not tip.danger_now and tip.severity >= Severity.HIGH and tip.school_id is None
    assert page.locator("#receipt-code").count() == 1 and tip.reference not in page.content()
    if page.js:
        _no_serious_axe(page, "receipt with the danger note")
    if page.viewport_size == PHONE["viewport"] and not page.js:
        _shot(page, "receipt-phone.png")


def test_errors_are_announced_and_titled(live_server: LiveServer, student: Any) -> None:
    page = student
    page.goto(live_server.url + "/report")
    if page.viewport_size == PHONE["viewport"] and not page.js:
        _shot(page, "report-phone.png")
    page.fill("#where", "behind the gym")
    _press(page, "button.send")
    page.wait_for_selector("#error-summary")
    assert page.title().startswith("Error: Send a tip")
    # Focus lands on the summary once the page has loaded (autofocus, and the script with
    # JavaScript): wait for it, at most 5 s, rather than read it the moment the element exists.
    page.wait_for_function(
        "document.activeElement && document.activeElement.id === 'error-summary'",
        timeout=5000)
    assert page.get_attribute("#error-summary", "role") == "alert"
    summary = page.inner_text("#error-summary")
    assert "What is happening? Please choose what is happening." in summary
    assert "?:" not in summary and ".." not in summary
    if page.js:
        _no_serious_axe(page, "form with errors")
    if page.viewport_size == PHONE["viewport"] and not page.js:
        _shot(page, "report-errors-phone.png")


def test_language_switch_keeps_what_was_typed(live_server: LiveServer, student: Any) -> None:
    page = student
    page.goto(live_server.url + "/report")
    page.fill("#body", "Half a tip, then Spanish LANG-5")
    page.fill("#who", "two eighth graders")
    page.select_option("#school", "slps-vashon")
    _press(page, "nav.lang >> text=Español")
    page.wait_for_selector("html[lang=es]")
    assert page.input_value("#body") == "Half a tip, then Spanish LANG-5"
    assert page.input_value("#who") == "two eighth graders"
    assert page.eval_on_selector("#school", "el => el.value") == "slps-vashon"
    page.check("input[name=category][value=bullying]")
    page.check("input[name=danger_now][value=no]")
    _press(page, "button.send")
    page.wait_for_selector("#receipt-code")
    assert "Vashon" in page.inner_text("#sent-to")
    assert _last_tip(live_server).language == "es"


def test_local_safety_lines_can_be_tapped(live_server: LiveServer, student: Any) -> None:
    page = student
    page.goto(live_server.url + "/danger")
    assert page.get_attribute("a:text('(314) 889-SAFE')", "href") == "tel:+13148897233"
    assert page.get_attribute("a:text('(866) 748-7047')", "href") == "tel:+18667487047"
    assert page.locator("a[href='tel:911']").count() >= 1
    if page.js:
        _no_serious_axe(page, "danger page")
    if page.viewport_size == PHONE["viewport"] and not page.js:
        _shot(page, "danger-phone.png")


def test_a_weapon_tip_receipt_on_a_desktop(live_server: LiveServer, page: Any) -> None:
    """The urgent receipt: one code, where it went, check back in an hour."""
    page.set_viewport_size(DESKTOP["viewport"])
    page.goto(live_server.url + "/report")
    page.select_option("#school", "slps-roosevelt")
    page.check("input[name=category][value=weapon]")
    page.check("input[name=danger_now][value=no]")
    page.fill("#body", "A student showed a gun in his backpack at lunch")
    page.click("button.send")
    page.wait_for_selector("#receipt-code")
    assert "Roosevelt High School" in page.inner_text("#sent-to")
    assert "Check back in about an hour" in page.inner_text("#check-back")
    assert "day or two" not in page.content()
    _no_serious_axe(page, "weapon receipt")
    _shot(page, "receipt-desktop.png")
