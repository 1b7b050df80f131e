"""Dashboard services: the queue, reading a tip (audited), and what staff do to a tip.

Every function takes the session and the acting account, checks scope through
``tipline.triage.scope`` and writes an audit event in the caller's transaction. Nothing here
commits; background work (SMS relay, re-routing) is sent after commit.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, case, false, func, select
from sqlalchemy.orm import Session, selectinload

from tipline.accounts.models import Role, StaffUser, staff_schools
from tipline.audit.services import record
from tipline.directory.models import Contact, School
from tipline.jobs import JobQueue, after_commit
from tipline.routing.ack import acknowledge_tip, can_acknowledge
from tipline.routing.models import Dispatch, RoutingJob
from tipline.tips.models import Attachment, Category, Channel, Message, Note, Severity, Status, Tip
from tipline.triage.conversation import unread_condition, unread_count
from tipline.triage.models import MandatedReport, TipEvent
from tipline.triage.scope import (
    CASE_ROLES,
    WRITE_ROLES,
    TipNotFound,
    can_see,
    get_tip_for,
    scope_condition,
    visible_tips,
)

log = logging.getLogger(__name__)

__all__ = ["TipNotFound", "get_tip_for", "visible_tips"]

PAGE_SIZE = 50
MAX_TEXT = 5000
MAX_REASON = 500
OUTCOMES = {
    "resolved": "Resolved by the school",
    "support_provided": "Student support provided",
    "referred_outside": "Referred to an outside agency",
    "police_action": "Police action",
    "unfounded": "Checked; unfounded",
    "duplicate": "Duplicate of another tip",
    "not_enough_information": "Not enough information to act",
}
STATUS_LABELS = {
    Status.NEW.value: "New",
    Status.ACKNOWLEDGED.value: "Acknowledged",
    Status.IN_PROGRESS.value: "In progress",
    Status.REFERRED.value: "Referred",
    Status.CLOSED.value: "Closed",
}
# Statuses that need a written reason.
REASON_REQUIRED = {Status.REFERRED.value, Status.CLOSED.value}
CHILD_ABUSE_HOTLINE = "1-800-392-3738"


class NotPermitted(Exception):
    """The account's role may not do this (views answer 404, like an out-of-scope tip)."""


class ActionRefused(ValueError):
    """The change is not valid as asked; the message is safe to show to staff."""


def _actor(user: StaffUser) -> str:
    return f"user:{user.id}"


def _require_writer(user: StaffUser) -> None:
    if user.role not in WRITE_ROLES or not user.active:
        raise NotPermitted(user.role)


def _require_case_worker(user: StaffUser) -> None:
    """Replies, status, assignment and re-triage: not for a liaison (see scope.CASE_ROLES)."""
    if user.role not in CASE_ROLES or not user.active:
        raise NotPermitted(user.role)


# -- the queue --------------------------------------------------------------------------

@dataclass(frozen=True)
class QueueFilters:
    school: str | None = None
    category: str | None = None
    status: str | None = "open"  # open = everything but closed; "" or "all" = everything
    channel: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    page: int = 1


@dataclass(frozen=True)
class QueueRow:
    uid: str
    reference: str
    school: str | None
    category: str
    severity: int
    status: str
    channel: str
    created_at: datetime
    acknowledged_at: datetime | None
    assigned: str | None
    danger_now: bool
    # A message from the reporter this account has not read (triage.conversation).
    unread: bool = False
    # Its surge group's badge (tipline.surge.staff.Badge), when it leads a group's row.
    group: Any = None

    @property
    def life_safety_unacked(self) -> bool:
        return self.severity >= Severity.LIFE_SAFETY and self.acknowledged_at is None \
            and self.status != Status.CLOSED.value


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    total: int
    page: int
    pages: int
    latest_id: int


