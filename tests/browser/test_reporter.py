"""The student's side in a real headless Chromium: report, receipt, follow-up, languages,
no JavaScript, a phone screen."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from tests.livesupport import LiveServer
from tipline import crypto
from tipline.tips.models import Attachment, Message, Severity, Tip

pytestmark = pytest.mark.browser

CODE = re.compile(r"^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$")
SHOTS_DIR = os.environ.get("TIPLINE_TEST_SHOTS")  # keep screenshots to look at them


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    img = Image.new("RGB", (120, 90), (200, 60, 60))
    exif = Image.Exif()
    exif[0x010F] = "BrowserPhone"
    exif[0x8825] = {1: "N", 2: (38.0, 37.0, 1.0), 3: "W", 4: (90.0, 12.0, 2.0)}
    path = tmp_path / "IMG_2044.jpg"
    img.save(path, "JPEG", exif=exif.tobytes())
    return path


def _tip(server: LiveServer, **where: Any) -> Tip:
    svc = server.app.extensions["tipline"]
    crypto.install(svc.vault)
    with svc.db.session() as s:
        tip = s.execute(select(Tip).order_by(Tip.id.desc()).limit(1)).scalar_one()
        s.expunge_all()
        return tip


def _fill_tip(page: Any, body: str, school: str = "slps-roosevelt",
              category: str = "bullying") -> None:
    page.select_option("#school", school)
    page.check(f"input[name=category][value={category}]")
    page.fill("#body", body)
    page.fill("#where", "Second floor bathroom")


def _receipt_code(page: Any) -> str:
    code = page.inner_text("#receipt-code").strip()
    assert CODE.match(code), code
    return code


def test_full_report_with_a_picture_then_follow_up(live_server: LiveServer, page: Any,
                                                   photo: Path) -> None:
    page.goto(live_server.url + "/")
    page.click("text=No, I want to send a tip")
    _fill_tip(page, "They post photos of her with mean captions every day")
    page.set_input_files("#attachments", str(photo))
    page.click("button.send")
    page.wait_for_selector("#receipt-code")
    assert "Your tip was received" in page.content()
    code = _receipt_code(page)

    tip = _tip(live_server)
    svc = live_server.app.extensions["tipline"]
    with svc.db.session() as s:
        tip = s.get(Tip, tip.id)
        assert tip.school.code == "slps-roosevelt" and tip.category == "bullying"
        (att,) = tip.attachments
        stored = Image.open(io.BytesIO(att.data))
        assert stored.size == (120, 90) and not stored.getexif()
        assert b"BrowserPhone" not in att.data
        # A counselor asks a question from the dashboard (here: straight through the models).
        question = Message(tip=tip, author="staff", channel="web")
        question.body = "Which class are they in?"
        s.add(question)
        tip.reporter_status = "A counselor is reading your tip."

    page.click("text=Check my tip later")
    page.fill("#code", code.lower())
    page.click("text=Open my tip")
    page.wait_for_selector("text=Which class are they in?")
    assert "A counselor is reading your tip." in page.content()
    assert "1 picture attached" in page.content()
    assert code not in page.url
    page.fill("#body", "Third period biology")
    page.set_input_files("#attachments", str(photo))
    page.click("text=Send my answer")
    page.wait_for_selector("text=Your answer was sent")
    assert "Third period biology" in page.content()

    with svc.db.session() as s:
        reply = s.execute(select(Message).where(Message.tip_id == tip.id,
                                                Message.author == "reporter")
                          .order_by(Message.id.desc()).limit(1)).scalar_one()
        assert reply.body == "Third period biology"
        pics = s.execute(select(Attachment).where(Attachment.message_id == reply.id)).all()
        assert len(pics) == 1
        staff = s.execute(select(Message).where(Message.tip_id == tip.id,
                                                Message.author == "staff")).scalar_one()
        assert staff.read_by_reporter_at is not None

    page.click("text=Close my tip on this device")
    page.wait_for_selector("text=Your tip is closed on this device.")
    page.goto(live_server.url + "/followup/tip")
    assert page.url.endswith("/followup?expired=1")


def test_danger_path(live_server: LiveServer, page: Any) -> None:
    page.goto(live_server.url + "/")
    page.click("text=Yes, someone is in danger now")
    assert page.locator("a[href='tel:911']").count() >= 1
    assert page.locator("a[href='tel:988']").count() >= 1
    page.click("text=Send a tip now")
    assert page.is_checked("input[name=danger_now][value=yes]")
    assert page.is_visible("text=call 911 first")
    _fill_tip(page, "A kid pulled a knife in the hallway right now", category="weapon")
    page.click("button.send")
    page.wait_for_selector("#receipt-code")
    tip = _tip(live_server)
    assert tip.danger_now and tip.severity == Severity.LIFE_SAFETY


def test_spanish_all_the_way(live_server: LiveServer, page: Any) -> None:
    page.goto(live_server.url + "/")

    def navigate(selector: str) -> None:
        # Each of these clicks loads a new page: wait for it, so no check reads the old one.
        with page.expect_navigation():
            page.click(selector)

    navigate("nav.lang >> text=Español")
    assert page.get_attribute("html", "lang") == "es"
    navigate("text=No, quiero enviar un aviso")
    assert page.is_visible("text=¿De qué escuela se trata?")
    # Switching language half-way keeps what was typed (JavaScript re-posts the form).
    page.fill("#body", "Alguien vende drogas en el baño")
    navigate("nav.lang >> text=English")
    assert page.get_attribute("html", "lang") == "en"
    assert page.input_value("#body") == "Alguien vende drogas en el baño"
    navigate("nav.lang >> text=Español")
    assert page.input_value("#body") == "Alguien vende drogas en el baño"
    page.select_option("#school", "slps-soldan")
    page.check("input[name=category][value=substance]")
    page.click("button.send")
    page.wait_for_selector("#receipt-code")
    assert "Gracias. Recibimos tu aviso." in page.content()
    assert _tip(live_server).language == "es"


def test_without_javascript(live_server: LiveServer, nojs_page: Any) -> None:
    page = nojs_page
    page.goto(live_server.url + "/report")
    page.fill("#body", "Words typed before searching NJ-1")
    page.fill("#school_q", "vash")
    # (Enter does nothing here: the form's default button is disabled.)
    page.click("button[name=find_school]")
    page.wait_for_selector("#school-search-result")
    assert "1 school matches" in page.inner_text("#school-search-result")
    assert page.input_value("#body") == "Words typed before searching NJ-1"
    assert page.eval_on_selector("#school", "el => el.value") == "slps-vashon"
    page.check("input[name=category][value=threat]")
    # Validation error without JavaScript: the words stay.
    page.fill("#body", "")
    page.click("button.send")
    page.wait_for_selector("#error-summary")
    page.fill("#body", "Words typed before searching NJ-1")
    page.click("button.send")
    page.wait_for_selector("#receipt-code")
    code = _receipt_code(page)
    page.goto(live_server.url + "/followup")
    page.fill("#code", "0000-0000-0000-0000")
    page.click("text=Open my tip")
    page.wait_for_selector("text=That code did not open a tip")
    page.fill("#code", code)
    page.click("text=Open my tip")
    page.wait_for_selector("text=No questions from staff yet")
    page.fill("#body", "Adding one more thing")
    page.click("text=Send my answer")
    page.wait_for_selector("text=Your answer was sent")


def test_phone_screen(live_server: LiveServer, phone_page: Any, tmp_path: Path) -> None:
    page = phone_page
    shots = Path(SHOTS_DIR) if SHOTS_DIR else tmp_path
    for path in ("/", "/report", "/danger", "/followup", "/privacy"):
        page.goto(live_server.url + path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (path, overflow)
        assert page.is_visible("aside.crisis")
    page.goto(live_server.url + "/report")
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "report-phone.png"), full_page=True)
    # Touch targets: every control a finger presses is at least 44 by 44 CSS pixels.
    small = page.evaluate("""() => Array.from(document.querySelectorAll(
        'button, select, input[type=text], input[type=search], textarea, .radio, .button'))
        .filter(el => el.offsetParent !== null && !el.closest('.hp'))
        .map(el => [el.id || el.className || el.tagName, el.getBoundingClientRect()])
        .filter(([, r]) => r.height < 44 || r.width < 44)
        .map(([n, r]) => n + ':' + Math.round(r.width) + 'x' + Math.round(r.height))""")
    assert small == []
    _fill_tip(page, "Someone keeps threatening my brother on the bus", category="threat")
    page.tap("button.send")
    page.wait_for_selector("#receipt-code")
    page.screenshot(path=str(shots / "receipt-phone.png"), full_page=True)


def test_javascript_refuses_a_huge_file_before_sending(live_server: LiveServer, page: Any,
                                                      tmp_path: Path) -> None:
    big = tmp_path / "video.mov"
    big.write_bytes(b"\0" * (live_server.settings.max_upload_bytes + 1))
    page.goto(live_server.url + "/report")
    page.set_input_files("#attachments", str(big))
    assert page.is_visible("#attachments-jserror")
    assert page.eval_on_selector("#attachments", "el => el.files.length") == 0
