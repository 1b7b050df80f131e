"""Groups on the dashboard: one queue row, the group page, group actions, split, scope."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from tests.factories import make_tip
from tests.staffsupport import csrf_from, sign_in
from tests.triage.conftest import Account, World
from tests.triage.conftest import world as world  # the fixture
from tipline.audit.models import AuditEvent
from tipline.db import utcnow
from tipline.routing.models import RoutingJob
from tipline.routing.services import DirectoryPlanner, route_job
from tipline.surge import services as surge
from tipline.surge.models import TipSignature
from tipline.tips.models import Message, Severity, Tip

TEXTS = [
    "Someone posted on snapchat they are going to shoot up Roosevelt on Friday",
    "a snapchat post says someone will shoot up roosevelt friday, everyone is scared",
    "the snapchat post about shooting up roosevelt friday was made by Marcus in 10th grade",
]


def _group(db, vault, queue, school="slps-roosevelt"):
    tips = []
    for text in TEXTS:
        r = make_tip(db, vault, queue, body=text, school_code=school, severity=Severity.HIGH)
        db.commit()
        route_job(db, r.job_id, DirectoryPlanner(), queue, utcnow())
        tip = db.get(Tip, r.tip_id)
        assert tip is not None
        tips.append(tip)
    group = surge.group_of(db, tips[-1].id)
    assert group is not None and group.tip_count == 3
    return group, tips


def login(client: Any, who: Account) -> Any:
    sign_in(client, who.user.email, who.password, who.secret)
    return client


def test_queue_shows_the_group_as_one_row(client, world: World, db_session, vault, queue):
    group, tips = _group(db_session, vault, queue)
    html = login(client, world.staff).get("/staff/").get_data(as_text=True)
    assert tips[0].reference in html
    assert tips[1].reference not in html and tips[2].reference not in html
    assert f"/staff/groups/{group.uid}" in html and "Group of 3 tips" in html
    # a filter shows every matching tip
    filtered = client.get("/staff/?category=threat").get_data(as_text=True)
    assert all(t.reference in filtered for t in tips)


def test_group_page_shows_each_tip_and_what_it_adds_audited(client, world, db_session, vault,
                                                            queue):
    group, tips = _group(db_session, vault, queue)
    resp = login(client, world.staff).get(f"/staff/groups/{group.uid}")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert all(t.reference in html for t in tips)
    assert "New in this tip: <strong>Marcus" in html
    reads = db_session.execute(select(AuditEvent.tip_id).where(
        AuditEvent.action == "tip.view", AuditEvent.tip_id.in_([t.id for t in tips]))
    ).scalars().all()
    assert sorted(reads) == sorted(t.id for t in tips)


def test_out_of_scope_group_is_not_found(client, world, db_session, vault, queue):
    group, _tips = _group(db_session, vault, queue, school="slps-soldan")
    login(client, world.staff)  # Roosevelt staff
    assert client.get(f"/staff/groups/{group.uid}").status_code == 404
    assert client.get("/staff/groups/nonexistent").status_code == 404
    page = client.get("/staff/").get_data(as_text=True)
    token = csrf_from(page)
    resp = client.post(f"/staff/groups/{group.uid}/status",
                       data={"csrf_token": token, "status": "in_progress"})
    assert resp.status_code == 404


def test_group_actions_apply_to_every_tip_and_are_audited_per_tip(client, world, db_session,
                                                                  vault, queue):
    group, tips = _group(db_session, vault, queue)
    login(client, world.staff)
    token = csrf_from(client.get(f"/staff/groups/{group.uid}").get_data(as_text=True))
    base = f"/staff/groups/{group.uid}"
    assert client.post(f"{base}/status", data={"csrf_token": token, "status": "in_progress"}
                       ).status_code == 303
    assert client.post(f"{base}/assign", data={"csrf_token": token,
                                               "assignee": str(world.staff.user.id)}
                       ).status_code == 303
    assert client.post(f"{base}/reply", data={"csrf_token": token, "body": "We are on it."}
                       ).status_code == 303
    assert client.post(f"{base}/acknowledge", data={"csrf_token": token}).status_code == 303
    db_session.expire_all()
    for t in tips:
        tip = db_session.get(Tip, t.id)
        assert tip.status == "in_progress" and tip.assigned_to_id == world.staff.user.id
        assert db_session.execute(select(func.count(Message.id)).where(
            Message.tip_id == t.id, Message.author == "staff")).scalar_one() == 1
    for action in ("group.status", "group.assign", "group.reply", "group.acknowledge"):
        per_tip = db_session.execute(select(AuditEvent.tip_id).where(
            AuditEvent.action == action)).scalars().all()
        assert sorted(per_tip) == sorted(t.id for t in tips), action


@pytest.mark.parametrize("value", ["\u00b2", "99999999999", "9" * 5000, "x"])
def test_group_assign_refuses_what_is_not_a_person_s_id(client, world, db_session, vault,
                                                        queue, value):
    """A superscript passed str.isdigit() and int() refused it; 11 digits or more reached the
    database beyond its integer range: each was a 500."""
    group, tips = _group(db_session, vault, queue)
    login(client, world.staff)
    token = csrf_from(client.get(f"/staff/groups/{group.uid}").get_data(as_text=True))
    resp = client.post(f"/staff/groups/{group.uid}/assign",
                       data={"csrf_token": token, "assignee": value})
    assert resp.status_code in (303, 400), resp.status_code
    db_session.expire_all()
    assert all(db_session.get(Tip, t.id).assigned_to_id is None for t in tips)


def test_liaison_cannot_act_on_a_group_and_sees_only_routed_tips(client, world, db_session,
                                                                 vault, queue):
    group, _tips = _group(db_session, vault, queue)
    login(client, world.liaison)
    assert client.get(f"/staff/groups/{group.uid}").status_code == 404


def test_split_takes_a_tip_out_and_routes_it_on_its_own(client, world, db_session, vault,
                                                        queue):
    group, tips = _group(db_session, vault, queue)
    folded = tips[1]
    assert db_session.get(TipSignature, folded.id).folded
    login(client, world.staff)
    token = csrf_from(client.get(f"/staff/groups/{group.uid}").get_data(as_text=True))
    resp = client.post(f"/staff/groups/{group.uid}/split/{folded.uid}",
                       data={"csrf_token": token})
    assert resp.status_code == 303
    db_session.expire_all()
    assert surge.group_of(db_session, folded.id) is None
    job = db_session.execute(select(RoutingJob).where(RoutingJob.tip_id == folded.id,
                                                      RoutingJob.reason == "split")).scalar_one()
    assert route_job(db_session, job.id, DirectoryPlanner(), queue, utcnow()).dispatches > 0
    assert db_session.execute(select(func.count(AuditEvent.id)).where(
        AuditEvent.action == "group.split", AuditEvent.tip_id == folded.id)).scalar_one() == 1