def _filtered(session: Session, user: StaffUser, f: QueueFilters) -> list[Any]:
    where: list[Any] = [scope_condition(session, user)]
    if f.school:
        where.append(Tip.school_id == select(School.id).where(School.code == f.school)
                     .scalar_subquery())
    if f.category:
        where.append(Tip.category == f.category)
    if f.status == "open":
        where.append(Tip.status != Status.CLOSED.value)
    elif f.status and f.status != "all":
        where.append(Tip.status == f.status)
    if f.channel:
        where.append(Tip.channel == f.channel)
    from tipline.surge import staff as surge_staff  # a group is one row (tipline.surge)

    if surge_staff.collapses(f.school, f.category, f.channel, bool(f.date_from or f.date_to)):
        where.append(~surge_staff.folded_behind_open_lead())
    if f.date_from:
        where.append(Tip.created_at >= datetime.combine(f.date_from, time.min).astimezone())
    if f.date_to:
        end = datetime.combine(f.date_to + timedelta(days=1), time.min).astimezone()
        where.append(Tip.created_at < end)
    return where


def queue_order(user_id: int | None = None) -> tuple[Any, ...]:
    """Severity first, then unacknowledged before acknowledged, then the longest waiting.

    With ``user_id``, tips with a reporter message that account has not read come first
    within their severity (then the index orders only the rest of the terms).
    """
    # Matches the index ix_tips_queue_order term by term (false sorts before true).
    acked = Tip.acknowledged_at.is_not(None)
    if user_id is not None:
        unread_last = case((unread_condition(user_id), 0), else_=1)
        return (Tip.severity.desc(), unread_last, acked.asc(), Tip.created_at.asc(),
                Tip.id.asc())
    return (Tip.severity.desc(), acked.asc(), Tip.created_at.asc(), Tip.id.asc())


def list_queue(session: Session, user: StaffUser, filters: QueueFilters) -> QueuePage:
    """One page of the queue. Reads no content, so it is not a tip read (not audited)."""
    where = _filtered(session, user, filters)
    total = session.execute(select(func.count(Tip.id)).where(*where)).scalar_one()
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, filters.page), pages)
    # First the page's ids, ordered on narrow rows (the index covers the order), then the
    # 50 rows with their joins: a deep page never sorts wide rows.
    page_ids = (
        select(Tip.id).where(*where).order_by(*queue_order(user.id))
        .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).subquery()
    assignee = StaffUser.__table__.alias("assignee")
    stmt = (
        select(Tip.uid, Tip.reference, School.name, Tip.category, Tip.severity, Tip.status,
               Tip.channel, Tip.created_at, Tip.acknowledged_at, assignee.c.display_name,
               Tip.danger_now, unread_condition(user.id))
        .join(page_ids, page_ids.c.id == Tip.id)
        .outerjoin(School, School.id == Tip.school_id)
        .outerjoin(assignee, assignee.c.id == Tip.assigned_to_id)
        .order_by(*queue_order(user.id))
    )
    rows = [QueueRow(*r) for r in session.execute(stmt)]  # the last column is ``unread``
    from tipline.surge import staff as surge_staff

    groups = surge_staff.badges(session, [r.uid for r in rows])
    rows = [replace(r, group=groups[r.uid]) if r.uid in groups else r for r in rows]
    latest = session.execute(select(func.max(Tip.id)).where(*where[:1])).scalar_one() or 0
    return QueuePage(rows, total, page, pages, latest)


@dataclass(frozen=True)
class BannerTip:
    uid: str
    reference: str
    school: str | None


@dataclass(frozen=True)
class Banner:
    count: int
    tips: list[BannerTip]
    # Open tips whose routing found nobody to alert (a directory or policy gap): nobody was
    # told, so every page says so until the tip is re-triaged or closed.
    unrouted: list[BannerTip] = field(default_factory=list)
    # Open tips with a reporter message this account has not read (triage.conversation).
    unread: int = 0

    @property
    def shown(self) -> bool:
        return bool(self.count or self.unrouted or self.unread)


