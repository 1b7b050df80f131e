"""Acknowledging an alert: by the dashboard button, an SMS reply, or pressing 1 on the call.

Whichever path comes first wins: the dispatch moves to ``acknowledged`` by compare-and-set and
the open dispatches of the same chain are cancelled (their pending alerts, escalation steps
and life-safety repeats stop). A second acknowledgement of the same dispatch changes nothing
and returns False. Nothing here commits.

Which chain an acknowledgement stops (``_stops``): never another district's dispatches (a tip
that names no school alerts every district's fallback), never another police agency's. School
and district staff stop every open dispatch of their district's plan, police ones included. A
police contact stops their own agency's dispatches only: the school's own people keep being
alerted, unless the district's policy says ``police_ack_stops_school_alerts: true``. The tip
itself becomes acknowledged only once no open dispatch is left (until then it waits in every
other audience's queue), and the escalation sweep cancels only the open dispatches that an
acknowledgement given reaches (``answered_dispatches``). A staff status change acknowledges
for the changer's own audience, like the button (``acknowledge_tip``).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from tipline.audit.services import record
from tipline.db import rowcount
from tipline.directory.models import Contact
from tipline.ops import hooks
from tipline.routing.models import Dispatch, DispatchStatus
from tipline.tips.models import Status, Tip

log = logging.getLogger(__name__)

VIAS = ("dashboard", "sms", "voice")
# Dispatches that can still be acknowledged: alerted and waiting, escalated past the deadline
# (a late answer still counts), or a later step not yet alerted (the dashboard button).
OPEN = (DispatchStatus.ACTIVE.value, DispatchStatus.EXPIRED.value,
        DispatchStatus.SCHEDULED.value)
_ACK_RE = re.compile(r"^\s*ack(?![a-z])\s*#?\s*(\d*)", re.IGNORECASE)
POLICE_ROLE = "police_liaison"


def _police(role: str | None, agency_id: int | None) -> bool:
    """A police contact: a police liaison, or any contact of a police agency."""
    return role == POLICE_ROLE or agency_id is not None


def police_ack_stops_school_alerts(session: Session, district_id: int | None) -> bool:
    """The district's policy option (off unless the active policy turns it on)."""
    from tipline.routing import policy as routing_policy

    try:
        section = routing_policy.district_section(session, district_id)
    except routing_policy.PolicyError:  # a stored row that no longer parses: stop less
        log.warning("the active routing policy does not parse; police acknowledgements stop "
                    "police alerts only")
        return False
    return bool(section is not None and section.police_ack_stops_school_alerts)


def _stops(tip_district: int | None, by: Contact, police: bool, stops_school: bool,
           other: Any) -> bool:
    """Whether an acknowledgement by ``by`` stops ``other`` (an open dispatch of the tip, with
    its contact's ``contact_id``, ``district_id``, ``agency_id`` and ``role``)."""
    if other.contact_id == by.id:
        return True
    district = tip_district if tip_district is not None else by.district_id
    if district is None or (tip_district if tip_district is not None
                            else other.district_id) != district:
        return False  # another district's part of a tip that names no school, or unknown
    if not police:
        return True
    if _police(other.role, other.agency_id):
        return by.agency_id is not None and other.agency_id == by.agency_id
    return stops_school


