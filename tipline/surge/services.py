"""Surge grouping: record a tip's signature at intake, group it when it is routed, and tell
the people working a group how many more tips came in.

* ``record_signature`` runs where the tip is created (web form, first SMS) or when a voice
  transcript arrives, from the text in memory; it stores only the signature.
* ``on_route`` runs at the start of ``routing.services.route_job``, under a per-school lock,
  and decides whether the tip starts its own alert chain (``None``) or is folded into the
  chain its group's lead tip already started (a ``Fold``). A tip is folded only when all hold:
  it came from intake (a re-triage always routes), the lead tip was routed and is not closed,
  the tip's severity is not above what the group already alerted at, and the classifier found
  no life-safety reason in it that the group's alerts have not carried. Anything else alerts
  at once, so grouping never makes a life-safety tip wait.
* ``notify_groups`` (periodic) sends the people working a group's lead tip one no-content
  "N more tips" alert per interval while tips keep being folded in.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256
from typing import cast

from sqlalchemy import Select, Table, func, insert, select, text, update
from sqlalchemy.orm import Session

from tipline.crypto import Vault
from tipline.jobs import JobQueue
from tipline.routing import classifier
from tipline.routing.models import JobStatus, RoutingJob
from tipline.surge.match import WINDOW, Candidate, best_match
from tipline.surge.models import TipGroup, TipSignature
from tipline.surge.signature import signature
from tipline.tips.models import Severity, Status, Tip

log = logging.getLogger(__name__)

KEY_PURPOSE = "surge-minhash"
SIGNAL_PURPOSE = "surge-signal"
# The most recent signatures of a school compared with a new tip (a surge of 550 tips in five
# minutes compares each with at most this many).
MAX_CANDIDATES = 400
NOTICE_EVERY = timedelta(minutes=15)
NOTICE_RULE = "surge-group"
# The installation's setting (``Settings.surge_grouping``, set by ``configure``), and a
# switch for measuring and tests (``python -m bench routing --surge-groups`` compares both).
ENABLED = True
GROUPING = True


def configure(enabled: bool) -> None:
    """Apply the installation's ``surge_grouping`` setting to this process (``create_app``)."""
    global ENABLED
    ENABLED = enabled
_LOCK_CLASS = 0x53524745  # "SRGE": pg_advisory_xact_lock(class, school id)


def _keys(vault: Vault) -> tuple[bytes, bytes]:
    return vault.derive_secret(KEY_PURPOSE, 64), vault.derive_secret(SIGNAL_PURPOSE)


def life_safety_signals(text_: str, language: str,
                        fired: Sequence[str] | None = None) -> list[str]:
    """Names of the classifier rules with a life-safety floor that fire on ``text_``.

    ``fired``: every rule the classifier already fired on exactly these words in this
    language (intake's triage), so they are not classified twice; None: classify here."""
    if fired is None:
        fired = classifier.classify(text_, language).signals
    lex = classifier._lexicon()  # the rules' floors: which fired signals are life-safety
    floors = {r.signal: r.severity for r in lex.rules}
    return [s for s in fired if (floors.get(s) or 0) >= int(Severity.LIFE_SAFETY)]


def signature_row(vault: Vault, tip_id: int, text_: str, language: str,
                  now: datetime, fired: Sequence[str] | None = None) -> dict[str, object]:
    """The ``tip_signatures`` row for ``text_``: MinHash and keyed digests of its
    life-safety reasons; nothing of the text itself (``fired``: as ``life_safety_signals``)."""
    mh_key, sig_key = _keys(vault)
    sig = signature(text_, mh_key)
    signals = sorted({hmac.new(sig_key, s.encode(), sha256).hexdigest()[:16]
                      for s in life_safety_signals(text_, language, fired)})
    return {"tip_id": tip_id, "school_id": None, "created_at": now, "minhash": sig.minhash,
            "size": sig.size, "signals": signals, "group_id": None, "folded": False,
            "split": False, "grouped_at": None}


# Built once: one intake's INSERT with ``.values(row)`` built, coerced and cache-keyed a new
# ORM statement for every tip, which cost more CPU than computing the signature.
_INSERT_SIGNATURE = insert(cast(Table, TipSignature.__table__))


def record_signature(session: Session, vault: Vault, tip_id: int, text_: str, language: str,
                     now: datetime, *, school_id: int | None = None,
                     replace: bool = False) -> None:
    """Store the signature of a tip's text (one INSERT); ``replace`` for a voice transcript
    that replaces the placeholder. Never raises for the text's sake: no words, no group."""
    if not text_.strip():
        return
    row = signature_row(vault, tip_id, text_, language, now) | {"school_id": school_id}
    if replace:
        found = session.get(TipSignature, tip_id)
        if found is not None:
            found.minhash, found.size = row["minhash"], row["size"]  # type: ignore[assignment]
            found.signals = row["signals"]  # type: ignore[assignment]
            found.school_id = school_id
            return
    insert_signature(session, row)


