"""Who may see which tip. Every dashboard read goes through here.

- district admin: the tips of their district, and tips that name no district (someone has to
  see a tip "not about a school"; they are shown to every district admin);
- school staff: the tips of their schools;
- police liaison: only tips with a dispatch to their own contact that was actually sent (a
  later escalation step is stored up front as "scheduled"; until it goes out, or if it is
  cancelled first, the tip was never routed to them). Not what was sent to another contact of
  the same police agency: one agency serves several districts, and a contact a district admin
  may create must not open another district's tips;
- auditor: no tip at all (audit log and statistics only).

A tip outside the scope is reported as not found, never as forbidden, so a URL cannot confirm
that a tip exists.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, and_, exists, false, or_, select
from sqlalchemy.orm import Session

from tipline.accounts.models import Role, StaffUser, staff_schools
from tipline.routing.models import Dispatch, DispatchStatus
from tipline.tips.models import Tip

# Roles that may read a tip in their scope, acknowledge it, add an internal note and record a
# mandated report.
WRITE_ROLES = (Role.DISTRICT_ADMIN.value, Role.SCHOOL_STAFF.value, Role.POLICE_LIAISON.value)
READ_ROLES = WRITE_ROLES
# Roles that run the case: write to the reporter, change status or close, assign, re-triage.
# A police liaison is alerted, acknowledges and reads (brief, section 1); talking to an
# anonymous student, closing the school's tip or re-routing it stays with school staff.
CASE_ROLES = (Role.DISTRICT_ADMIN.value, Role.SCHOOL_STAFF.value)


class TipNotFound(LookupError):
    """No such tip, or not one this account may see (the two are never told apart)."""


def liaison_contact_ids(session: Session, user: StaffUser) -> list[int]:
    """The liaison's own contact, and nothing wider (invariant 6 of the design brief)."""
    return [] if user.contact_id is None else [user.contact_id]


def scope_condition(session: Session, user: StaffUser) -> ColumnElement[bool]:
    """A WHERE clause on ``Tip`` selecting exactly what ``user`` may see."""
    if not user.active:
        return false()
    if user.role == Role.DISTRICT_ADMIN:
        if user.district_id is None:
            return false()
        return or_(Tip.district_id == user.district_id, Tip.district_id.is_(None))
    if user.role == Role.SCHOOL_STAFF:
        school_ids = select(staff_schools.c.school_id).where(staff_schools.c.user_id == user.id)
        return Tip.school_id.in_(school_ids.scalar_subquery())
    if user.role == Role.POLICE_LIAISON:
        contacts = liaison_contact_ids(session, user)
        if not contacts:
            return false()
        return exists().where(Dispatch.tip_id == Tip.id, Dispatch.contact_id.in_(contacts),
                              dispatch_was_sent())
    return false()


# A dispatch in one of these states has gone out (rows written before revision 0005 have no
# ``activated_at``, so the status counts too).
_SENT_STATUSES = (DispatchStatus.ACTIVE.value, DispatchStatus.ACKNOWLEDGED.value,
                  DispatchStatus.EXPIRED.value)


def dispatch_was_sent() -> ColumnElement[bool]:
    """True for a dispatch whose alert went out (not a scheduled or never-sent step). A
    "new message from the reporter" notice (routing.notices) routes the tip to nobody."""
    return and_(Dispatch.status != DispatchStatus.NOTICE.value,
                or_(Dispatch.activated_at.is_not(None), Dispatch.status.in_(_SENT_STATUSES)))


def visible_tips(session: Session, user: StaffUser) -> Select[Tip]:
    """``SELECT tips`` limited to the account's scope; callers add filters and ordering."""
    return select(Tip).where(scope_condition(session, user))


def get_tip_for(session: Session, user: StaffUser, uid: str) -> Tip:
    """The tip with this uid if ``user`` may see it; TipNotFound otherwise."""
    if not uid or len(uid) > 32:
        raise TipNotFound(uid)
    tip = session.execute(
        visible_tips(session, user).where(Tip.uid == uid)
    ).scalar_one_or_none()
    if tip is None:
        raise TipNotFound(uid)
    return tip


def can_see(session: Session, user: StaffUser, tip_id: int) -> bool:
    found = session.execute(
        select(Tip.id).where(Tip.id == tip_id, scope_condition(session, user))
    ).scalar_one_or_none()
    return found is not None