def acknowledge_dispatch(
    session: Session, dispatch_id: int, *, via: str, now: datetime, user_id: int | None = None,
    police: bool | None = None,
) -> bool:
    """Acknowledge one dispatch; cancel the open dispatches of its chain (see the module).

    ``police`` says whether the one acknowledging is police; by default, whether the
    dispatch's contact is (an SMS reply or a keypress comes from that contact). Returns False
    if the dispatch is unknown or already acknowledged or cancelled.
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
    contact = session.get(Contact, dispatch.contact_id)
    assert contact is not None  # noqa: S101  (a foreign key guarantees it)
    tip_district = session.execute(
        select(Tip.district_id).where(Tip.id == tip_id)).scalar_one()
    if police is None:
        police = _police(contact.role, contact.agency_id)
    stops_school = police and police_ack_stops_school_alerts(
        session, tip_district if tip_district is not None else contact.district_id)
    others = session.execute(
        select(Dispatch.id, Dispatch.contact_id, Contact.district_id, Contact.agency_id,
               Contact.role)
        .join(Contact, Contact.id == Dispatch.contact_id)
        .where(Dispatch.tip_id == tip_id, Dispatch.id != dispatch_id,
               Dispatch.status.in_(OPEN))
    ).all()
    stop = [o.id for o in others if _stops(tip_district, contact, police, stops_school, o)]
    cancelled = rowcount(session.execute(
        update(Dispatch)
        .where(Dispatch.id.in_(stop), Dispatch.status.in_(OPEN))
        .values(status=DispatchStatus.CANCELLED.value, next_alert_at=None)
        .execution_options(synchronize_session=False)
    )) if stop else 0
    _mark_tip_if_settled(session, tip_id, now)
    record(session, "tip.acknowledged",
           actor=f"user:{user_id}" if user_id is not None else f"contact:{contact.key}",
           actor_user_id=user_id, tip_id=tip_id, object_type="dispatch",
           object_id=dispatch.id,
           detail={"via": via, "step": dispatch.step_index, "cancelled": cancelled,
                   "left_open": len(others) - cancelled, "police": police})
    return True


def _open_left(session: Session, tip_id: int) -> bool:
    return bool(session.execute(select(exists().where(
        Dispatch.tip_id == tip_id, Dispatch.status.in_(OPEN)))).scalar())


def _mark_tip_if_settled(session: Session, tip_id: int, now: datetime) -> bool:
    """Mark the tip acknowledged once none of its dispatches is open; True if it is now."""
    if _open_left(session, tip_id):
        return False
    _mark_tip(session, tip_id, now)
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
        hooks.tip_acknowledged(session, tip, now)


def answered_dispatches(session: Session, tip_ids: set[int]) -> set[int]:
    """The open dispatches of these tips that an acknowledgement already given reaches.

    The escalation sweep cancels only these: a tip marked acknowledged (by any path) never
    silences a chain that nobody of its own audience answered (``_stops``: another
    district's part of a tip that names no school, another agency, the school's people after
    a police answer). Only an acknowledgement of the same routing job counts.
    """
    if not tip_ids:
        return set()
    rows = session.execute(
        select(Dispatch.id, Dispatch.tip_id, Dispatch.job_id, Dispatch.status,
               Dispatch.contact_id, Contact.district_id, Contact.agency_id, Contact.role,
               Tip.district_id.label("tip_district"))
        .join(Contact, Contact.id == Dispatch.contact_id)
        .join(Tip, Tip.id == Dispatch.tip_id)
        .where(Dispatch.tip_id.in_(tip_ids))
    ).all()
    out: set[int] = set()
    for ack in rows:
        if ack.status != DispatchStatus.ACKNOWLEDGED.value:
            continue
        by = session.get(Contact, ack.contact_id)
        assert by is not None  # noqa: S101  (a foreign key guarantees it)
        police = _police(ack.role, ack.agency_id)
        stops_school = police and police_ack_stops_school_alerts(
            session, ack.tip_district if ack.tip_district is not None else ack.district_id)
        out.update(o.id for o in rows
                   if o.tip_id == ack.tip_id and o.job_id == ack.job_id and o.status in OPEN
                   and _stops(ack.tip_district, by, police, stops_school, o))
    return out


def _answerable(session: Session, user: Any, tip_id: int, tip_district: int | None
                ) -> list[int]:
    """The open dispatches of a tip that ``user`` answers for, their own first, then the
    alerted ones, then later steps: a liaison's own contact's; a district's staff, on a tip
    that names no school, only their district's contacts'."""
    from tipline.accounts.models import Role
    from tipline.triage.scope import liaison_contact_ids

    q = (select(Dispatch.id, Dispatch.contact_id)
         .join(Contact, Contact.id == Dispatch.contact_id)
         .where(Dispatch.tip_id == tip_id, Dispatch.status.in_(OPEN)))
    if user.role == Role.POLICE_LIAISON:
        q = q.where(Dispatch.contact_id.in_(liaison_contact_ids(session, user)))
    elif tip_district is None:
        q = q.where(Contact.district_id == user.district_id)
    rows = session.execute(q.order_by(Dispatch.step_index, Dispatch.id)).all()
    return [r.id for r in rows if r.contact_id == user.contact_id] + [
        r.id for r in rows if r.contact_id != user.contact_id]


def can_acknowledge(session: Session, user: Any, tip: Tip) -> bool:
    """Whether the dashboard's acknowledge button would do something for ``user``: an alert
    of their own audience is open, or (staff) nothing is open and nobody has taken the tip."""
    from tipline.accounts.models import Role

    if _answerable(session, user, tip.id, tip.district_id):
        return True
    return (user.role != Role.POLICE_LIAISON and tip.acknowledged_at is None
            and not _open_left(session, tip.id))


def acknowledge_tip(session: Session, tip_id: int, *, user_id: int, now: datetime) -> int:
    """The dashboard button: acknowledge the open dispatches of the tip this user answers for.

    A user who cannot see the tip acknowledges nothing (0). A police liaison acknowledges only
    the dispatches to their own contact, with a police acknowledgement's reach. Staff of a
    district take only their district's part of a tip that names no school. A tip with no
    open dispatch left is marked acknowledged by school or district staff (someone has taken
    it), and 0 is returned; a liaison's click then changes nothing.
    """
    from tipline.accounts.models import Role, StaffUser
    from tipline.triage.scope import scope_condition

    user = session.get(StaffUser, user_id)
    if user is None:
        return 0
    tip_district = session.execute(
        select(Tip.district_id).where(Tip.id == tip_id, scope_condition(session, user))
    ).one_or_none()
    if tip_district is None:
        return 0
    police = user.role == Role.POLICE_LIAISON
    ids = _answerable(session, user, tip_id, tip_district.district_id)
    if not ids or not acknowledge_dispatch(session, ids[0], via="dashboard", now=now,
                                           user_id=user_id, police=police):
        # Nothing (left) to acknowledge: every open dispatch was taken first.
        tip = session.get(Tip, tip_id)
        if not police and tip is not None and tip.acknowledged_at is None \
                and _mark_tip_if_settled(session, tip_id, now):
            record(session, "tip.acknowledged", actor=f"user:{user_id}", actor_user_id=user_id,
                   tip_id=tip_id, object_type="tip", object_id=tip.uid,
                   detail={"via": "dashboard", "dispatches": 0})
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


def normalise_number(number: str) -> str:
    """A contact's SMS number as stored: no punctuation, +1 added to 10 digits."""
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
    number = normalise_number(from_number)
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