def lifesafety_banner(session: Session, user: StaffUser, limit: int = 5) -> Banner:
    """Unacknowledged, open life-safety tips this account can see: shown on every page."""
    if user.role not in WRITE_ROLES:
        return Banner(0, [])
    where = [
        scope_condition(session, user),
        Tip.severity >= int(Severity.LIFE_SAFETY),
        Tip.acknowledged_at.is_(None),
        Tip.status != Status.CLOSED.value,
    ]
    rows = session.execute(
        select(Tip.uid, Tip.reference, School.name, func.count().over())
        .outerjoin(School, School.id == Tip.school_id)
        .where(*where).order_by(Tip.created_at.asc()).limit(limit)
    ).all()
    unrouted = unrouted_tips(session, user, limit)
    unread = unread_count(session, scope_condition(session, user), user.id)
    if not rows:
        return Banner(0, [], unrouted, unread)
    return Banner(int(rows[0][3]), [BannerTip(uid, ref, school) for uid, ref, school, _n in rows],
                  unrouted, unread)


def unrouted_tips(session: Session, user: StaffUser, limit: int = 5) -> list[BannerTip]:
    """Open tips in scope whose latest routing job failed (no contact matched) and that have
    no dispatch at all: routed to nobody. Starts from the failed jobs, which are rare."""
    failed = session.execute(
        select(RoutingJob.tip_id).where(RoutingJob.status == "failed").distinct().limit(1000)
    ).scalars().all()
    if not failed:  # the usual case: one indexed lookup and done
        return []
    dispatched = select(Dispatch.tip_id).where(Dispatch.tip_id == Tip.id).exists()
    rows = session.execute(
        select(Tip.uid, Tip.reference, School.name)
        .outerjoin(School, School.id == Tip.school_id)
        .where(Tip.id.in_(failed), ~dispatched, Tip.status != Status.CLOSED.value,
               scope_condition(session, user))
        .order_by(Tip.created_at.asc()).limit(limit)
    ).all()
    return [BannerTip(uid, ref, school) for uid, ref, school in rows]


def queue_state(session: Session, user: StaffUser, filters: QueueFilters) -> tuple[int, int]:
    """(newest visible tip id, how many tips match): what the polling script compares."""
    where = _filtered(session, user, filters)
    total = session.execute(select(func.count(Tip.id)).where(*where)).scalar_one()
    latest = session.execute(select(func.max(Tip.id)).where(*where[:1])).scalar_one() or 0
    return int(latest), int(total)


def school_choices(session: Session, user: StaffUser) -> list[tuple[str, str]]:
    """Schools the filter offers: the account's own schools, or its district's."""
    if user.role == Role.SCHOOL_STAFF:
        q = select(School.code, School.name).join(
            staff_schools, staff_schools.c.school_id == School.id
        ).where(staff_schools.c.user_id == user.id)
    elif user.role == Role.DISTRICT_ADMIN and user.district_id is not None:
        q = select(School.code, School.name).where(School.district_id == user.district_id)
    else:
        q = select(School.code, School.name).where(
            School.id.in_(visible_tips(session, user).with_only_columns(Tip.school_id)
                          .where(Tip.school_id.is_not(None)).distinct().scalar_subquery()))
    return [(c, n) for c, n in session.execute(q.order_by(School.name))]


# -- reading a tip -----------------------------------------------------------------------

@dataclass
class TipDetail:
    tip: Tip
    body: str
    details: dict[str, str]
    messages: list[Message]
    notes: list[Note]
    events: list[TipEvent]
    attachments: list[Attachment]
    jobs: list[RoutingJob]
    dispatches: list[Dispatch]
    contacts: dict[int, Contact]
    mandated_reports: list[tuple[MandatedReport, str]]
    reported_by_me: bool
    assignees: list[tuple[int, str]] = field(default_factory=list)
    can_write: bool = False
    can_manage: bool = False  # reply, status, assign, re-triage (CASE_ROLES)
    show_explanation: bool = True
    # The acknowledge button: while an alert of the account's own audience is open (a liaison's
    # own contact; a district's part of a tip that names no school), or, for staff, while
    # nothing is open and nobody has taken the tip (routing ``ack.can_acknowledge``).
    can_acknowledge: bool = False


