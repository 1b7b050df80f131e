"""Telling the people working a tip that the reporter wrote again.

A reporter's later message (web follow-up or SMS) stamps ``Tip.reporter_message_at`` and, by
the district's policy (``reporter_message_alerts: working``, the default, or ``off``), sends
the people working the tip a no-content alert: "New message from the reporter on T-XXXX-XX".

The people working a tip are its assignee and whoever acknowledged it, reached through their
directory contact: a staff account's linked contact, else the active non-police contact of the
tip's district with the account's email; a contact that acknowledged by SMS or by phone. If
nobody can be named that way, the contacts whose alerts were acknowledged (a dashboard
acknowledgement marks every alert it stops).

The alert goes through the ordinary delivery path: a ``Dispatch`` with status ``notice`` (never
acknowledged, never escalated, and not counted by ``scope`` as routing the tip to anyone) and
its ``AlertDelivery`` rows, published after commit like routing's. One contact gets at most one
such alert per tip per ``QUIET`` (a reporter sending five texts in a row makes one alert).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tipline.accounts.models import StaffUser
from tipline.audit.models import AuditEvent
from tipline.audit.services import record
from tipline.directory.models import Contact
from tipline.jobs import JobQueue, after_commit
from tipline.routing.models import Dispatch, DispatchStatus, RoutingJob
from tipline.routing.services import contact_channels, open_deliveries, send_delivery
from tipline.tips.models import Tip

log = logging.getLogger(__name__)

NOTICE_RULE = "reporter-message"
QUIET = timedelta(minutes=15)
MODES = ("working", "off")
DEFAULT_MODE = "working"


def notice_text(reference: str) -> tuple[str, str]:
    """Subject and text of the alert: the reference only, never what the reporter wrote."""
    return (f"[tipline] new message on {reference}",
            f"tipline: New message from the reporter on {reference}. Open the dashboard to "
            "read it.")


def notice_channels(channels: tuple[str, ...]) -> list[str]:
    """Text and email first; a call only for a contact that has nothing else."""
    quiet = [c for c in channels if c != "voice"]
    return quiet or list(channels)


def mode_for(session: Session, district_id: int | None) -> str:
    """The district's ``reporter_message_alerts`` (the default when the policy says nothing)."""
    from tipline.routing import policy as routing_policy

    try:
        section = routing_policy.district_section(session, district_id)
    except routing_policy.PolicyError:
        return DEFAULT_MODE
    return section.reporter_message_alerts if section is not None else DEFAULT_MODE


def _contact_of(session: Session, user: StaffUser, district_id: int | None) -> int | None:
    if user.contact_id is not None:
        return user.contact_id
    if district_id is None:
        return None
    return session.execute(
        select(Contact.id).where(
            func.lower(Contact.email) == user.email.lower(), Contact.active.is_(True),
            Contact.district_id == district_id, Contact.agency_id.is_(None),
            Contact.role != "police_liaison")
        .order_by(Contact.id).limit(1)
    ).scalar_one_or_none()


def working_contacts(session: Session, tip: Tip) -> list[int]:
    """The contacts of the people working ``tip`` (see the module docstring), in order."""
    user_ids: list[int] = []
    if tip.assigned_to_id is not None:
        user_ids.append(tip.assigned_to_id)
    user_ids += [u for u in session.execute(
        select(AuditEvent.actor_user_id).where(
            AuditEvent.tip_id == tip.id, AuditEvent.action == "tip.acknowledged",
            AuditEvent.actor_user_id.is_not(None)).order_by(AuditEvent.id)
    ).scalars() if u is not None]
    out: list[int] = []
    for uid in dict.fromkeys(user_ids):
        user = session.get(StaffUser, uid)
        if user is None or not user.active:
            continue
        cid = _contact_of(session, user, tip.district_id)
        if cid is not None:
            out.append(cid)
    acked = session.execute(
        select(Dispatch.contact_id, Dispatch.ack_via).where(
            Dispatch.tip_id == tip.id, Dispatch.status == DispatchStatus.ACKNOWLEDGED.value)
        .order_by(Dispatch.acknowledged_at, Dispatch.id)
    ).all()
    out += [c for c, via in acked if via in ("sms", "voice")]
    if not out:
        out = [c for c, _via in acked]
    return list(dict.fromkeys(out))


def send_notice(session: Session, queue: JobQueue | None, job_id: int, tip_id: int,
                contact: Contact, rule: str, now: datetime) -> bool:
    """One no-content notice to ``contact`` on its notice channels, sent after commit (without
    a queue, flagged for the sweep). False: the contact has no channel a notice may use."""
    channels = notice_channels(contact_channels(contact))
    if not channels:
        return False
    dispatch = Dispatch(job_id=job_id, tip_id=tip_id, contact_id=contact.id, rule=rule,
                        step_index=0, channels=channels, status=DispatchStatus.NOTICE.value,
                        include_content=False, due_at=now, created_at=now, activated_at=now,
                        alert_round=0)
    session.add(dispatch)
    session.flush()
    for dl in open_deliveries(session, dispatch, 0):
        if queue is None:
            dl.publish_failed = True
        else:
            after_commit(session, send_delivery, queue, dl.id, False)
    return True


def reporter_wrote(session: Session, queue: JobQueue | None, tip: Tip, now: datetime) -> int:
    """Stamp the tip and alert the people working it; returns how many were alerted.

    Call in the transaction that stores the reporter's message; nothing is committed here.
    Without a queue the deliveries are flagged for the sweep, which sends them at its next run.
    """
    tip.reporter_message_at = now
    if mode_for(session, tip.district_id) == "off":
        return 0
    job_id = session.execute(
        select(func.max(RoutingJob.id)).where(RoutingJob.tip_id == tip.id)).scalar_one()
    if job_id is None:
        return 0
    recent = set(session.execute(
        select(Dispatch.contact_id).where(
            Dispatch.tip_id == tip.id, Dispatch.status == DispatchStatus.NOTICE.value,
            Dispatch.created_at > now - QUIET)
    ).scalars())
    alerted = 0
    for contact_id in working_contacts(session, tip):
        contact = session.get(Contact, contact_id)
        if contact is None or not contact.active or contact_id in recent:
            continue
        if send_notice(session, queue, job_id, tip.id, contact, NOTICE_RULE, now):
            alerted += 1
    if alerted:
        record(session, "tip.reporter_message_alert", actor="system:notices", tip_id=tip.id,
               object_type="tip", object_id=tip.uid, detail={"contacts": alerted})
    return alerted
