"""A counselor's and a district admin's day in a real Chromium, on a 390 px phone and on a
laptop: local times with the zone named, the queue as cards on the phone, statistics that
match the queue, and the printable routing matrix; axe-core on each page."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from tests.conftest import REPO
from tests.factories import make_tip
from tests.livesupport import LiveServer, axe_violations, staff_sign_in
from tests.staffsupport import make_staff
from tipline import crypto
from tipline.routing.policy import load_policy
from tipline.tips.models import Category, Severity, Tip

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
SHOTS = Path(os.environ.get("TIPLINE_TEST_SHOTS", tempfile.gettempdir()))
WINTER = datetime(2026, 1, 15, 18, 5, tzinfo=UTC)  # 12:05 CST


@pytest.fixture
def admin(live_services: Any, world: None) -> tuple[str, str, str]:
    """A fresh SLPS district admin (a TOTP code signs in once): email, password, secret."""
    with live_services.db.session() as s:
        user, password, secret = make_staff(s, live_services.vault, "district_admin",
                                            district="slps")
        return user.email, password, secret


@pytest.fixture(scope="module")
def world(live_server: LiveServer) -> None:
    """The demo policy, six tips the SLPS admin's queue lists (one names no school), one tip
    of the county."""
    svc = live_server.app.extensions["tipline"]
    crypto.install(svc.vault)
    with svc.db.session() as s:
        load_policy(s, (REPO / "config" / "policy.demo.yaml").read_text(encoding="utf-8"),
                    "policy.demo.yaml", "cli")
        specs = [("slps-roosevelt", Category.WEAPON, Severity.LIFE_SAFETY),
                 ("slps-roosevelt", Category.SELF_HARM, Severity.HIGH),
                 ("slps-soldan", Category.BULLYING, Severity.MEDIUM),
                 ("slps-vashon", Category.FAMILY_CRISIS, Severity.LOW),
                 ("slps-soldan", Category.SUBSTANCE, Severity.HIGH),
                 (None, Category.THREAT, Severity.HIGH),
                 ("cty-northview", Category.WEAPON, Severity.HIGH)]
        for school, cat, sev in specs:
            r = make_tip(s, svc.vault, live_server.queue, school_code=school, category=cat,
                         severity=sev, body="A long enough tip text for the test")
            s.execute(update(Tip).where(Tip.id == r.tip_id).values(created_at=WINTER))


def sign_in(page: Any, base: str, who: tuple[str, str, str]) -> None:
    staff_sign_in(page, base, *who)


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                  device_scale_factor=2, locale="en-US")
    pg = context.new_page()
    yield pg
    context.close()


def _no_sideways_scroll(page: Any, label: str) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate("""w => [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > w && !e.closest('.chart-wrap svg'))
        .slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)""", PHONE["width"])
    assert width <= PHONE["width"], (label, width, wide)


def _axe(page: Any, label: str) -> None:
    problems = axe_violations(page)
    assert problems == [], (label, [(v["id"], v["impact"], v["help"],
                                     [n["target"] for n in v["nodes"]][:3]) for v in problems])


def test_phone_queue_is_cards_with_local_times(live_server: LiveServer, phone: Any,
                                               admin: tuple[str, str, str]) -> None:
    base = live_server.url
    sign_in(phone, base, admin)
    phone.goto(base + "/staff/")
    _no_sideways_scroll(phone, "queue")
    cards = phone.locator("table.queue tbody tr")
    assert cards.count() == 6
    first = cards.first
    box = first.bounding_box()
    assert box is not None and box["width"] <= PHONE["width"]
    text = first.inner_text()
    # The same facts as the desktop table, each labelled (CSS shows the labels), the time in
    # Chicago time.
    labels = first.locator("td").evaluate_all(
        "cells => cells.map(c => getComputedStyle(c, '::before').content)")
    assert labels == ['"Severity"', '"Category"', '"School"', '"Status"', '"Channel"',
                      '"Received"', '"Assigned"']
    phone.screenshot(path=str(SHOTS / "queue-phone.png"), full_page=False)
    assert "Life safety" in text and "2026-01-15 12:05 CST" in text
    assert "UTC" not in phone.inner_text("main")
    assert "No school named" in phone.inner_text("table.queue")
    # The header row is there for screen readers only; the reference is a big tap target.
    assert not phone.locator("table.queue thead").is_visible() or \
        phone.locator("table.queue thead").bounding_box()["height"] <= 1
    link = first.locator("th a")
    link_box = link.bounding_box()
    assert link_box is not None and link_box["height"] >= 44
    _axe(phone, "phone queue")
    link.tap()
    phone.wait_for_url(re.compile(r".*/staff/tips/\w+$"))
    assert "CST" in phone.inner_text("main")


def test_phone_admin_pages_fit(live_server: LiveServer, phone: Any,
                               admin: tuple[str, str, str]) -> None:
    base = live_server.url
    sign_in(phone, base, admin)
    for label, path in (("statistics", "/staff/admin/stats"),
                        ("routing matrix", "/staff/admin/policy/matrix"),
                        ("account", "/staff/account")):
        phone.goto(base + path)
        phone.screenshot(path=str(SHOTS / f"{label.replace(' ', '-')}-phone.png"),
                         full_page=True)
        _no_sideways_scroll(phone, label)
        _axe(phone, label)
    # The statistics tables wrap between words, never inside one ("Tip|s", "Media|n"): no
    # cell has more text lines than words.
    phone.goto(base + "/staff/admin/stats")
    split = phone.evaluate("""() => [...document.querySelectorAll('table.data th, table.data td')]
        .filter(c => c.innerText.trim()).filter(c => {
          const r = document.createRange(); r.selectNodeContents(c);
          const lines = new Set([...r.getClientRects()].map(x => Math.round(x.top)));
          return lines.size > c.innerText.trim().split(/\\s+/).length;
        }).map(c => c.innerText.trim())""")
    assert split == [], split
    # The staff header and navigation fit too, every link reachable.
    nav = phone.locator(".staff-nav")
    box = nav.bounding_box()
    assert box is not None and box["x"] + box["width"] <= PHONE["width"]


def test_desktop_statistics_match_the_queue(live_server: LiveServer, page: Any,
                                            admin: tuple[str, str, str]) -> None:
    base = live_server.url
    sign_in(page, base, admin)
    page.goto(base + "/staff/?status=all")
    assert page.locator("table.queue thead").is_visible()  # a table on a laptop
    queue_count = int(page.inner_text("#queue-table .count").split()[0])
    assert queue_count == 6
    assert "2026-01-15 12:05 CST" in page.inner_text("table.queue")
    page.click(".staff-nav >> text=Statistics")
    page.wait_for_selector("#stats-total")
    assert page.inner_text("#stats-total").startswith(f"{queue_count} tips")
    schools = page.inner_text("#table-school")
    assert "No school named" in schools
    categories = page.inner_text("#table-category")
    assert "Self-harm or suicide" in categories and "self_harm" not in categories
    severity = page.inner_text("#table-severity")
    assert "Life safety" in severity and "High" in severity
    assert "Life safety" in page.inner_text("#timing-severity")
    for table in ("#table-severity", "#table-category", "#table-school", "#table-channel"):
        counts = [int(x) for x in page.locator(f"{table} tbody td").all_inner_texts()]
        assert sum(counts) == queue_count, table
    _axe(page, "statistics")
    page.goto(base + "/staff/admin/audit")
    assert "When (America/Chicago)" in page.inner_text("table.audit thead")
    assert re.search(r"C[SD]T", page.inner_text("table.audit tbody"))
    _axe(page, "audit log")


def test_desktop_routing_matrix_is_printable_proof(live_server: LiveServer, page: Any,
                                                   admin: tuple[str, str, str]) -> None:
    base = live_server.url
    sign_in(page, base, admin)
    page.goto(base + "/staff/admin/policy")
    page.click(".admin-nav >> text=Routing matrix")
    page.wait_for_selector("#matrix-summary")
    never = page.inner_text("#police-never")
    for label in ("Self-harm or suicide", "Bullying", "Abuse or neglect", "Drugs or alcohol",
                  "Family crisis"):
        assert label in never
    assert "Weapon" in page.inner_text("#police-some")
    weapon = page.locator("#matrix-weapon")
    assert weapon.locator("td.police").count() == 8  # every severity, day and night
    assert page.locator("#matrix-self_harm td.police").count() == 0
    assert "police alerted" in weapon.inner_text().lower()
    page.screenshot(path=str(SHOTS / "matrix-desktop.png"), full_page=True)
    assert re.search(r"C[SD]T", page.inner_text("#matrix-basis"))
    _axe(page, "routing matrix")
    # Another school: the roles of that school are alerted.
    page.select_option("#m-school", "slps-soldan")
    page.click("text=Show")
    page.wait_for_url(re.compile(r".*school=slps-soldan"))
    assert "Soldan" in page.inner_text("#matrix-basis")
    # Printed: the content only, no navigation or form.
    page.emulate_media(media="print")
    assert not page.locator(".staff-nav").is_visible()
    assert not page.locator("form.filters").is_visible()
    assert page.locator("#matrix-weapon").is_visible()
    pdf = page.pdf(format="Letter")
    assert pdf[:4] == b"%PDF"