def read_tip(session: Session, user: StaffUser, uid: str, now: datetime) -> TipDetail:
    """Open a tip for reading: scope-checked, decrypted, and recorded in the audit log."""
    tip = get_tip_for(session, user, uid)
    record(session, "tip.view", actor=_actor(user), actor_user_id=user.id, tip_id=tip.id,
           object_type="tip", object_id=tip.uid)
    _complete_sealing(session, user, tip)
    messages = list(session.execute(
        select(Message).where(Message.tip_id == tip.id).order_by(Message.created_at, Message.id)
    ).scalars())
    first_reporter = next((m for m in messages if m.author == "reporter"), None)
    body = first_reporter.body if first_reporter is not None else ""
    details: dict[str, str] = {}
    raw = tip.details_json
    if raw:
        try:
            loaded = json.loads(raw)
            if isinstance(loaded, dict):
                details = {str(k): str(v) for k, v in loaded.items()}
        except ValueError:
            log.warning("tip %s has unreadable details", tip.id)
    nq = select(Note).where(Note.tip_id == tip.id).order_by(Note.created_at, Note.id)
    eq = select(TipEvent).where(TipEvent.tip_id == tip.id).order_by(TipEvent.created_at,
                                                                     TipEvent.id)
    if user.role == Role.POLICE_LIAISON:
        # Police get the tip they were alerted to, not the school's case file: only notes
        # written by accounts on their own contact, and none of the school's status reasons.
        from tipline.triage.scope import liaison_contact_ids

        desk_users = select(StaffUser.id).where(
            StaffUser.contact_id.in_(liaison_contact_ids(session, user)))
        nq = nq.where(Note.author_user_id.in_(desk_users))
        eq = eq.where(false())
    notes = list(session.execute(nq).scalars())
    events = list(session.execute(eq).scalars())
    attachments = list(session.execute(
        select(Attachment).where(Attachment.tip_id == tip.id).order_by(Attachment.id)
    ).scalars())
    jobs = list(session.execute(
        select(RoutingJob).where(RoutingJob.tip_id == tip.id).order_by(RoutingJob.id)
    ).scalars())
    dq = (select(Dispatch).where(Dispatch.tip_id == tip.id)
          .options(selectinload(Dispatch.deliveries))
          .order_by(Dispatch.job_id, Dispatch.step_index, Dispatch.id))
    show_explanation = True
    if user.role == Role.POLICE_LIAISON:
        from tipline.triage.scope import liaison_contact_ids

        dq = dq.where(Dispatch.contact_id.in_(liaison_contact_ids(session, user)))
        show_explanation = False
    dispatches = list(session.execute(dq).scalars())
    contact_ids = {d.contact_id for d in dispatches}
    contacts = {c.id: c for c in session.execute(
        select(Contact).where(Contact.id.in_(contact_ids))).scalars()} if contact_ids else {}
    reports = [(r, str(name)) for r, name in session.execute(
        select(MandatedReport, StaffUser.display_name)
        .join(StaffUser, StaffUser.id == MandatedReport.user_id)
        .where(MandatedReport.tip_id == tip.id).order_by(MandatedReport.reported_at)
    )]
    detail = TipDetail(
        tip=tip, body=body, details=details, messages=messages, notes=notes, events=events,
        attachments=attachments, jobs=jobs, dispatches=dispatches, contacts=contacts,
        mandated_reports=reports,
        reported_by_me=any(r.user_id == user.id for r, _n in reports),
        can_write=user.role in WRITE_ROLES, can_manage=user.role in CASE_ROLES,
        show_explanation=show_explanation,
        can_acknowledge=user.role in WRITE_ROLES and can_acknowledge(session, user, tip),
    )
    if detail.can_manage:
        detail.assignees = assignable_users(session, tip)
    return detail


