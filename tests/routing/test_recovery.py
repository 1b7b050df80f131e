"""Recovery after faults, in-process: what the sweep re-sends, and how a delivery whose
outcome is unknown is resolved by asking the provider before anything is sent again."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from tests.factories import make_tip
from tipline.routing.models import RoutingJob
from tipline.routing.services import sweep


def test_jobs_that_never_reached_the_broker_are_sent_at_once_backlog_or_not(
        db_session, vault, queue):
    lost = make_tip(db_session, vault, queue)  # publish failed: flagged by the queue
    queued = make_tip(db_session, vault, queue)  # published: most likely waiting in line
    db_session.execute(update(RoutingJob).where(RoutingJob.id == lost.job_id)
                       .values(publish_failed=True))
    db_session.commit()
    queue.sent.clear()
    now = db_session.get(RoutingJob, lost.job_id).created_at + timedelta(seconds=1)
    res = sweep(db_session, queue, now, timedelta(seconds=20), backlog=2_000)
    assert res.jobs_resent == 1
    assert queue.sent == [("tipline.route_job", (lost.job_id,))]
    db_session.expire_all()
    assert db_session.get(RoutingJob, lost.job_id).publish_failed is False
    assert db_session.get(RoutingJob, queued.job_id).publish_failed is False
    # The broker is down again for the next send: still flagged by nobody, still pending.
    queue.sent.clear()
    assert sweep(db_session, queue, now + timedelta(seconds=2), timedelta(seconds=20),
                 backlog=2_000).jobs_resent == 0
