"""Groups on the dashboard: the queue's group rows, the group page, and acting on a group.

Every function takes the session and the acting account. A group is shown only through the
tips of it the account may see (``triage.scope``): a group none of whose tips is in scope does
not exist for that account. Acting on a group is acting on each of its tips in scope through
the tip's own service (``triage.services``), which checks the role and audits the tip; each
tip also gets a ``group.<action>`` audit event naming the group. Nothing here commits.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from tipline.accounts.models import StaffUser
from tipline.audit.services import record
from tipline.jobs import JobQueue, after_commit
from tipline.routing.classifier import normalize
from tipline.routing.models import RoutingJob
from tipline.surge import services as surge
from tipline.surge.models import TipGroup, TipSignature
from tipline.surge.signature import _words
from tipline.tips.models import Message, Status, Tip
from tipline.triage import services as triage
from tipline.triage.scope import TipNotFound, scope_condition

log = logging.getLogger(__name__)

MAX_ADDS = 12
_TOKEN = re.compile(r"[\w'\u2019-]+")
_EDGES = "'\u2019-"


# -- the queue -----------------------------------------------------------------------------

def folded_behind_open_lead() -> ColumnElement[bool]:
    """True for a tip folded into a group whose lead is open: the queue shows it only in its
    group's row (the lead's), as one row per alert chain."""
    lead = aliased(Tip)
    return exists().where(
        TipSignature.tip_id == Tip.id, TipSignature.folded.is_(True),
        TipGroup.id == TipSignature.group_id, TipGroup.lead_tip_id != Tip.id,
        lead.id == TipGroup.lead_tip_id, lead.status != Status.CLOSED.value)


@dataclass(frozen=True)
class Badge:
    """What a queue row says of its group: how many tips, the newest, the highest severity."""

    uid: str
    count: int
    newest_at: datetime
    severity: int


def badges(session: Session, tip_uids: list[str]) -> dict[str, Badge]:
    """The group badge of each of these tips (by uid) that is in a group of two or more."""
    if not tip_uids:
        return {}
    member, member_tip = aliased(TipSignature), aliased(Tip)
    top = (select(func.max(member_tip.severity))
           .join(member, member.tip_id == member_tip.id)
           .where(member.group_id == TipGroup.id).scalar_subquery())
    rows = session.execute(
        select(Tip.uid, TipGroup.uid, TipGroup.tip_count, TipGroup.newest_at, top)
        .join(TipSignature, TipSignature.tip_id == Tip.id)
        .join(TipGroup, TipGroup.id == TipSignature.group_id)
        .where(Tip.uid.in_(tip_uids), TipGroup.tip_count > 1))
    return {t: Badge(u, n, at, int(s or 0)) for t, u, n, at, s in rows}


def collapses(school: str | None, category: str | None, channel: str | None,
              dated: bool) -> bool:
    """The queue shows groups as one row only in its plain view (any filter but status shows
    every matching tip, so a filter can never hide a tip behind a lead it does not match)."""
    return not (school or category or channel or dated)


# -- the group page --------------------------------------------------------------------------

@dataclass
class MemberView:
    tip: Tip
    body: str | None  # None: the text cannot be opened (key destroyed, or not for this account)
    adds: list[str]  # words this tip brings that no earlier tip of the group had
    folded: bool
    is_lead: bool


@dataclass
class GroupView:
    group: TipGroup
    members: list[MemberView]
    hidden: int  # tips of the group this account may not see
    can_write: bool = False
    can_manage: bool = False
    assignees: list[tuple[int, str]] = field(default_factory=list)

    @property
    def severity(self) -> int:
        return max((m.tip.severity for m in self.members), default=0)


def group_tips(session: Session, user: StaffUser, uid: str) -> tuple[TipGroup, list[Tip], int]:
    """The group and its tips in ``user``'s scope (oldest first), and how many are not."""
    if not uid or len(uid) > 32:
        raise TipNotFound(uid)
    group = session.execute(select(TipGroup).where(TipGroup.uid == uid)).scalar_one_or_none()
    if group is None:
        raise TipNotFound(uid)
    ids = surge.member_ids(session, group.id)
    tips = list(session.execute(
        select(Tip).where(Tip.id.in_(ids), scope_condition(session, user))
        .order_by(Tip.created_at, Tip.id)).scalars()) if ids else []
    if not tips:
        raise TipNotFound(uid)
    return group, tips, len(ids) - len(tips)


def _first_words(session: Session, tip: Tip) -> str | None:
    """The reporter's first message, opened as the tip page opens it."""
    first = session.execute(
        select(Message).where(Message.tip_id == tip.id, Message.author == "reporter")
        .order_by(Message.created_at, Message.id).limit(1)).scalar_one_or_none()
    if first is None:
        return ""
    try:
        return first.body
    except Exception:  # a destroyed or withheld key: say so, never fail the page
        log.info("group page: tip %s text could not be opened", tip.reference)
        return None


