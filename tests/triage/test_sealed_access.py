"""A staff member whose keys cannot open a sealed tip is told to ask for access (403, never a
500); the same tip opens for a colleague of the district who holds its key."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from tests.factories import make_tip
from tests.intake.helpers import png_bytes
from tests.staffsupport import make_staff
from tests.triage.conftest import Account, World
from tests.triage.test_views import login
from tipline.intake.services import AttachmentIn
from tipline.tips.models import Attachment, Tip


def _sealed_tip(db_session: Any, vault: Any, queue: Any) -> Tip:
    # Made after the world's staff exist: slps has a read key, so this tip is sealed.
    r = make_tip(db_session, vault, queue, body="A sealed tip about a knife",
                 school_code="slps-roosevelt",
                 attachments=[AttachmentIn("image", "image/png", png_bytes())])
    db_session.commit()
    tip = db_session.get(Tip, r.tip_id)
    assert tip is not None and tip.data_key is not None and tip.data_key.kek_id == "sealed"
    return tip


def test_an_account_waiting_for_access_gets_a_clear_page_not_a_500(
        client: Any, world: World, db_session: Any, vault: Any, queue: Any) -> None:
    tip = _sealed_tip(db_session, vault, queue)
    waiting = Account(*make_staff(db_session, vault, "district_admin", district="slps",
                                  access=False))
    db_session.commit()
    login(client, waiting)
    resp = client.get(f"/staff/tips/{tip.uid}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 403
    assert "You need to be granted access" in html and "knife" not in html
    att = db_session.execute(select(Attachment).where(Attachment.tip_id == tip.id)).scalar_one()
    resp = client.get(f"/staff/tips/{tip.uid}/attachments/{att.uid}")
    assert resp.status_code == 403 and b"granted access" in resp.data


def test_a_colleague_with_the_district_key_reads_it(
        client: Any, world: World, db_session: Any, vault: Any, queue: Any) -> None:
    tip = _sealed_tip(db_session, vault, queue)
    login(client, world.admin)
    resp = client.get(f"/staff/tips/{tip.uid}")
    assert resp.status_code == 200 and "A sealed tip about a knife" in resp.get_data(
        as_text=True)