def _complete_sealing(session: Session, user: StaffUser, tip: Tip) -> None:
    """A police agency alerted for this tip without a slot on its key (the tip's category
    became known after intake, by an SMS answer or a transcript, or the routing changed since
    intake planned): the district staff member opening the tip seals it to the agency, so the
    liaison the alert went to can read it. Liaisons cannot (they do not hold the key)."""
    if user.role == Role.POLICE_LIAISON or tip.data_key is None:
        return
    from tipline import crypto
    from tipline.routing.audience import seal_to_agencies, sealed_agency_ids, tip_agency_ids

    missing = tip_agency_ids(session, tip) - sealed_agency_ids(tip.data_key.slots)
    if not missing or tip.data_key.kek_id != crypto.SEALED_ONLY:
        return
    try:
        changed = seal_to_agencies(session, crypto.current(), tip, missing)
    except crypto.KeyUnavailable:
        return  # this account cannot open it either; the page says so
    if changed:
        record(session, "tip.sealed_to_agencies", actor=_actor(user), actor_user_id=user.id,
               tip_id=tip.id, object_type="tip", object_id=tip.uid,
               detail={"agencies": sorted(missing), "keys": changed})


def assignable_users(session: Session, tip: Tip) -> list[tuple[int, str]]:
    """Active staff who can see this tip: its district's admins and its school's staff."""
    conds = []
    if tip.district_id is not None:
        conds.append(and_(StaffUser.role == Role.DISTRICT_ADMIN.value,
                          StaffUser.district_id == tip.district_id))
    if tip.school_id is not None:
        conds.append(and_(StaffUser.role == Role.SCHOOL_STAFF.value, StaffUser.id.in_(
            select(staff_schools.c.user_id).where(staff_schools.c.school_id == tip.school_id))))
    if not conds:
        conds.append(StaffUser.role == Role.DISTRICT_ADMIN.value)
    from sqlalchemy import or_

    rows = session.execute(
        select(StaffUser.id, StaffUser.display_name, StaffUser.email)
        .where(StaffUser.active.is_(True), or_(*conds)).order_by(StaffUser.display_name)
    ).all()
    return [(i, name or email) for i, name, email in rows]


def attachment_for(session: Session, user: StaffUser, tip_uid: str, att_uid: str) -> Attachment:
    """An attachment of a tip in scope (audited as a read of the tip's content)."""
    tip = get_tip_for(session, user, tip_uid)
    att = session.execute(
        select(Attachment).where(Attachment.tip_id == tip.id, Attachment.uid == att_uid)
    ).scalar_one_or_none()
    if att is None:
        raise TipNotFound(att_uid)
    record(session, "tip.view_attachment", actor=_actor(user), actor_user_id=user.id,
           tip_id=tip.id, object_type="attachment", object_id=att.uid,
           detail={"kind": att.kind})
    return att


# Types a browser shows as a picture or plays as sound and never runs as a document. The
# stored type of a recording is whatever Twilio answered, and an SVG "image" can carry script,
# so anything not listed is sent as a download.
INLINE_TYPES = frozenset({
    "image/jpeg", "image/png", "image/gif", "image/webp",
    "audio/mpeg", "audio/wav", "audio/x-wav", "audio/wave", "audio/ogg", "audio/webm",
    "audio/mp4", "audio/aac",
})


def attachment_delivery(content_type: str) -> tuple[str, str]:
    """(Content-Type, Content-Disposition) to serve an attachment stored with this type."""
    if content_type in INLINE_TYPES:
        return content_type, "inline"
    return "application/octet-stream", "attachment"


# -- changing a tip ----------------------------------------------------------------------

def _clean_text(text: str, limit: int, what: str) -> str:
    text = (text or "").strip()
    if not text:
        raise ActionRefused(f"The {what} is empty.")
    if len(text) > limit:
        raise ActionRefused(f"The {what} is too long (at most {limit} characters).")
    return text