def new_words(text: str, seen: set[str]) -> list[str]:
    """Words of ``text`` not in ``seen`` (normalised), stop words left out; names and numbers
    first. ``seen`` gains this text's words."""
    stop = _words()[0]
    out: list[str] = []
    for raw in _TOKEN.findall(text):
        word = normalize(raw).strip(_EDGES)
        if len(word) < 2 or word in stop or word in seen:
            continue
        seen.add(word)
        out.append(raw.strip(_EDGES))
    out.sort(key=lambda w: (not (w[:1].isupper() or any(c.isdigit() for c in w)),))
    return out[:MAX_ADDS]


def read_group(session: Session, user: StaffUser, uid: str, now: datetime) -> GroupView:
    """Open a group: every tip of it in scope side by side, each read audited as a tip read."""
    group, tips, hidden = group_tips(session, user, uid)
    seen: set[str] = set()
    members = []
    for tip in tips:
        record(session, "tip.view", actor=f"user:{user.id}", actor_user_id=user.id,
               tip_id=tip.id, object_type="tip", object_id=tip.uid,
               detail={"via": "group", "group": group.uid})
        body = _first_words(session, tip)
        sig = session.get(TipSignature, tip.id)
        members.append(MemberView(tip, body, new_words(body or "", seen),
                                  bool(sig and sig.folded), tip.id == group.lead_tip_id))
    view = GroupView(group, members, hidden, can_write=user.role in triage.WRITE_ROLES,
                     can_manage=user.role in triage.CASE_ROLES)
    if view.can_manage:
        view.assignees = triage.assignable_users(session, tips[0])
    return view


# -- acting on a group -------------------------------------------------------------------------

@dataclass(frozen=True)
class GroupResult:
    done: int
    skipped: list[str]  # "T-XXXX-XX: why" for tips the action did not apply to


def _each(session: Session, user: StaffUser, uid: str, action: str,
          run: Any) -> GroupResult:
    """Run ``run(tip)`` on every tip of the group in scope; audit each as a group action."""
    group, tips, _hidden = group_tips(session, user, uid)
    done, skipped = 0, []
    for tip in tips:
        try:
            with session.begin_nested():
                run(tip)
                record(session, f"group.{action}", actor=f"user:{user.id}",
                       actor_user_id=user.id, tip_id=tip.id, object_type="tip_group",
                       object_id=group.uid)
            done += 1
        except triage.ActionRefused as exc:
            skipped.append(f"{tip.reference}: {exc}")
    return GroupResult(done, skipped)


def acknowledge(session: Session, user: StaffUser, uid: str, now: datetime) -> GroupResult:
    triage._require_writer(user)
    return _each(session, user, uid, "acknowledge",
                 lambda t: triage.acknowledge(session, user, t, now))


def change_status(session: Session, user: StaffUser, uid: str, status: str, *, reason: str,
                  outcome: str | None, now: datetime) -> GroupResult:
    triage._require_case_worker(user)
    return _each(session, user, uid, "status", lambda t: triage.change_status(
        session, user, t, status, reason=reason, outcome=outcome, now=now))


def assign(session: Session, user: StaffUser, uid: str, assignee_id: int | None,
           now: datetime) -> GroupResult:
    triage._require_case_worker(user)
    return _each(session, user, uid, "assign",
                 lambda t: triage.assign(session, user, t, assignee_id, now))


def reply_all(session: Session, queue: JobQueue, user: StaffUser, uid: str, body: str,
              now: datetime) -> GroupResult:
    """The same message to every reporter of the group (each by their own channel)."""
    triage._require_case_worker(user)
    return _each(session, user, uid, "reply",
                 lambda t: triage.add_reply(session, queue, user, t, body, now))


def split(session: Session, queue: JobQueue, user: StaffUser, uid: str, tip_uid: str,
          now: datetime) -> Tip:
    """Take one tip out of the group for good. A tip that was folded into the group's alert
    chain is routed again on its own (it may be a different threat)."""
    triage._require_case_worker(user)
    group, tips, _hidden = group_tips(session, user, uid)
    tip = next((t for t in tips if t.uid == tip_uid), None)
    if tip is None:
        raise TipNotFound(tip_uid)
    sig = session.get(TipSignature, tip.id)
    was_folded = bool(sig and sig.folded)
    surge.split_tip(session, tip.id)
    record(session, "group.split", actor=f"user:{user.id}", actor_user_id=user.id,
           tip_id=tip.id, object_type="tip_group", object_id=group.uid,
           detail={"rerouted": was_folded})
    if was_folded:
        job = RoutingJob(tip_id=tip.id, reason="split", created_at=now)
        session.add(job)
        session.flush()
        after_commit(session, queue.send_routing, job.id)
    return tip


def in_scope_condition(session: Session, user: StaffUser) -> ColumnElement[bool]:
    """Groups with at least one tip ``user`` may see (for lists of groups)."""
    return exists().where(and_(TipSignature.group_id == TipGroup.id,
                               Tip.id == TipSignature.tip_id, scope_condition(session, user)))
