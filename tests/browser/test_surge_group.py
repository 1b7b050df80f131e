"""A surge group in Chromium, on a phone and a laptop: the queue's group row leads to the group
page, which shows every tip and what it adds; axe-core finds nothing serious."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from tests.browser.test_dashboard import _staff, sign_in
from tests.factories import make_tip
from tests.livesupport import LiveServer, axe_violations
from tipline.surge.models import TipGroup, TipSignature
from tipline.tips.models import Severity

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def svc(live_services: Any) -> Any:
    """The live server's services, its vault installed (``conftest.live_services``)."""
    return live_services


def _group(svc: Any, live_server: LiveServer, tag: str) -> tuple[str, list[str]]:
    """Two tips about one threat at Roosevelt, the second folded into the first's alert."""
    texts = [f"Someone will shoot up Roosevelt on Friday ({tag})",
             f"the snapchat post about shooting up roosevelt friday is by Marcus ({tag})"]
    with svc.db.session() as s:
        receipts = [make_tip(s, svc.vault, live_server.queue, school_code="slps-roosevelt",
                             body=t, severity=Severity.HIGH) for t in texts]
        s.flush()
        group = TipGroup(school_id=None, lead_tip_id=receipts[0].tip_id, tip_count=2,
                         alerted_severity=3, alerted_signals=[], unnoticed=1)
        s.add(group)
        s.flush()
        s.execute(update(TipSignature).where(TipSignature.tip_id.in_(
            [r.tip_id for r in receipts])).values(group_id=group.id))
        s.execute(update(TipSignature).where(TipSignature.tip_id == receipts[1].tip_id)
                  .values(folded=True))
        s.commit()
        return group.uid, [r.reference for r in receipts]


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_group_row_leads_to_the_group_page(live_server: LiveServer, svc: Any, browser: Any,
                                           viewport: str) -> None:
    base = live_server.url
    uid, refs = _group(svc, live_server, viewport)
    who = _staff(svc, "school_staff", schools=["slps-roosevelt"])
    ctx = browser.new_context(viewport=PHONE if viewport == "phone" else None,
                              is_mobile=viewport == "phone", locale="en-US")
    page = ctx.new_page()
    try:
        sign_in(page, base, who)
        page.goto(base + "/staff/")
        page.wait_for_selector("#queue-table")
        queue = page.inner_text("#queue-table")
        assert refs[0] in queue and refs[1] not in queue
        link = page.locator(f"a[href='/staff/groups/{uid}']")
        assert link.count() == 1
        with page.expect_navigation():
            link.click()
        page.wait_for_selector("#tips")
        text = page.inner_text("#tips")
        assert refs[0] in text and refs[1] in text and "New in this tip" in text
        assert "Marcus" in page.inner_text("#tips li:nth-child(2) .hint")
        assert axe_violations(page) == []
    finally:
        ctx.close()
