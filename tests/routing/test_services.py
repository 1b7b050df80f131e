from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.factories import make_tip
from tipline.db import utcnow
from tipline.routing.models import AlertDelivery, Dispatch, OutboxMessage, RoutingJob
from tipline.routing.senders import OutboxSender, TransientSendError
from tipline.routing.services import (
    DirectoryPlanner,
    deliver_alert,
    route_job,
    sweep,
)


def _route(db_session, queue, job_id):
    return route_job(db_session, job_id, DirectoryPlanner(), queue, utcnow())


def test_route_creates_dispatches_and_deliveries_once(db_session, vault, queue, demo_directory):
    r = make_tip(db_session, vault, queue, school_code="slps-roosevelt")
    db_session.commit()
    first = _route(db_session, queue, r.job_id)
    again = _route(db_session, queue, r.job_id)
    assert first.routed and first.dispatches >= 2 and first.deliveries >= 2
    assert not again.routed
    n = len(db_session.execute(select(Dispatch).where(Dispatch.tip_id == r.tip_id)).all())
    assert n == first.dispatches
    sent = [name for name, _ in queue.sent if name == "tipline.deliver_alert"]
    assert len(sent) == first.deliveries


def test_default_planner_never_alerts_police(db_session, vault, queue, demo_directory):
    from tipline.directory.models import Contact

    r = make_tip(db_session, vault, queue, school_code="cty-northview")
    db_session.commit()
    _route(db_session, queue, r.job_id)
    roles = {
        db_session.get(Contact, d.contact_id).role
        for d in db_session.execute(select(Dispatch).where(Dispatch.tip_id == r.tip_id)).scalars()
    }
    assert "police_liaison" not in roles and roles


def test_delivery_sends_once_and_carries_no_content(db_session, vault, queue, demo_directory):
    r = make_tip(db_session, vault, queue, body="PANGOLIN-55 is being hurt at home",
                 school_code="slps-soldan")
    db_session.commit()
    _route(db_session, queue, r.job_id)
    ids = [args[0] for name, args in queue.sent if name == "tipline.deliver_alert"]
    senders = {"sms": OutboxSender(), "voice": OutboxSender(), "email": OutboxSender()}
    results = [deliver_alert(db_session, i, senders, utcnow()).outcome for i in ids]
    again = [deliver_alert(db_session, i, senders, utcnow()).outcome for i in ids]
    assert set(results) == {"sent"} and set(again) == {"skipped"}
    out = db_session.execute(select(OutboxMessage)).scalars().all()
    assert len(out) == len(ids)
    assert all("PANGOLIN" not in o.body and r.reference in o.body for o in out)


class FlakySender:
    name = "flaky"

    def send(self, session, alert):
        raise TransientSendError("timeout")


def test_transient_failure_puts_delivery_back_to_pending(db_session, vault, queue, demo_directory):
    import pytest

    r = make_tip(db_session, vault, queue, school_code="slps-soldan")
    db_session.commit()
    _route(db_session, queue, r.job_id)
    ids = [args[0] for name, args in queue.sent if name == "tipline.deliver_alert"]
    with pytest.raises(TransientSendError):
        deliver_alert(db_session, ids[0], {"sms": FlakySender()}, utcnow())
    dl = db_session.get(AlertDelivery, ids[0])
    db_session.refresh(dl)
    assert dl.status == "pending" and dl.attempts == 1


def test_sweep_resends_pending_jobs_left_by_a_broker_outage(db_session, vault, queue):
    queue.fail = True
    r = make_tip(db_session, vault, queue)
    db_session.commit()
    queue.fail = False
    assert sweep(db_session, queue, utcnow(), timedelta(seconds=20)).jobs_resent == 0
    later = utcnow() + timedelta(seconds=30)
    res = sweep(db_session, queue, later, timedelta(seconds=20))
    assert res.jobs_resent >= 1
    assert ("tipline.route_job", (r.job_id,)) in queue.sent
    job = db_session.get(RoutingJob, r.job_id)
    assert job.status == "pending"
