"""Acknowledging an alert: by the dashboard button, an SMS reply, or pressing 1 on the call.

Whichever path comes first wins: the dispatch moves to ``acknowledged`` by compare-and-set,
the tip's other open dispatches are cancelled (their pending alerts, escalation steps and
life-safety repeats stop), and the tip itself becomes acknowledged. A second acknowledgement
of the same dispatch changes nothing and returns False. Nothing here commits.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tipline.audit.services import record
from tipline.db import rowcount
from tipline.directory.models import Contact
from tipline.routing.models import Dispatch, DispatchStatus
from tipline.tips.models import Status, Tip

log = logging.getLogger(__name__)

VIAS = ("dashboard", "sms", "voice")
# Dispatches that can still be acknowledged: alerted and waiting, escalated past the deadline
# (a late answer still counts), or a later step not yet alerted (the dashboard button).
OPEN = (DispatchStatus.ACTIVE.value, DispatchStatus.EXPIRED.value,
        DispatchStatus.SCHEDULED.value)
_ACK_RE = re.compile(r"^\s*ack(?![a-z])\s*#?\s*(\d*)", re.IGNORECASE)


def acknowledge_dispatch(
    session: Session, dispatch_id: int, *, via: str, now: datetime, user_id: int | None = None
) -> bool:
    """Acknowledge one dispatch; cancel the tip's other open dispatches; mark the tip.

    Returns False if the dispatch is unknown or already acknowledged or cancelled.
    """
    if via not in VIAS:
        raise ValueError(f"via must be one of {VIAS}")
    tip_id = session.execute(
        select(Dispatch.tip_id).where(Dispatch.id == dispatch_id)
    ).scalar_one_or_none()
    if tip_id is None:
        return False
    # Two acknowledgements of two dispatches of one tip at once (two people pressing 1) would
    # each hold their own dispatch row and wait for the other's to cancel it: a deadlock.
    # Taking the tip's row first makes them queue; the second then finds its dispatch
    # cancelled and returns False.
    session.execute(select(Tip.id).where(Tip.id == tip_id).with_for_update())
    done = rowcount(session.execute(
        update(Dispatch)
        .where(Dispatch.id == dispatch_id, Dispatch.status.in_(OPEN))
        .values(status=DispatchStatus.ACKNOWLEDGED.value, acknowledged_at=now, ack_via=via,
                next_alert_at=None)
        .execution_options(synchronize_session=False)
    ))
    if not done:
        return False
    dispatch = session.get(Dispatch, dispatch_id)
    assert dispatch is not None  # noqa: S101
    session.refresh(dispatch)
    cancelled = rowcount(session.execute(
        update(Dispatch)
        .where(Dispatch.tip_id == dispatch.tip_id, Dispatch.id != dispatch_id,
               Dispatch.status.in_(OPEN))
        .values(status=DispatchStatus.CANCELLED.value, next_alert_at=None)
        .execution_options(synchronize_session=False)
    ))
    _mark_tip(session, dispatch.tip_id, now)
    contact = session.get(Contact, dispatch.contact_id)
    record(session, "tip.acknowledged",
           actor=f"user:{user_id}" if user_id is not None else
           f"contact:{contact.key if contact else dispatch.contact_id}",
           actor_user_id=user_id, tip_id=dispatch.tip_id, object_type="dispatch",
           object_id=dispatch.id,
           detail={"via": via, "step": dispatch.step_index, "cancelled": cancelled})
    return True


def _mark_tip(session: Session, tip_id: int, now: datetime) -> None:
    session.execute(
        update(Tip).where(Tip.id == tip_id, Tip.acknowledged_at.is_(None))
        .values(acknowledged_at=now).execution_options(synchronize_session=False)
    )
    session.execute(
        update(Tip).where(Tip.id == tip_id, Tip.status == Status.NEW.value)
        .values(status=Status.ACKNOWLEDGED.value, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    tip = session.get(Tip, tip_id)
    if tip is not None:
        session.refresh(tip)


def acknowledge_tip(session: Session, tip_id: int, *, user_id: int, now: datetime) -> int:
    """The dashboard button: acknowledge every open dispatch of the tip this user may see.

    A user who cannot see the tip acknowledges nothing (0). A police liaison acknowledges only
    dispatches to their agency's contacts. A visible tip with no open dispatch is still marked
    acknowledged (someone has taken it), and 0 is returned.
    """
    from tipline.accounts.models import Role, StaffUser
    from tipline.triage.scope import liaison_contact_ids, scope_condition

    user = session.get(StaffUser, user_id)
    if user is None:
        return 0
    visible = session.execute(
        select(Tip.id).where(Tip.id == tip_id, scope_condition(session, user))
    ).scalar_one_or_none()
    if visible is None:
        return 0
    q = select(Dispatch.id).where(Dispatch.tip_id == tip_id, Dispatch.status.in_(OPEN))
    if user.role == Role.POLICE_LIAISON:
        q = q.where(Dispatch.contact_id.in_(liaison_contact_ids(session, user)))
    # The user's own dispatch first, then the alerted ones, then later steps.
    ids = list(session.execute(q.order_by(Dispatch.step_index, Dispatch.id)).scalars())
    if user.contact_id is not None:
        own = session.execute(
            q.where(Dispatch.contact_id == user.contact_id)
        ).scalars().all()
        ids = list(own) + [i for i in ids if i not in own]
    if not ids:
        tip = session.get(Tip, tip_id)
        if tip is not None and tip.acknowledged_at is None:
            _mark_tip(session, tip_id, now)
            record(session, "tip.acknowledged", actor=f"user:{user_id}", actor_user_id=user_id,
                   tip_id=tip_id, object_type="tip", object_id=tip.uid,
                   detail={"via": "dashboard", "dispatches": 0})
        return 0
    first = ids[0]
    if not acknowledge_dispatch(session, first, via="dashboard", now=now, user_id=user_id):
        return 0
    # The rest were cancelled by the first acknowledgement; those this user could see count
    # as acknowledged by them too.
    rest = ids[1:]
    if rest:
        session.execute(
            update(Dispatch)
            .where(Dispatch.id.in_(rest), Dispatch.status == DispatchStatus.CANCELLED.value)
            .values(status=DispatchStatus.ACKNOWLEDGED.value, acknowledged_at=now,
                    ack_via="dashboard")
            .execution_options(synchronize_session=False)
        )
    return len(ids)


def _normalise(number: str) -> str:
    digits = re.sub(r"[^\d+]", "", number or "")
    if digits and not digits.startswith("+") and len(digits) == 10:
        digits = "+1" + digits
    return digits


SMS_HOWTO = "tipline: to acknowledge an alert, reply ACK and its 4-digit code (e.g. ACK 4821)."


def handle_staff_sms(session: Session, from_number: str, body: str, now: datetime
                     ) -> str | None:
    """Acknowledge by SMS from a contact's registered number; None for anyone else.

    Called by the SMS webhook before reporter handling, so a staff reply is never taken for a
    tip. The reply names the tip's reference only, never its content.
    """
    number = _normalise(from_number)
    if not number:
        return None
    contacts = session.execute(
        select(Contact).where(Contact.sms_number.in_({number, from_number}))
    ).scalars().all()
    if not contacts:
        return None
    contact_ids = [c.id for c in contacts]
    m = _ACK_RE.match(body or "")
    if not m:
        return SMS_HOWTO
    code = m.group(1) or None
    if code is not None and len(code) != 4:
        return "tipline: no open alert matches that code. " + SMS_HOWTO
    q = (
        select(Dispatch)
        .where(Dispatch.contact_id.in_(contact_ids),
               Dispatch.status.in_([DispatchStatus.ACTIVE.value, DispatchStatus.EXPIRED.value]))
        .order_by(Dispatch.created_at.desc(), Dispatch.id.desc())
    )
    if code:
        candidates = session.execute(q.where(Dispatch.ack_code == code)).scalars().all()
    else:
        candidates = session.execute(q).scalars().all()
        if len(candidates) > 1:
            return ("tipline: you have several open alerts; reply ACK with the 4-digit code "
                    "from the alert you are taking.")
    if not candidates:
        already = None
        if code:
            already = session.execute(
                select(Dispatch).where(Dispatch.contact_id.in_(contact_ids),
                                       Dispatch.ack_code == code)
                .order_by(Dispatch.id.desc()).limit(1)
            ).scalar_one_or_none()
        if already is not None:
            tip = session.get(Tip, already.tip_id)
            ref = tip.reference if tip else ""
            return f"tipline: tip {ref} was already acknowledged. Nothing more to do."
        return "tipline: no open alert matches that code. " + SMS_HOWTO
    dispatch = candidates[0]
    tip = session.get(Tip, dispatch.tip_id)
    ref = tip.reference if tip else ""
    if acknowledge_dispatch(session, dispatch.id, via="sms", now=now):
        log.info("dispatch %s acknowledged by SMS", dispatch.id)
        return f"tipline: acknowledged tip {ref}. Thank you. Open the dashboard for details."
    return f"tipline: tip {ref} was already acknowledged. Nothing more to do."
