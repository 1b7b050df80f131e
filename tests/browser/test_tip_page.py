"""The tip page as a counselor meets it in Chromium, on a phone (390x844) and a laptop: the
reporter answers, staff see it on the queue, the banner and the page; the reporter's status
line; reply wording in the reporter's language; returning to the form after an action; axe.

``TIPLINE_SCREENSHOTS=1`` also saves the tip page (desktop and phone) to docs/screenshots/.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.browser.test_dashboard import Staff, _staff, sign_in
from tests.factories import make_tip
from tests.keysupport import staff_chain
from tests.livesupport import LiveServer, axe_violations
from tipline import crypto
from tipline.accounts.models import StaffUser
from tipline.crypto import using
from tipline.routing.ack import acknowledge_dispatch
from tipline.routing.models import Dispatch, RoutingJob
from tipline.tips.models import Category, Message, Severity, Tip

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def svc(live_server: LiveServer) -> Any:
    return live_server.app.extensions["tipline"]


@pytest.fixture(autouse=True)
def _vault(svc: Any) -> Iterator[None]:
    crypto.install(svc.vault)
    yield


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                  device_scale_factor=2, locale="en-US")
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def reporter(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                  locale="en-US")
    pg = context.new_page()
    yield pg
    context.close()


def _tip(svc: Any, live_server: LiveServer, body: str, **kw: Any) -> tuple[str, str, str]:
    """A routed tip (one dispatch to the Roosevelt counselor, acknowledged by SMS):
    (uid, reference, receipt code)."""
    with svc.db.session() as s:
        r = make_tip(s, svc.vault, live_server.queue, school_code="slps-roosevelt", body=body,
                     **kw)
        s.flush()
        job = s.get(RoutingJob, r.job_id)
        job.status = "done"
        job.explanation = {"rule": "slps-violence", "contacts": [
            {"contact": "slps-roosevelt-counselor", "name": "Dana Reyes (counselor)",
             "role": "counselor", "alerted": True, "step": 1},
            {"contact": "slpd-liaison", "name": "SLPD liaison", "role": "police_liaison",
             "alerted": False, "why": "rule slps-violence does not alert police"}]}
        from tipline.directory.models import Contact

        counselor = s.execute(select(Contact).where(
            Contact.key == "slps-roosevelt-counselor")).scalar_one()
        d = Dispatch(job_id=r.job_id, tip_id=r.tip_id, contact_id=counselor.id,
                     rule="slps-violence", channels=["sms"], status="active")
        s.add(d)
        s.flush()
        from tipline.db import utcnow

        d.activated_at = utcnow()
        acknowledge_dispatch(s, d.id, via="sms", now=utcnow())
        s.commit()
        return r.tip_uid, r.reference, r.receipt_code


def _reporter_replies(reporter: Any, base: str, code: str, words: str) -> None:
    reporter.goto(base + "/followup")
    reporter.fill("#code", code)
    reporter.click("#codeform button[type=submit]")
    reporter.wait_for_selector("#replyform")
    reporter.fill("#replyform textarea", words)
    reporter.click("#replyform button[type=submit]")
    reporter.wait_for_load_state()


def _staff_member(svc: Any) -> Staff:
    return _staff(svc, "school_staff", schools=["slps-roosevelt"],
                  contact="slps-roosevelt-counselor")


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_a_reporter_answer_reaches_the_queue_banner_page_and_an_alert(
        live_server: LiveServer, svc: Any, browser: Any, reporter: Any, viewport: str) -> None:
    base = live_server.url
    uid, ref, code = _tip(svc, live_server, f"Fight planned behind the gym ({viewport})",
                          category=Category.THREAT, severity=Severity.HIGH)
    who = _staff_member(svc)
    ctx = browser.new_context(viewport=PHONE if viewport == "phone" else None,
                              is_mobile=viewport == "phone", locale="en-US")
    page = ctx.new_page()
    try:
        sign_in(page, base, who)
        page.goto(f"{base}/staff/tips/{uid}")  # a first visit, before the answer
        _reporter_replies(reporter, base, code, "It is at 3pm, by the bleachers")
        page.goto(base + "/staff/")
        row_link = page.locator(f"a:text-is('{ref}')")
        assert row_link.count() == 1
        assert "New message from the reporter" in page.inner_text("#queue-table")
        assert re.search(r"\d+ tips? with a new message from the reporter",
                         page.inner_text("#lifesafety-banner"))
        row_link.click()
        page.wait_for_selector(".tip-summary")
        assert "new since your last visit" in page.inner_text(".tip-summary")
        new = page.locator(".feed li.is-new")
        assert new.count() == 1 and "by the bleachers" in new.inner_text()
        assert "Reporter" in new.inner_text()
        assert axe_violations(page) == []
    finally:
        ctx.close()
    with svc.db.session() as s:
        tip = s.execute(select(Tip).where(Tip.uid == uid)).scalar_one()
        notice = s.execute(select(Dispatch).where(Dispatch.tip_id == tip.id,
                                                  Dispatch.status == "notice")).scalar_one()
        assert notice.include_content is False and notice.deliveries


def test_status_line_on_a_phone_then_the_reporter_sees_it(
        live_server: LiveServer, svc: Any, phone: Any, reporter: Any) -> None:
    base = live_server.url
    uid, _ref, code = _tip(svc, live_server, "Someone is selling vapes in the bathroom",
                           category=Category.SUBSTANCE, severity=Severity.MEDIUM)
    sign_in(phone, base, _staff_member(svc))
    phone.goto(f"{base}/staff/tips/{uid}")
    # One-handed: the page is as wide as the phone.
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone.select_option("#status-preset", "We are looking into this.")
    phone.click("text=Show this to the reporter")
    phone.wait_for_selector(".flash-ok")
    # Back where the person was: the form's anchor, scrolled down to it.
    assert phone.url.endswith("#reporter-status-form")
    assert phone.evaluate("window.scrollY") > 300
    feed = phone.inner_text(".feed")
    assert "Set the status line the reporter sees" in feed
    reporter.goto(base + "/followup")
    reporter.fill("#code", code)
    reporter.click("#codeform button[type=submit]")
    reporter.wait_for_selector(".reporter-status")
    assert reporter.inner_text(".reporter-status") == "We are looking into this."


def test_a_spanish_tip_offers_spanish_wording_and_a_note_returns_to_its_form(
        live_server: LiveServer, svc: Any, page: Any) -> None:
    base = live_server.url
    uid, _ref, _code = _tip(svc, live_server, "Hay un chico con un cuchillo en el autobús",
                            category=Category.WEAPON, severity=Severity.HIGH, language="es")
    sign_in(page, base, _staff_member(svc))
    page.goto(f"{base}/staff/tips/{uid}")
    assert "Spanish (español)" in page.inner_text(".tip-summary")
    assert "language es" not in page.content()
    page.click("details.templates a >> nth=1")
    page.wait_for_load_state()
    assert page.input_value("#reply-body") == "¿Puedes decirnos cuándo y dónde pasó esto?"
    page.fill("#note-body", "Called the bus company")
    page.click("text=Add note")
    page.wait_for_selector(".flash-ok")
    assert page.url.endswith("#note-form")
    me = page.locator(".feed .feed-note").last.inner_text()
    assert "internal note" in me and "Called the bus company" in me
    # Summary, then the conversation, then actions, then routing: in that order on the page.
    tops = [page.locator(sel).bounding_box()["y"] for sel in
            ("#summary", "#conversation", "#actions", "#routing")]
    assert tops == sorted(tops)
    sentence = page.inner_text(".routing-sentence")
    assert sentence.startswith("Sent to Dana Reyes (counselor) by rule 'slps-violence'; police "
                               "were not alerted because")
    assert "(counselor) (counselor)" not in page.content()


def test_tip_and_reply_wording_pages_pass_axe_and_screenshots(
        live_server: LiveServer, svc: Any, page: Any, phone: Any, reporter: Any) -> None:
    base = live_server.url
    uid, _ref, code = _tip(svc, live_server, "A student said he will hurt someone at lunch",
                           category=Category.THREAT, severity=Severity.HIGH)
    who = _staff_member(svc)
    # Written as the staff member's request would: once the district has a read key the tip
    # is sealed, and only a staff keychain opens its data key.
    with svc.db.session() as s, using(staff_chain(s, s.get(StaffUser, who.user_id))):
        tip = s.execute(select(Tip).where(Tip.uid == uid)).scalar_one()
        m = Message(tip=tip, author="staff", channel="web")
        m.body = "Thank you for telling us. Which lunch period?"
        s.add(m)
        s.commit()
    sign_in(page, base, who)
    page.goto(f"{base}/staff/tips/{uid}")
    _reporter_replies(reporter, base, code, "Second lunch, he sits by the windows")
    problems = {}
    page.goto(f"{base}/staff/tips/{uid}")
    problems["tip desktop"] = axe_violations(page)
    sign_in(phone, base, who)
    phone.goto(f"{base}/staff/tips/{uid}")
    problems["tip phone"] = axe_violations(phone)
    admin = _staff(svc, "district_admin", district="slps")
    ctx = page.context.browser.new_context(locale="en-US")
    admin_page = ctx.new_page()
    try:
        sign_in(admin_page, base, admin)
        admin_page.goto(base + "/staff/replies")
        problems["reply wording"] = axe_violations(admin_page)
    finally:
        ctx.close()
    bad = {k: [(v["id"], v["impact"]) for v in vs] for k, vs in problems.items() if vs}
    assert bad == {}
    if os.environ.get("TIPLINE_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.set_viewport_size({"width": 1280, "height": 900})
        page.screenshot(path=str(SHOTS / "tip-page-desktop.png"), full_page=True)
        phone.screenshot(path=str(SHOTS / "tip-page-phone.png"), full_page=False)


def test_the_queue_marks_a_reporter_answer_without_a_reload_and_shows_tips_first_on_a_phone(
        live_server: LiveServer, svc: Any, browser: Any, phone: Any, reporter: Any) -> None:
    base = live_server.url
    uid, ref, code = _tip(svc, live_server, "Someone keeps a knife in locker 112",
                          category=Category.WEAPON, severity=Severity.HIGH)
    who = _staff_member(svc)
    sign_in(phone, base, who)
    phone.goto(f"{base}/staff/tips/{uid}")  # read: no marker yet
    phone.goto(base + "/staff/")
    # The filters are folded on a phone, so the first screen shows tips, not a form.
    assert phone.locator("#queue-filters").get_attribute("open") is None
    box = phone.locator("#queue-table a[href*='/staff/tips/']").first.bounding_box()
    assert box is not None and box["y"] + box["height"] <= PHONE["height"], box
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    card = phone.locator("#queue-table tr", has=phone.locator(f"a:text-is('{ref}')"))
    assert "New message from the reporter" not in card.inner_text()
    _reporter_replies(reporter, base, code, "It is locker 112, by the gym doors")
    phone.evaluate("window.tiplineDashboardTick()")  # the 15-second poll, now
    card.get_by_text("New message from the reporter").wait_for(timeout=5000)
    assert "with a new message from the reporter" in phone.inner_text("#lifesafety-banner")
    phone.click("#queue-filters summary")
    assert phone.locator("#f-school").is_visible()
    # A laptop has room: the filters are open there.
    ctx = browser.new_context(locale="en-US")
    laptop = ctx.new_page()
    try:
        sign_in(laptop, base, who)
        laptop.goto(base + "/staff/")
        assert laptop.locator("#f-school").is_visible()
        assert axe_violations(laptop) == []
        assert axe_violations(phone) == []
    finally:
        ctx.close()


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_a_spanish_voicemail_says_plainly_to_listen_to_the_recording(
        live_server: LiveServer, svc: Any, page: Any, phone: Any, viewport: str) -> None:
    """Twilio transcribes only English: a Spanish caller's tip must not promise text to read."""
    from secrets import token_hex

    from tipline.directory.models import School
    from tipline.telephony.voice import ensure_voice_tip

    base = live_server.url
    with svc.db.session() as s:
        vt = ensure_voice_tip(s, svc.vault, live_server.queue, call_sid="CA" + token_hex(16),
                              recording_sid="RE" + token_hex(16), recording_url=None,
                              language="es")
        school = s.execute(select(School).where(School.code == "slps-roosevelt")).scalar_one()
        tip = s.get(Tip, vt.tip_id)
        tip.school_id, tip.district_id = school.id, school.district_id
        uid = tip.uid
    tab = phone if viewport == "phone" else page
    sign_in(tab, base, _staff_member(svc))
    tab.goto(f"{base}/staff/tips/{uid}")
    caption = tab.locator("figure figcaption").first.inner_text()
    assert caption.startswith("Spanish voicemail: listen to the recording"), caption
    assert "transcript pending" not in tab.content().lower()
    assert tab.evaluate("document.documentElement.scrollWidth") <= \
        tab.evaluate("window.innerWidth")
    assert axe_violations(tab) == []
