"""The staff dashboard in a real headless Chromium: each role's main path, the scope
boundaries, escaping, live updates and axe-core."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from tests.factories import make_tip
from tests.livesupport import LiveServer, axe_violations
from tests.staffsupport import current_code, make_staff
from tipline import crypto
from tipline.audit.models import AuditEvent
from tipline.directory.models import Contact
from tipline.routing.models import Dispatch, RoutingJob
from tipline.tips.models import Category, Message, Severity, Tip

pytestmark = pytest.mark.browser

XSS = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


@dataclass
class Staff:
    email: str
    password: str
    secret: str
    user_id: int


@dataclass
class Tips:
    roosevelt: str
    soldan: str
    county: str
    county_other: str
    abuse: str
    xss: str


@pytest.fixture(scope="module")
def svc(live_server: LiveServer) -> Any:
    return live_server.app.extensions["tipline"]


@pytest.fixture(autouse=True)
def _vault(svc: Any) -> Iterator[None]:
    crypto.install(svc.vault)
    yield


def _staff(svc: Any, role: str, **kw: Any) -> Staff:
    with svc.db.session() as s:
        user, password, secret = make_staff(s, svc.vault, role, **kw)
        return Staff(user.email, password, secret, user.id)


@pytest.fixture(scope="module")
def tips(svc: Any, live_server: LiveServer) -> Tips:
    crypto.install(svc.vault)
    q = live_server.queue
    with svc.db.session() as s:
        def mk(school: str, body: str, **kw: Any) -> str:
            return make_tip(s, svc.vault, q, school_code=school, body=body, **kw).tip_uid

        out = Tips(
            roosevelt=mk("slps-roosevelt", "A boy said he will bring a knife on Friday",
                         severity=Severity.LIFE_SAFETY),
            soldan=mk("slps-soldan", "Soldan bullying tip", category=Category.BULLYING,
                      severity=Severity.MEDIUM),
            county=mk("cty-northview", "Northview gun in a locker", category=Category.WEAPON),
            county_other=mk("cty-riverbend", "Riverbend fight planned"),
            abuse=mk("slps-roosevelt", "My friend has bruises from her stepdad",
                     category=Category.ABUSE),
            xss=mk("slps-roosevelt", XSS),
        )
        county = s.execute(select(Tip).where(Tip.uid == out.county)).scalar_one()
        job = s.execute(select(RoutingJob.id).where(RoutingJob.tip_id == county.id)).scalar_one()
        liaison = s.execute(select(Contact.id).where(Contact.key == "stlco-liaison")).scalar_one()
        s.add(Dispatch(job_id=job, tip_id=county.id, contact_id=liaison, rule="weapons-police",
                       channels=["sms"], status="active"))
    return out


def sign_in(page: Any, base: str, who: Staff) -> None:
    page.goto(base + "/staff/login")
    page.fill("#email", who.email)
    page.fill("#password", who.password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/staff/login/code$"))
    for ahead in (0, 1):
        page.fill("#code", current_code(who.secret, ahead=ahead))
        page.click("main button[type=submit]")
        page.wait_for_load_state()
        if not page.url.endswith("/staff/login/code"):
            return
    raise AssertionError("the code was refused")


def open_tip(page: Any, base: str, uid: str) -> Any:
    return page.goto(f"{base}/staff/tips/{uid}")


def audit_actions(svc: Any, user_id: int) -> list[str]:
    with svc.db.session() as s:
        return list(s.execute(select(AuditEvent.action).where(
            AuditEvent.actor_user_id == user_id).order_by(AuditEvent.id)).scalars())


def main_path(page: Any, base: str, svc: Any, who: Staff, uid: str) -> None:
    """Open a tip, acknowledge, reply, change status, close: the same for school staff and
    district admins."""
    open_tip(page, base, uid)
    page.click("text=Acknowledge this tip")
    page.wait_for_selector(".flash-ok")
    assert page.locator("text=Acknowledge this tip").count() == 0
    page.fill("#reply-body", "Thank you. Can you tell us which hallway?")
    page.click("text=Send reply")
    page.wait_for_selector(".flash-ok")
    assert page.locator(".feed .feed-reply").count() == 1
    page.select_option("#status", "in_progress")
    page.fill("#status-reason", "Talking to the student")
    page.click("text=Change status")
    page.wait_for_selector("text=Status changed to in progress.")
    page.select_option("#status", "closed")
    page.select_option("#outcome", "resolved")
    page.fill("#status-reason", "Handled with the family")
    page.click("text=Change status")
    page.wait_for_selector("text=Status changed to closed.")
    assert "Closed (Resolved by the school)" in page.inner_text(".tip-summary")
    actions = audit_actions(svc, who.user_id)
    for expected in ("staff.sign_in", "tip.view", "tip.reply", "tip.status"):
        assert expected in actions, expected
    assert any(a.startswith("tip.acknowledge") for a in actions)
    with svc.db.session() as s:
        tip = s.execute(select(Tip).where(Tip.uid == uid)).scalar_one()
        assert tip.status == "closed" and tip.acknowledged_at is not None
        staff_msgs = s.execute(select(Message).where(
            Message.tip_id == tip.id, Message.author == "staff")).scalars().all()
        assert [m.body for m in staff_msgs] == ["Thank you. Can you tell us which hallway?"]


def test_district_admin_main_path(live_server: LiveServer, page: Any, svc: Any,
                                  tips: Tips) -> None:
    who = _staff(svc, "district_admin", district="slps")
    base = live_server.url
    sign_in(page, base, who)
    assert page.url.endswith("/staff/")
    # the unacknowledged life-safety tip is in the banner, and first in the queue
    assert page.locator("#lifesafety-banner .lifesafety").count() == 1
    first = page.locator("table.queue tbody tr").first
    assert "urgent" in (first.get_attribute("class") or "")
    first.locator("a").click()
    page.wait_for_selector("text=A boy said he will bring a knife on Friday")
    main_path(page, base, svc, who, tips.roosevelt)
    page.goto(base + "/staff/")
    assert page.locator("#lifesafety-banner .lifesafety").count() == 0


def test_school_staff_main_path_and_boundary(live_server: LiveServer, page: Any, svc: Any,
                                             tips: Tips) -> None:
    who = _staff(svc, "school_staff", schools=["slps-roosevelt"])
    base = live_server.url
    sign_in(page, base, who)
    main_path(page, base, svc, who, tips.abuse)
    # the mandated-reporter prompt, and recording that I made the call
    assert "1-800-392-3738" in page.inner_text(".mandated")
    page.check("#confirm-report")
    page.click("text=Record that I made the report")
    page.wait_for_selector("text=You recorded that you made the report.")
    assert "tip.mandated_report" in audit_actions(svc, who.user_id)
    # another school's tip by URL: not found
    resp = open_tip(page, base, tips.soldan)
    assert resp.status == 404
    assert "Soldan bullying tip" not in page.content()


def test_police_liaison_main_path_and_boundary(live_server: LiveServer, page: Any, svc: Any,
                                               tips: Tips) -> None:
    who = _staff(svc, "police_liaison", contact="stlco-liaison")
    base = live_server.url
    sign_in(page, base, who)
    rows = page.locator("table.queue tbody tr")
    assert rows.count() == 1
    # a liaison reads, acknowledges and leaves a note; the case itself stays with the school
    open_tip(page, base, tips.county)
    page.wait_for_selector("text=Northview gun in a locker")
    page.click("text=Acknowledge this tip")
    page.wait_for_selector(".flash-ok")
    page.fill("#note-body", "County officer on the way to Northview")
    page.click("text=Add note")
    page.wait_for_selector("text=Note added.")
    for absent in ("#reply-body", "#status", "#assignee", "#category"):
        assert page.locator(absent).count() == 0, absent
    actions = audit_actions(svc, who.user_id)
    for expected in ("staff.sign_in", "tip.view", "tip.note"):
        assert expected in actions, expected
    assert any(a.startswith("tip.acknowledge") for a in actions)
    for uid in (tips.county_other, tips.roosevelt):
        resp = open_tip(page, base, uid)
        assert resp.status == 404


def test_auditor_sees_no_tip_and_cannot_post(live_server: LiveServer, page: Any, svc: Any,
                                             tips: Tips) -> None:
    who = _staff(svc, "auditor")
    base = live_server.url
    sign_in(page, base, who)
    assert open_tip(page, base, tips.soldan).status == 404
    page.goto(base + "/staff/account")
    token = page.get_attribute("input[name=csrf_token]", "value")
    resp = page.request.post(f"{base}/staff/tips/{tips.soldan}/status",
                             form={"csrf_token": token, "status": "closed",
                                   "outcome": "resolved", "reason": "x"})
    assert resp.status == 404
    with svc.db.session() as s:
        assert s.execute(select(Tip.status).where(Tip.uid == tips.soldan)).scalar_one() == "new"


def test_post_without_csrf_token_is_refused(live_server: LiveServer, page: Any, svc: Any,
                                            tips: Tips) -> None:
    who = _staff(svc, "district_admin", district="slps")
    base = live_server.url
    sign_in(page, base, who)
    resp = page.request.post(f"{base}/staff/tips/{tips.soldan}/note", form={"body": "x"})
    assert resp.status == 400


def test_xss_payload_shown_as_text(live_server: LiveServer, page: Any, svc: Any,
                                   tips: Tips) -> None:
    who = _staff(svc, "school_staff", schools=["slps-roosevelt"])
    base = live_server.url
    sign_in(page, base, who)
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    open_tip(page, base, tips.xss)
    page.fill("#note-body", XSS)
    page.click("text=Add note")
    page.wait_for_selector(".flash-ok")
    page.fill("#reply-body", XSS)
    page.click("text=Send reply")
    page.wait_for_selector(".flash-ok")
    assert page.evaluate("window.__pwned === undefined")
    assert dialogs == []
    assert page.inner_text(".tip-body") == XSS
    assert XSS in page.inner_text(".feed .feed-note")
    assert XSS in page.inner_text(".feed .feed-reply")


def test_first_sign_in_enrols_with_the_qr_page(live_server: LiveServer, page: Any,
                                               svc: Any) -> None:
    """An administrator's new account: the one-time password, the QR code, then the holder's
    own password before anything else."""
    with svc.db.session() as s:
        user, password, _ = make_staff(s, svc.vault, "district_admin", district="slps",
                                       enrolled=False, must_change=True)
        email = user.email
    base = live_server.url
    page.goto(base + "/staff/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("figure.qr img")
    page.wait_for_function("document.querySelector('figure.qr img').complete")
    assert page.evaluate("document.querySelector('figure.qr img').naturalWidth") > 100
    problems = axe_violations(page)
    assert problems == [], [(v["id"], v["help"]) for v in problems]
    secret = page.inner_text("code.secret").replace(" ", "")
    page.fill("#code", current_code(secret))
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r".*/staff/account/password$"))
    assert "Choose your own password" in page.inner_text("h1")
    problems = axe_violations(page)
    assert problems == [], [(v["id"], v["help"]) for v in problems]
    page.goto(live_server.url + "/staff/")  # nothing else is shown before that
    page.wait_for_url(re.compile(r".*/staff/account/password$"))
    page.fill("#current", password)
    page.fill("#new", "my own passphrase for the tip line")
    page.fill("#confirm", "my own passphrase for the tip line")
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r".*/staff/$"))
    assert "password is changed" in page.inner_text(".flashes")


def test_new_tips_appear_without_reload(live_server: LiveServer, page: Any, svc: Any,
                                        tips: Tips) -> None:
    who = _staff(svc, "district_admin", district="slps")
    base = live_server.url
    sign_in(page, base, who)
    page.evaluate("window.__marker = 1")  # gone if the page reloads
    with svc.db.session() as s:
        uid = make_tip(s, svc.vault, live_server.queue, school_code="slps-vashon",
                       body="new while watching", severity=Severity.LIFE_SAFETY).tip_uid
        ref = s.execute(select(Tip.reference).where(Tip.uid == uid)).scalar_one()
    page.evaluate("window.tiplineDashboardTick()")
    page.wait_for_selector(f"table.queue >> text={ref}", timeout=10000)
    page.wait_for_selector(f"#lifesafety-banner >> text={ref}", timeout=10000)
    assert page.evaluate("window.__marker") == 1
    assert "life-safety" in page.title()
    assert "New tips arrived" in page.inner_text("#queue-live")


def test_dashboard_pages_pass_axe(live_server: LiveServer, page: Any, svc: Any,
                                  tips: Tips) -> None:
    base = live_server.url
    page.goto(base + "/staff/login")
    pages: list[tuple[str, str]] = [("login", "/staff/login")]
    problems = {"login": axe_violations(page)}
    who = _staff(svc, "district_admin", district="slps")
    page.fill("#email", who.email)
    page.fill("#password", who.password)
    page.click("button[type=submit]")
    page.wait_for_selector("#code")
    problems["code"] = axe_violations(page)
    page.fill("#code", current_code(who.secret))
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r".*/staff/$"))
    for label, path in (("queue", "/staff/"), ("queue filtered", "/staff/?status=all"),
                        ("abuse tip", f"/staff/tips/{tips.abuse}"),
                        ("tip", f"/staff/tips/{tips.soldan}"),
                        ("account", "/staff/account"), ("password", "/staff/account/password"),
                        ("not found", "/staff/tips/nope")):
        pages.append((label, path))
        page.goto(base + path)
        problems[label] = axe_violations(page)
    bad = {k: [(v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:3])
               for v in vs] for k, vs in problems.items() if vs}
    assert bad == {}
    assert len(pages) == 8
