"""A district admin in a real headless Chromium: edit a contact, check and dry-run the policy,
read statistics and the audit log; axe-core on each page (no serious or critical issue)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import REPO
from tests.factories import make_tip
from tests.livesupport import LiveServer, axe_violations, staff_sign_in
from tests.staffsupport import make_staff
from tipline import crypto
from tipline.audit.services import verify_chain
from tipline.directory.models import Contact
from tipline.routing.policy import load_policy
from tipline.tips.models import Category, Tip

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def svc(live_server: LiveServer) -> Any:
    return live_server.app.extensions["tipline"]


@pytest.fixture(autouse=True)
def _vault(svc: Any) -> Iterator[None]:
    crypto.install(svc.vault)
    yield


def _check(page: Any, label: str) -> None:
    problems = axe_violations(page)
    assert problems == [], (label, [(v["id"], v["impact"], v["help"],
                                     [n["target"] for n in v["nodes"]][:3]) for v in problems])


def _sign_in(page: Any, base: str, email: str, password: str, secret: str) -> None:
    staff_sign_in(page, base, email, password, secret)


def test_district_admin_edits_checks_and_reads(live_server: LiveServer, page: Any,
                                               svc: Any) -> None:
    base = live_server.url
    with svc.db.session() as s:
        load_policy(s, (REPO / "config" / "policy.demo.yaml").read_text(encoding="utf-8"),
                    "policy.demo.yaml", "cli")
        user, password, secret = make_staff(s, svc.vault, "district_admin", district="slps")
        email = user.email
        for n, cat in enumerate([Category.WEAPON, Category.BULLYING, Category.BULLYING]):
            r = make_tip(s, svc.vault, live_server.queue, school_code="slps-roosevelt",
                         category=cat, body=f"<script>window.__pwned={n}</script>")
            tip = s.get(Tip, r.tip_id)
            tip.acknowledged_at = tip.created_at + timedelta(minutes=2 * (n + 1))
    _sign_in(page, base, email, password, secret)

    # Administration overview and the contacts list.
    page.goto(base + "/staff/admin/")
    assert page.locator("h1").inner_text().startswith("Administration")
    _check(page, "admin index")
    page.click(".admin-nav >> text=Contacts")
    page.wait_for_selector("table.admin-table")
    _check(page, "contacts")

    # Edit a contact: a wrong number is refused with the loader's message, then fixed.
    page.click("text=Dana Reyes (counselor)")
    page.wait_for_selector("#sms")
    _check(page, "contact form")
    page.fill("#sms", "314-555-0109")
    page.click("text=Save contact")
    page.wait_for_selector("#error-summary")
    assert "sms must be E.164" in page.inner_text("#error-summary")
    _check(page, "contact form with an error")
    page.fill("#sms", "+13145550109")
    page.click("text=Save contact")
    page.wait_for_selector(".flash-ok")
    assert "Saved contact Dana Reyes (counselor)" in page.inner_text(".flashes")
    with svc.db.session() as s:
        contact = s.execute(select(Contact).where(
            Contact.key == "slps-roosevelt-counselor")).scalar_one()
        assert contact.sms_number == "+13145550109"

    # The routing policy: check it, then a dry run.
    page.goto(base + "/staff/admin/policy")
    assert "slps-life-safety-violence" in page.input_value("#text")
    page.click("button[value=check]")
    page.wait_for_selector("#policy-ok")
    _check(page, "policy checked")
    page.select_option("#school", "slps-roosevelt")
    page.select_option("#category", "weapon")
    page.select_option("#severity", "4")
    page.fill("#at", "2026-11-24T10:00")
    page.click("button[value=dryrun]")
    page.wait_for_selector("#dryrun-result")
    assert "slps-life-safety-violence" in page.inner_text("#dryrun-result")
    _check(page, "policy dry run")
    page.fill("#text", "districts:\n  slps:\n    rules: [oops\n")
    page.click("button[value=check]")
    page.wait_for_selector("#policy-errors")
    _check(page, "policy errors")

    # Statistics: charts and their tables, exact numbers.
    page.goto(base + "/staff/admin/stats")
    assert page.locator("svg.chart[role=img]").count() == 5
    assert page.inner_text("#stats-total").startswith("3 tips")
    assert "4 min 00 s" in page.inner_text("#timing")  # median of 2, 4 and 6 minutes
    assert page.evaluate("window.__pwned") is None
    _check(page, "statistics")

    # The audit log: the chain is verified on screen.
    page.goto(base + "/staff/admin/audit")
    assert "Hash chain OK" in page.inner_text("#chain-status")
    _check(page, "audit log")
    page.goto(base + "/staff/admin/users")
    _check(page, "users")
    page.goto(base + "/staff/admin/schools")
    _check(page, "schools")
    with svc.db.session() as s:
        assert verify_chain(s).ok