def add_reply(session: Session, queue: JobQueue, user: StaffUser, tip: Tip, body: str,
              now: datetime) -> Message:
    """A message to the reporter: shown on the follow-up page, or relayed by SMS."""
    _require_case_worker(user)
    text = _clean_text(body, MAX_TEXT, "reply")
    sms = tip.channel == Channel.SMS.value and tip.phone_ct is not None
    msg = Message(tip=tip, author="staff", author_user_id=user.id,
                  channel=Channel.SMS.value if sms else Channel.WEB.value,
                  relay_status="pending" if sms else "n/a", created_at=now)
    msg.body = text
    job_key = None
    if sms:
        # The number opens here, with the staff member's key; the relay worker gets it (and
        # the text) only under a one-job key carried by its task (``telephony.relay``).
        from tipline.telephony.relay import seal_payload

        msg.relay_payload_ct, job_key = seal_payload(msg.uid, tip.phone or "", text)
    session.add(msg)
    session.flush()
    record(session, "tip.reply", actor=_actor(user), actor_user_id=user.id, tip_id=tip.id,
           object_type="message", object_id=msg.id, detail={"channel": msg.channel})
    if sms:
        after_commit(session, queue.send_task, "tipline.relay_sms", msg.id, job_key)
    return msg


def add_note(session: Session, user: StaffUser, tip: Tip, body: str, now: datetime) -> Note:
    _require_writer(user)
    text = _clean_text(body, MAX_TEXT, "note")
    note = Note(tip=tip, author_user_id=user.id, created_at=now)
    note.body = text
    session.add(note)
    session.flush()
    record(session, "tip.note", actor=_actor(user), actor_user_id=user.id, tip_id=tip.id,
           object_type="note", object_id=note.id)
    return note


def _event(session: Session, user: StaffUser, tip: Tip, kind: str, old: str | None,
           new: str | None, reason: str, now: datetime) -> TipEvent:
    ev = TipEvent(tip=tip, user_id=user.id, kind=kind, from_value=old, to_value=new,
                  created_at=now)
    ev.reason = reason
    session.add(ev)
    return ev


def change_status(session: Session, user: StaffUser, tip: Tip, status: str, *, reason: str,
                  outcome: str | None, now: datetime) -> None:
    """Move a tip through new -> acknowledged -> in progress -> referred -> closed."""
    _require_case_worker(user)
    if status not in STATUS_LABELS:
        raise ActionRefused("Choose a status from the list.")
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON:
        raise ActionRefused(f"The reason is too long (at most {MAX_REASON} characters).")
    if status in REASON_REQUIRED and not reason:
        raise ActionRefused(f"Say why the tip is {STATUS_LABELS[status].lower()}.")
    if status == Status.NEW.value and tip.status != Status.NEW.value:
        raise ActionRefused("A tip cannot go back to new.")
    if status == tip.status and status != Status.CLOSED.value:
        raise ActionRefused(f"The tip is already {STATUS_LABELS[status].lower()}.")
    if status == Status.CLOSED.value and outcome not in OUTCOMES:
        raise ActionRefused("Choose an outcome to close the tip.")
    old = tip.status
    # Taking the tip answers the alerts of the changer's own audience only (their district's
    # part of a tip that names no school); the tip is marked acknowledged once nothing is
    # open. Done first: it reloads the tip.
    acknowledge_tip(session, tip.id, user_id=user.id, now=now)
    session.refresh(tip)
    if status == Status.CLOSED.value:
        tip.outcome = outcome
        tip.closed_at = now
    else:
        outcome = None
        if tip.status == Status.CLOSED.value:
            tip.closed_at = None
            tip.outcome = None
    tip.status = status
    tip.updated_at = now
    _event(session, user, tip, "status", old, status, reason, now)
    record(session, "tip.status", actor=_actor(user), actor_user_id=user.id, tip_id=tip.id,
           object_type="tip", object_id=tip.uid,
           detail={"from": old, "to": status, "outcome": outcome})


