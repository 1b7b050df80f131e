"""Escalation: what happens when nobody acknowledges an alert in time.

``escalate_due`` is run by the scheduler every couple of seconds (``tipline.escalate`` in the
beat schedule). All of its state is in the database (``Dispatch.status``, ``ack_deadline``,
``due_at``, ``next_alert_at``, ``alert_round``), so a worker or scheduler restart loses
nothing: the next run picks up every deadline that passed meanwhile. Every change is a
compare-and-set on the row, so two runs at once (two schedulers, a slow run overlapping the
next) escalate each step once.

1. A dispatch still ``active`` at its ``ack_deadline`` becomes ``expired`` and the plan's next
   step is made due now.
2. A ``scheduled`` dispatch whose ``due_at`` has come becomes ``active``: its alerts go out
   and its acknowledgement window starts.
3. A life-safety dispatch (``repeat_every_seconds``), active or expired, is alerted again
   every interval until someone acknowledges the tip.

Once someone of a chain's own audience acknowledges (any path, or a staff status change, which
acknowledges for the changer's audience), nothing more is sent on that chain.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tipline.db import rowcount
from tipline.jobs import JobQueue, after_commit
from tipline.routing.ack import answered_dispatches
from tipline.routing.models import AlertDelivery, Dispatch, DispatchStatus, RoutingJob
from tipline.routing.services import URGENT_DELIVERY_TASK, open_deliveries
from tipline.tips.models import Tip

log = logging.getLogger(__name__)

BATCH = 500


@dataclass(frozen=True)
class EscalationResult:
    expired: int
    activated: int
    repeated: int
    cancelled: int


def escalate_due(session: Session, queue: JobQueue, now: datetime) -> EscalationResult:
    """Expire missed deadlines, activate due steps, repeat life-safety alerts; commits."""
    cancelled = _cancel_acknowledged(session, now)
    expired = _expire(session, now)
    activated, deliveries = _activate(session, now)
    repeated, more = _repeat(session, now)
    for dl in deliveries + more:  # escalation alerts do not wait behind a backlog
        after_commit(session, queue.send_task, URGENT_DELIVERY_TASK, dl.id)
    session.commit()
    if expired or activated or repeated:
        log.info("escalation: %d deadlines missed, %d steps activated, %d repeats",
                 expired, activated, repeated)
    return EscalationResult(expired, activated, repeated, cancelled)


def _cancel_acknowledged(session: Session, now: datetime) -> int:
    """Stop escalating what an acknowledgement of the tip reached but left open (a race).

    Only dispatches that an acknowledgement already given reaches (``ack.answered_dispatches``:
    never another district's, another agency's, or the school's after a police answer), and
    only dispatches of routing jobs created before that acknowledgement: a re-triage of an
    acknowledged tip (say, raised to life-safety) routes again, and its new plan must escalate
    and repeat until one of its own contacts acknowledges.
    """
    due = (
        select(Dispatch.id)
        .join(Tip, Tip.id == Dispatch.tip_id)
        .join(RoutingJob, RoutingJob.id == Dispatch.job_id)
        .where(
            Tip.acknowledged_at.is_not(None),
            RoutingJob.created_at <= Tip.acknowledged_at,
            (
                (Dispatch.status == DispatchStatus.ACTIVE.value)
                & (Dispatch.ack_deadline <= now)
            )
            | (
                (Dispatch.status == DispatchStatus.SCHEDULED.value) & (Dispatch.due_at <= now)
            )
            | (
                Dispatch.status.in_([DispatchStatus.ACTIVE.value, DispatchStatus.EXPIRED.value])
                & (Dispatch.next_alert_at <= now)
            ),
        )
        .limit(BATCH)
    )
    rows = session.execute(due.add_columns(Dispatch.tip_id)).all()
    if not rows:
        return 0
    mine = _lock_tips(session, {tip_id for _, tip_id in rows})
    answered = answered_dispatches(session, mine)
    ids = [i for i, tip_id in rows if tip_id in mine and i in answered]
    if not ids:
        return 0
    return rowcount(session.execute(
        update(Dispatch)
        .where(Dispatch.id.in_(ids),
               Dispatch.status.in_([DispatchStatus.ACTIVE.value, DispatchStatus.EXPIRED.value,
                                    DispatchStatus.SCHEDULED.value]))
        .values(status=DispatchStatus.CANCELLED.value, next_alert_at=None)
        .execution_options(synchronize_session=False)
    ))


def _lock_tips(session: Session, tip_ids: set[int]) -> set[int]:
    """Lock these tips' rows, skipping any held by someone else; returns the ones locked.

    An acknowledgement locks the tip's row before it touches the tip's dispatches (see
    ``ack.acknowledge_dispatch``). Escalation does the same but never waits: a tip being
    acknowledged right now is left for the next run, two seconds later. So escalation and an
    acknowledgement never hold each other's dispatch rows (no deadlock, and no acknowledgement
    waiting behind a whole escalation batch).
    """
    if not tip_ids:
        return set()
    return set(session.execute(
        select(Tip.id).where(Tip.id.in_(tip_ids)).with_for_update(skip_locked=True)
    ).scalars())


def _expire(session: Session, now: datetime) -> int:
    rows = session.execute(
        select(Dispatch.id, Dispatch.job_id, Dispatch.step_index, Dispatch.repeat_every_seconds,
               Dispatch.tip_id)
        .where(Dispatch.status == DispatchStatus.ACTIVE.value, Dispatch.ack_deadline <= now)
        .order_by(Dispatch.ack_deadline)
        .limit(BATCH)
    ).all()
    mine = _lock_tips(session, {row.tip_id for row in rows})
    n = 0
    for dispatch_id, job_id, step, repeat, tip_id in rows:
        if tip_id not in mine:
            continue
        claimed = rowcount(session.execute(
            update(Dispatch)
            .where(Dispatch.id == dispatch_id, Dispatch.status == DispatchStatus.ACTIVE.value)
            .values(status=DispatchStatus.EXPIRED.value)
            .execution_options(synchronize_session=False)
        ))
        if not claimed:
            continue
        n += 1
        nxt = session.execute(
            select(Dispatch.step_index)
            .where(Dispatch.job_id == job_id, Dispatch.step_index > step,
                   Dispatch.status == DispatchStatus.SCHEDULED.value)
            .order_by(Dispatch.step_index).limit(1)
        ).scalar_one_or_none()
        if nxt is None:
            if repeat is None:
                log.warning("routing job %s: the last step's deadline passed unacknowledged "
                            "and the plan has no further step", job_id)
            continue
        # Missed deadline: the next step is due now, not at its planned time; its
        # acknowledgement window keeps its length.
        later = session.execute(
            select(Dispatch.id, Dispatch.due_at, Dispatch.ack_deadline)
            .where(Dispatch.job_id == job_id, Dispatch.step_index == nxt,
                   Dispatch.status == DispatchStatus.SCHEDULED.value, Dispatch.due_at > now)
        ).all()
        for later_id, due_at, deadline in later:
            session.execute(
                update(Dispatch)
                .where(Dispatch.id == later_id,
                       Dispatch.status == DispatchStatus.SCHEDULED.value)
                .values(due_at=now,
                        ack_deadline=(now + (deadline - due_at)) if deadline else None)
                .execution_options(synchronize_session=False)
            )
    return n


def _activate(session: Session, now: datetime) -> tuple[int, list[AlertDelivery]]:
    rows = session.execute(
        select(Dispatch.id, Dispatch.tip_id)
        .where(Dispatch.status == DispatchStatus.SCHEDULED.value, Dispatch.due_at <= now)
        .order_by(Dispatch.due_at)
        .limit(BATCH)
    ).all()
    mine = _lock_tips(session, {tip_id for _, tip_id in rows})
    deliveries: list[AlertDelivery] = []
    n = 0
    for dispatch_id, tip_id in rows:
        if tip_id not in mine:
            continue
        d = session.get(Dispatch, dispatch_id)
        if d is None:
            continue
        session.refresh(d)
        window = (d.ack_deadline - d.due_at) if d.ack_deadline is not None else None
        repeat = d.repeat_every_seconds
        claimed = rowcount(session.execute(
            update(Dispatch)
            .where(Dispatch.id == dispatch_id,
                   Dispatch.status == DispatchStatus.SCHEDULED.value)
            .values(
                status=DispatchStatus.ACTIVE.value,
                activated_at=now,
                ack_deadline=(now + window) if window is not None else None,
                next_alert_at=(now + timedelta(seconds=repeat)) if repeat else None,
            )
            .execution_options(synchronize_session=False)
        ))
        if not claimed:
            continue
        session.refresh(d)
        n += 1
        deliveries.extend(open_deliveries(session, d, round_no=0))
    return n, deliveries


def _repeat(session: Session, now: datetime) -> tuple[int, list[AlertDelivery]]:
    rows = session.execute(
        select(Dispatch.id, Dispatch.alert_round, Dispatch.repeat_every_seconds,
               Dispatch.tip_id)
        .where(
            Dispatch.status.in_([DispatchStatus.ACTIVE.value, DispatchStatus.EXPIRED.value]),
            Dispatch.repeat_every_seconds.is_not(None),
            Dispatch.next_alert_at <= now,
        )
        .order_by(Dispatch.next_alert_at)
        .limit(BATCH)
    ).all()
    mine = _lock_tips(session, {row.tip_id for row in rows})
    deliveries: list[AlertDelivery] = []
    n = 0
    for dispatch_id, round_no, every, tip_id in rows:
        if tip_id not in mine:
            continue
        claimed = rowcount(session.execute(
            update(Dispatch)
            .where(Dispatch.id == dispatch_id, Dispatch.alert_round == round_no,
                   Dispatch.status.in_([DispatchStatus.ACTIVE.value,
                                        DispatchStatus.EXPIRED.value]))
            .values(alert_round=round_no + 1,
                    next_alert_at=now + timedelta(seconds=max(int(every or 60), 10)))
            .execution_options(synchronize_session=False)
        ))
        if not claimed:
            continue
        d = session.get(Dispatch, dispatch_id)
        assert d is not None  # noqa: S101
        session.refresh(d)
        n += 1
        deliveries.extend(open_deliveries(session, d, round_no=round_no + 1))
    return n, deliveries