def at_intake(vault: Vault, school_id: int | None, channel: str, text_: str, language: str,
              now: datetime, fired: Sequence[str] | None = None) -> dict[str, object] | None:
    """``create_tip``'s one call: the ``tip_signatures`` row of a web or SMS tip's words,
    which ``create_tip`` inserts in the same statement as the tip (it sets ``tip_id``; see
    ``insert_signature`` for one row alone). A voice tip's words come later, with its
    transcript (``telephony.voice``). Grouping is an aid: a failure to compute it is logged
    and the tip is taken in without a signature (it alerts alone). ``fired``: the rules
    triage's classifier fired on these words, when it ran (None: classified here)."""
    if channel == "voice" or not text_.strip():
        return None
    try:
        return signature_row(vault, 0, text_, language, now, fired) | {"school_id": school_id}
    except Exception:  # never cost a tip
        log.exception("surge signature failed; the tip is taken in without one")
        return None


def insert_signature(session: Session, row: dict[str, object]) -> None:
    """Insert one ``tip_signatures`` row (``signature_row``'s, with its tip and school)."""
    session.execute(_INSERT_SIGNATURE, row)


@dataclass(frozen=True)
class Fold:
    """The tip was added to its group's alert chain instead of starting one."""

    group_id: int
    group_uid: str
    lead_tip_id: int
    similarity: float

    def explanation(self, lead_reference: str) -> dict[str, object]:
        return {"rule": NOTICE_RULE, "grouped": True, "group": self.group_uid,
                "lead": lead_reference, "similarity": round(self.similarity, 2),
                "why": "same threat as a tip whose alert is being worked; no higher severity "
                       "and no new life-safety reason"}


