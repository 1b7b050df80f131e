"""Scope: every role sees exactly its tips; everything else is "not found"."""

from __future__ import annotations

from typing import cast

import pytest
from sqlalchemy.orm import Session

from tests.factories import ContactFactory, bind
from tests.triage.conftest import World, dispatch_to
from tipline.db import utcnow
from tipline.directory.models import Contact, PoliceAgency
from tipline.triage.scope import TipNotFound, get_tip_for, liaison_contact_ids, visible_tips
from tipline.triage.services import lifesafety_banner


def _refs(session: Session, user: object) -> set[str]:
    return {t.reference for t in session.execute(visible_tips(session, user)).scalars()}  # type: ignore[arg-type]


def test_district_admin_sees_their_district_only(db_session: Session, world: World) -> None:
    seen = _refs(db_session, world.admin.user)
    t = world.tips
    assert {t["roosevelt"].reference, t["soldan"].reference, t["abuse"].reference} <= seen
    assert t["county"].reference not in seen
    assert t["county_other"].reference not in seen
    county = _refs(db_session, world.county_admin.user)
    assert t["county"].reference in county and t["roosevelt"].reference not in county


def test_school_staff_see_their_school_only(db_session: Session, world: World) -> None:
    seen = _refs(db_session, world.staff.user)
    assert world.tips["roosevelt"].reference in seen
    assert world.tips["soldan"].reference not in seen
    with pytest.raises(TipNotFound):
        get_tip_for(db_session, world.staff.user, world.tips["soldan"].uid)


def test_liaison_sees_only_what_was_routed_to_them(db_session: Session, world: World) -> None:
    assert _refs(db_session, world.liaison.user) == {world.tips["county"].reference}
    with pytest.raises(TipNotFound):
        get_tip_for(db_session, world.liaison.user, world.tips["county_other"].uid)
    assert get_tip_for(db_session, world.liaison.user, world.tips["county"].uid).id == \
        world.tips["county"].id


def test_liaison_does_not_see_a_tip_sent_to_a_colleague_of_the_same_agency(
        db_session: Session, world: World) -> None:
    """Invariant 6: exactly the tips that alerted their own contact. A tip sent to another
    contact of the same police agency (say, the one serving another district) is not theirs."""
    agency = db_session.query(PoliceAgency).filter_by(code="stlco-pd").one()
    bind(db_session)
    colleague = cast(Contact, ContactFactory(key="stlco-liaison-2", agency=agency,
                                             role="police_liaison"))
    tip = world.tips["county_other"]
    dispatch_to(db_session, tip, tip.__dict__["_job_id"], "stlco-liaison-2")
    assert colleague.agency is agency
    assert tip.reference not in _refs(db_session, world.liaison.user)
    with pytest.raises(TipNotFound):
        get_tip_for(db_session, world.liaison.user, tip.uid)
    assert liaison_contact_ids(db_session, world.liaison.user) == [
        world.liaison.user.contact_id]


def test_auditor_sees_no_tip(db_session: Session, world: World) -> None:
    assert _refs(db_session, world.auditor.user) == set()
    with pytest.raises(TipNotFound):
        get_tip_for(db_session, world.auditor.user, world.tips["roosevelt"].uid)


def test_disabled_account_sees_nothing(db_session: Session, world: World) -> None:
    world.admin.user.active = False
    assert _refs(db_session, world.admin.user) == set()


def test_unknown_and_malformed_uids_are_not_found(db_session: Session, world: World) -> None:
    for uid in ("", "0" * 32, "x" * 500):
        with pytest.raises(TipNotFound):
            get_tip_for(db_session, world.admin.user, uid)


def test_liaison_does_not_see_a_later_step_that_never_alerted_them(
        db_session: Session, world: World) -> None:
    """Escalation steps are stored up front as "scheduled" dispatches. A liaison named only in
    a later step has been sent nothing: the tip is not theirs until that step goes out."""
    tip = world.tips["county_other"]
    d = dispatch_to(db_session, tip, tip.__dict__["_job_id"], "stlco-liaison")
    d.status, d.step_index = "scheduled", 2
    db_session.flush()
    assert tip.reference not in _refs(db_session, world.liaison.user)
    with pytest.raises(TipNotFound):
        get_tip_for(db_session, world.liaison.user, tip.uid)
    # someone acknowledged step 1, so step 3 was cancelled before it was ever sent
    d.status = "cancelled"
    db_session.flush()
    assert tip.reference not in _refs(db_session, world.liaison.user)
    assert lifesafety_banner(db_session, world.liaison.user).count == 0


def test_liaison_keeps_a_tip_once_its_alert_went_out(db_session: Session, world: World) -> None:
    tip = world.tips["county_other"]
    d = dispatch_to(db_session, tip, tip.__dict__["_job_id"], "stlco-liaison")
    d.status, d.step_index, d.activated_at = "scheduled", 1, None
    db_session.flush()
    assert tip.reference not in _refs(db_session, world.liaison.user)
    d.status, d.activated_at = "active", utcnow()  # the escalation step became due
    db_session.flush()
    assert tip.reference in _refs(db_session, world.liaison.user)
    d.status = "cancelled"  # re-routed later: what they were sent stays theirs
    db_session.flush()
    assert tip.reference in _refs(db_session, world.liaison.user)