def assign(session: Session, user: StaffUser, tip: Tip, assignee_id: int | None,
           now: datetime) -> None:
    _require_case_worker(user)
    if assignee_id is not None:
        assignee = session.get(StaffUser, assignee_id)
        if assignee is None or not assignee.active or not can_see(session, assignee, tip.id):
            raise ActionRefused("That person cannot see this tip, so it cannot be assigned "
                                "to them.")
    old = tip.assigned_to_id
    tip.assigned_to_id = assignee_id
    tip.updated_at = now
    _event(session, user, tip, "assign", None if old is None else str(old),
           None if assignee_id is None else str(assignee_id), "", now)
    record(session, "tip.assign", actor=_actor(user), actor_user_id=user.id, tip_id=tip.id,
           object_type="tip", object_id=tip.uid, detail={"from": old, "to": assignee_id})


def retriage(session: Session, queue: JobQueue, user: StaffUser, tip: Tip, *, category: str,
             severity: int, reason: str, now: datetime) -> RoutingJob:
    """Change category/severity and route the tip again (open alerts are replaced)."""
    _require_case_worker(user)
    if category not in {c.value for c in Category}:
        raise ActionRefused("Choose a category from the list.")
    if severity not in {int(s) for s in Severity}:
        raise ActionRefused("Choose a severity from the list.")
    reason = _clean_text(reason, MAX_REASON, "reason for re-triage")
    if category == tip.category and severity == tip.severity:
        raise ActionRefused("Nothing changed: choose a different category or severity.")
    old = f"{tip.category}/{tip.severity}"
    tip.category = category
    tip.severity = severity
    tip.updated_at = now
    # The tip's readers follow its new routing: a police agency the policy now alerts gets a
    # sealed slot, one it no longer alerts loses its slot (this staff member's keys open it).
    from tipline import crypto
    from tipline.routing.audience import reseal_for_plan

    try:
        resealed = reseal_for_plan(session, crypto.current(), tip, now)
    except crypto.KeyUnavailable:
        raise ActionRefused("Your keys cannot open this tip, so it cannot be re-triaged: ask "
                            "a colleague with access to grant you access.") from None
    job = RoutingJob(tip_id=tip.id, reason="retriage", created_at=now)
    session.add(job)
    session.flush()
    _event(session, user, tip, "retriage", old, f"{category}/{severity}", reason, now)
    detail: dict[str, object] = {"from": old, "to": f"{category}/{severity}"}
    if resealed.added or resealed.removed:
        detail |= {"sealed_to_agencies": list(resealed.added),
                   "unsealed_agencies": list(resealed.removed)}
    record(session, "tip.retriage", actor=_actor(user), actor_user_id=user.id, tip_id=tip.id,
           object_type="routing_job", object_id=job.id, detail=detail)
    after_commit(session, queue.send_routing, job.id)
    return job


def acknowledge(session: Session, user: StaffUser, tip: Tip, now: datetime) -> int:
    """The dashboard's acknowledge button: the routing package's ``acknowledge_tip``, which
    acknowledges the open dispatches this account answers for and stops their chain (a
    liaison's click leaves the school's alerts, and the tip's own state, to the school)."""
    _require_writer(user)
    count = int(acknowledge_tip(session, tip.id, user_id=user.id, now=now))
    session.refresh(tip)
    record(session, "tip.acknowledge_button", actor=_actor(user), actor_user_id=user.id,
           tip_id=tip.id, object_type="tip", object_id=tip.uid, detail={"dispatches": count})
    return count


def record_mandated_report(session: Session, user: StaffUser, tip: Tip,
                           now: datetime) -> MandatedReport:
    """This staff member says they called Children's Division themselves (RSMo 210.115)."""
    _require_writer(user)
    if tip.category != Category.ABUSE.value:
        raise ActionRefused("Only tips about abuse or neglect carry this record.")
    existing = session.execute(
        select(MandatedReport).where(MandatedReport.tip_id == tip.id,
                                     MandatedReport.user_id == user.id)
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    report = MandatedReport(tip_id=tip.id, user_id=user.id, reported_at=now)
    session.add(report)
    session.flush()
    record(session, "tip.mandated_report", actor=_actor(user), actor_user_id=user.id,
           tip_id=tip.id, object_type="mandated_report", object_id=report.id,
           detail={"agency": "mo_childrens_division"})
    return report