def _lock_school(session: Session, school_id: int) -> None:
    """Serialise grouping per school (two workers must not start two groups for one threat)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:c, :s)"),
                        {"c": _LOCK_CLASS, "s": school_id})


def candidates(school_id: int, tip_id: int, since: datetime
               ) -> Select[bytes, int | None, int, int]:
    """Earlier tips of the school in the window that routing has taken (their job done:
    grouped, and alerted or folded), newest first; the per-school lock makes this read see
    them all.

    "Routing has taken it" is a scalar subquery, not ``EXISTS``: PostgreSQL runs it once per
    signature of the school (a probe of ``ix_routing_jobs_done_tip``) and cannot turn it into
    a join. As ``EXISTS`` it became a semi-join that, on tables without statistics (a new
    database, a surge before autovacuum's ANALYZE), started from every done job of every
    school and probed the signatures: work that grew with each tip routed.
    """
    routed = select(RoutingJob.id).where(RoutingJob.tip_id == TipSignature.tip_id,
                                         RoutingJob.status == JobStatus.DONE.value).limit(1)
    return (
        select(TipSignature.minhash, TipSignature.group_id, TipSignature.tip_id,
               TipSignature.size)
        .where(TipSignature.school_id == school_id, TipSignature.created_at >= since,
               TipSignature.split.is_(False), TipSignature.tip_id != tip_id,
               routed.scalar_subquery().is_not(None))
        .order_by(TipSignature.created_at.desc()).limit(MAX_CANDIDATES)
    )


def on_route(session: Session, tip: Tip, reason: str, now: datetime) -> Fold | None:
    """Group ``tip`` and say whether its alerts are folded into its group's chain."""
    if tip.school_id is None or not (GROUPING and ENABLED):
        return None
    _lock_school(session, tip.school_id)
    sig = session.get(TipSignature, tip.id)
    if sig is None:
        return None
    if sig.school_id != tip.school_id:  # an SMS or voice tip whose school came later
        sig.school_id = tip.school_id
    score = 0.0
    if sig.group_id is None and not sig.split:
        if not district_options(session, tip.district_id)[0]:
            # Not grouping here: no search. It cost a probe of routing_jobs per candidate (up
            # to MAX_CANDIDATES per tip), and on a table without statistics (a new database,
            # a surge before autovacuum's ANALYZE) PostgreSQL answers each probe by reading
            # the whole ``status`` index: 1.1 billion index entries read in one 3,000-tip
            # routing benchmark, half the machine's CPU by the end of the surge.
            return None
        cands = [Candidate(m, g, t, n) for m, g, t, n in session.execute(
            candidates(tip.school_id, tip.id, now - WINDOW))]
        best, score = best_match(sig.minhash, sig.size, cands)
        if best is None:
            return None
        sig.group_id = best.group_id or _new_group(session, best.tip_id, now).id
        sig.grouped_at = now
        session.execute(update(TipGroup).where(TipGroup.id == sig.group_id).values(
            tip_count=TipGroup.tip_count + 1,
            newest_at=func.greatest(TipGroup.newest_at, tip.created_at)
            if session.get_bind().dialect.name == "postgresql"
            else func.max(TipGroup.newest_at, tip.created_at)))
    if sig.group_id is None:
        return None
    # The group with its lead's state in one read: is the lead's chain open and routed?
    lead_done = select(RoutingJob.id).where(RoutingJob.tip_id == TipGroup.lead_tip_id,
                                            RoutingJob.status == JobStatus.DONE.value).exists()
    found = session.execute(
        select(TipGroup, Tip.status, lead_done)
        .outerjoin(Tip, Tip.id == TipGroup.lead_tip_id).where(TipGroup.id == sig.group_id)
    ).first()
    if found is None:
        return None
    group, lead_status, lead_routed = found
    lead_open = group.lead_tip_id is not None and lead_status != Status.CLOSED.value
    new_reasons = set(sig.signals) - set(group.alerted_signals or [])
    fold = (reason == "intake" and lead_open and lead_routed and group.lead_tip_id != tip.id
            and tip.severity <= group.alerted_severity and not new_reasons)
    if fold and group.lead_tip_id is not None:
        sig.folded = True
        group.unnoticed += 1
        return Fold(group.id, group.uid, group.lead_tip_id, score)
    sig.folded = False
    group.alerted_severity = max(group.alerted_severity, tip.severity)
    group.alerted_signals = sorted(set(group.alerted_signals or []) | set(sig.signals))
    if not lead_open:
        group.lead_tip_id = tip.id
    return None


def forget_signatures(session: Session, now: datetime, window: timedelta = WINDOW) -> int:
    """Erase the signatures of tips older than the grouping window; commits; returns how
    many. Grouping never compares them again, and whoever holds the key file can rank a
    word list against a signature (docs/surge.md), so a copy of the server should hold at
    most a window's worth. The group and the folded flag stay: the group page and
    statistics still count the tip."""
    done = session.connection().execute(
        update(TipSignature).where(TipSignature.created_at < now - window,
                                   TipSignature.minhash != b"")
        .values(minhash=b"", size=0, signals=[])).rowcount
    session.commit()
    return int(done or 0)


# Each process keeps a district's surge options this long (a surge routes many tips of one
# district a second): a policy change reaches grouping within this time.
OPTIONS_TTL = 10.0
_options: dict[int | None, tuple[float, tuple[bool, timedelta]]] = {}


def district_options(session: Session, district_id: int | None) -> tuple[bool, timedelta]:
    """The district policy's ``surge_grouping`` and ``surge_notice_every`` (the defaults:
    on, ``NOTICE_EVERY``, when no policy or no section, or the stored policy fails to parse)."""
    from tipline.routing import policy as routing_policy

    cached = _options.get(district_id)
    if cached is not None and time.monotonic() - cached[0] < OPTIONS_TTL:
        return cached[1]
    try:
        section = routing_policy.district_section(session, district_id)
    except routing_policy.PolicyError:
        section = None
    out = (True, NOTICE_EVERY) if section is None else \
        (section.surge_grouping, section.surge_notice_every)
    _options[district_id] = (time.monotonic(), out)
    return out


def _new_group(session: Session, first_tip_id: int, now: datetime) -> TipGroup:
    """A group around an earlier tip that had none: it is the lead, with what it alerted."""
    first = session.get(Tip, first_tip_id)
    first_sig = session.get(TipSignature, first_tip_id)
    if first is None or first_sig is None:
        raise LookupError(first_tip_id)
    group = TipGroup(school_id=first.school_id, district_id=first.district_id,
                     lead_tip_id=None if first_sig.folded else first.id, created_at=now,
                     newest_at=first.created_at, tip_count=1,
                     alerted_severity=0 if first_sig.folded else first.severity,
                     alerted_signals=[] if first_sig.folded else list(first_sig.signals),
                     unnoticed=0)
    session.add(group)
    session.flush()
    first_sig.group_id = group.id
    return group


def split_tip(session: Session, tip_id: int) -> TipGroup | None:
    """Take a tip out of its group for good; the group loses its count (and its lead, if
    this was the lead: the next tip that alerts becomes it). Returns the old group."""
    sig = session.get(TipSignature, tip_id)
    if sig is None or sig.group_id is None:
        return None
    group = session.get(TipGroup, sig.group_id)
    sig.group_id = None
    sig.split = True
    sig.folded = False
    if group is not None:
        group.tip_count = max(0, group.tip_count - 1)
        if group.lead_tip_id == tip_id:
            group.lead_tip_id = None
    return group


def group_of(session: Session, tip_id: int) -> TipGroup | None:
    sig = session.get(TipSignature, tip_id)
    if sig is None or sig.group_id is None:
        return None
    return session.get(TipGroup, sig.group_id)


def member_ids(session: Session, group_id: int) -> list[int]:
    return list(session.execute(
        select(TipSignature.tip_id).where(TipSignature.group_id == group_id)
        .order_by(TipSignature.created_at, TipSignature.tip_id)).scalars())


# -- "N more tips about this" --------------------------------------------------------------

def notice_text(reference: str, more: int) -> tuple[str, str]:
    """Subject and text of the group notice: a count and the lead's reference, no content."""
    tips = "tip" if more == 1 else "tips"
    return (f"[tipline] {more} more {tips} on {reference}",
            f"tipline: {more} more {tips} about the same thing as {reference} came in. "
            "Open the dashboard to read them.")


def notice_count(rule: str) -> int | None:
    """The count a surge notice dispatch carries in its rule (``surge-group:N``)."""
    if not rule.startswith(NOTICE_RULE + ":"):
        return None
    raw = rule.split(":", 1)[1]
    return int(raw) if raw.isdigit() else None


def notice_more(session: Session, delivery_id: int) -> int | None:
    """For a notice delivery: the "N more tips" count its dispatch carries, else None."""
    from tipline.routing.models import AlertDelivery, Dispatch

    rule = session.execute(
        select(Dispatch.rule).join(AlertDelivery, AlertDelivery.dispatch_id == Dispatch.id)
        .where(AlertDelivery.id == delivery_id)).scalar_one_or_none()
    return notice_count(rule or "")


def notify_groups(session: Session, queue: JobQueue | None, now: datetime,
                  every: timedelta | None = None) -> int:
    """One "N more tips" alert per group and interval to the people working its lead tip
    (the assignee and whoever acknowledged; while nobody has, the contacts whose alerts are
    open). Commits; returns how many groups were noticed."""
    from tipline.audit.services import record
    from tipline.directory.models import Contact
    from tipline.routing.models import Dispatch, DispatchStatus
    from tipline.routing.notices import send_notice, working_contacts

    shortest = timedelta(minutes=1)  # the least a policy may set; each group checks its own
    due = list(session.execute(
        select(TipGroup).where(TipGroup.unnoticed > 0, TipGroup.lead_tip_id.is_not(None))
        .where((TipGroup.last_notice_at.is_(None))
               | (TipGroup.last_notice_at <= now - (every or shortest)))
        .order_by(TipGroup.id).with_for_update(skip_locked=True)).scalars())
    noticed = 0
    for group in due:
        interval = every or district_options(session, group.district_id)[1]
        if group.last_notice_at is not None and group.last_notice_at > now - interval:
            continue
        lead = session.get(Tip, group.lead_tip_id)
        job_id = session.execute(select(func.max(RoutingJob.id)).where(
            RoutingJob.tip_id == group.lead_tip_id)).scalar_one()
        if lead is None or job_id is None:
            continue
        contacts = working_contacts(session, lead) or list(dict.fromkeys(session.execute(
            select(Dispatch.contact_id).where(
                Dispatch.tip_id == lead.id,
                Dispatch.status.in_([DispatchStatus.ACTIVE.value, DispatchStatus.EXPIRED.value]))
            .order_by(Dispatch.id)).scalars()))
        more = group.unnoticed
        for contact_id in contacts:
            contact = session.get(Contact, contact_id)
            if contact is not None and contact.active:
                send_notice(session, queue, job_id, lead.id, contact, f"{NOTICE_RULE}:{more}",
                            now)
        group.unnoticed = 0
        group.last_notice_at = now
        record(session, "group.more_tips_alert", actor="system:surge", tip_id=lead.id,
               object_type="tip_group", object_id=group.uid,
               detail={"more": more, "contacts": len(contacts)})
        noticed += 1
    session.commit()
    return noticed


def clear_group_counts(session: Session, group_id: int) -> None:
    """Recount a group's tips (after a split or a shredded tip)."""
    count = session.execute(select(func.count(TipSignature.tip_id)).where(
        TipSignature.group_id == group_id)).scalar_one()
    session.execute(update(TipGroup).where(TipGroup.id == group_id).values(tip_count=count))


def fold_job(session: Session, job_id: int, fold: Fold, now: datetime) -> bool:
    """Claim a folded tip's routing job as done, with why no alert went out; commits.
    False when someone else claimed it first (the same compare-and-set as routing's)."""
    from tipline.routing import statements as sql

    lead_ref = session.execute(select(Tip.reference).where(Tip.id == fold.lead_tip_id)
                               ).scalar_one_or_none() or ""
    claimed = session.connection().execute(sql.CLAIM_JOB, {
        "b_job": job_id, "b_status": JobStatus.DONE.value, "b_now": now, "b_error": None,
        "b_explanation": fold.explanation(lead_ref),
    }).rowcount
    if not claimed:
        session.rollback()
        return False
    session.commit()
    return True
