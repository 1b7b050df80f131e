"""What the tip page shows beyond the raw rows: one story of the tip, who did what, what is new.

``tip_story`` turns a ``TipDetail`` into the page's parts: the people alerted and who
acknowledged (for the summary at the top), the routing in one plain sentence, the language the
reporter used, what each recording's transcript is (or why there is none), and one
chronological list of everything that happened, each entry naming who did it (a staff member,
"reporter" or "system") and flagged when it is new since this reader's last visit. Opening the
page records the visit (``TipRead``), so the queue and the banner know which reporter messages
each staff member has not read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tipline.accounts.models import StaffUser
from tipline.audit.models import AuditEvent
from tipline.audit.services import record
from tipline.directory.models import Contact
from tipline.tips.labels import role_label
from tipline.tips.models import Channel, Tip
from tipline.triage.models import TipRead

LANGUAGES = {"en": "English", "es": "Spanish (español)", "bs": "Bosnian (bosanski)"}
# Twilio transcribes <Record> in English only (docs/twilio.md): a caller who chose another
# language has a recording and no transcript.
TRANSCRIBED_LANGUAGES = frozenset({"en"})
MAX_REPORTER_STATUS = 200
POLICE_ROLES = frozenset({"police_liaison", "police"})
VIA_WORDS = {"sms": "by text message", "voice": "on the alert call",
             "dashboard": "on the dashboard"}


class StatusRefused(ValueError):
    """The reporter status line is not valid as given; the message is safe to show."""


@dataclass(frozen=True)
class Entry:
    at: datetime
    who: str  # a staff member's name, "Reporter" or "System"
    kind: str  # message | reply | note | status | assign | retriage | ack | report | ...
    text: str = ""
    detail: str = ""
    new: bool = False
    mine: bool = False


@dataclass(frozen=True)
class Transcript:
    attachment_uid: str
    text: str | None
    why_none: str  # shown when there is no text


@dataclass
class TipStory:
    entries: list[Entry]
    alerted: list[str]
    acknowledged_by: list[str]
    routing_sentence: str
    language: str
    language_code: str
    transcripts: dict[str, Transcript]
    body_is_placeholder: bool
    last_visit: datetime | None
    new_count: int
    reporter_status: str | None
    extra: dict[str, Any] = field(default_factory=dict)


def contact_label(c: Contact | None) -> str:
    """``Dana Reyes (counselor)``: the role once, even if the name already carries it."""
    if c is None:
        return "a contact no longer in the directory"
    role = role_label(c.role)
    return c.name if not role or role.lower() in c.name.lower() else f"{c.name} ({role})"


def _names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(select(StaffUser.id, StaffUser.display_name, StaffUser.email)
                           .where(StaffUser.id.in_(ids))).all()
    return {i: (n or e) for i, n, e in rows}


def language_label(code: str | None) -> str:
    return LANGUAGES.get(code or "en", code or "English")


def transcript_state(tip: Tip, attachments: list[Any]) -> dict[str, Transcript]:
    """For each recording: its transcript, or a plain reason why there is none."""
    out: dict[str, Transcript] = {}
    lang = language_label(tip.language).split(" (")[0]
    for a in attachments:
        if a.kind != "audio":
            continue
        words = a.transcript
        if words:
            out[a.uid] = Transcript(a.uid, words, "")
        elif (tip.language or "en") not in TRANSCRIBED_LANGUAGES:
            out[a.uid] = Transcript(a.uid, None, f"{lang} voicemail: listen to the recording. "
                                    "There is no transcript: automatic transcription is "
                                    "English only.")
        else:
            out[a.uid] = Transcript(a.uid, None, "No transcript (it failed or has not arrived "
                                    "yet): listen to the recording.")
    return out


def routing_sentence(explanation: dict[str, Any] | None, contacts_alerted: list[str],
                     rule: str | None) -> str:
    """'Sent to X and Y by rule 'r'; police were not alerted: why.' from a job's explanation."""
    if not contacts_alerted:
        return "Nobody has been alerted yet." if explanation is None else \
            "Nobody could be alerted: no contact matched (check the directory and policy)."
    who = _join(contacts_alerted)
    text = f"Sent to {who}"
    if rule:
        text += " (no school named: the district fallback contacts)" if rule == "no-school" \
            else f" by rule '{rule}'"
    police_alerted = False
    police_why = ""
    for c in (explanation or {}).get("contacts", []) or []:
        if not isinstance(c, dict):
            continue
        why = str(c.get("why", ""))
        is_police = c.get("role") in POLICE_ROLES or "police" in why
        if is_police and c.get("alerted"):
            police_alerted = True
        elif is_police and not police_why:
            police_why = why
    if police_alerted:
        text += "; police were alerted by this rule"
    elif police_why:
        text += f"; police were not alerted because {police_why}"
    return text + "."


def _join(items: list[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _acks(session: Session, tip: Tip, names: dict[int, str]) -> list[Entry]:
    rows = session.execute(
        select(AuditEvent.at, AuditEvent.actor, AuditEvent.actor_user_id, AuditEvent.detail)
        .where(AuditEvent.tip_id == tip.id, AuditEvent.action == "tip.acknowledged")
        .order_by(AuditEvent.id)
    ).all()
    keys = {a.split(":", 1)[1] for _at, a, _u, _d in rows if a.startswith("contact:")}
    contacts = {c.key: c for c in session.execute(
        select(Contact).where(Contact.key.in_(keys))).scalars()} if keys else {}
    out = []
    for at, actor, user_id, detail in rows:
        via = VIA_WORDS.get(str((detail or {}).get("via", "")), "")
        if user_id is not None:
            who = names.get(user_id, "A staff member")
        elif actor.startswith("contact:"):
            who = contact_label(contacts.get(actor.split(":", 1)[1]))
        else:
            who = "System"
        out.append(Entry(at, who, "ack", "Acknowledged the tip", via, mine=False))
    return out


def tip_story(session: Session, user: StaffUser, detail: Any, now: datetime) -> TipStory:
    """The page's parts for ``detail`` (a ``services.TipDetail`` already scope-checked and
    audited), then record this visit. Nothing is committed here."""
    tip = detail.tip
    last = session.execute(select(TipRead).where(TipRead.user_id == user.id,
                                                 TipRead.tip_id == tip.id)).scalar_one_or_none()
    last_visit = last.seen_at if last is not None else None
    user_ids = {m.author_user_id for m in detail.messages if m.author_user_id} | \
        {n.author_user_id for n in detail.notes if n.author_user_id} | \
        {e.user_id for e in detail.events if e.user_id} | \
        {int(e.to_value) for e in detail.events if e.kind == "assign" and e.to_value
         and e.to_value.isdigit()} | \
        {int(e.from_value) for e in detail.events if e.kind == "assign" and e.from_value
         and e.from_value.isdigit()}
    ack_users = set(session.execute(select(AuditEvent.actor_user_id).where(
        AuditEvent.tip_id == tip.id, AuditEvent.action == "tip.acknowledged",
        AuditEvent.actor_user_id.is_not(None))).scalars())
    names = _names(session, {i for i in user_ids | ack_users if i is not None})
    entries: list[Entry] = []
    first = True
    for m in detail.messages:
        if m.author == "reporter":
            kind = "tip" if first else "message"
            first = False
            entries.append(Entry(m.created_at, "Reporter", kind, m.body,
                                 "by text message" if m.channel == Channel.SMS.value else ""))
        elif m.author == "staff":
            relay = ""
            if m.channel == Channel.SMS.value:
                relay = f"SMS {m.relay_status}"
            if m.read_by_reporter_at:
                relay = (relay + " · " if relay else "") + "read by the reporter"
            entries.append(Entry(m.created_at, names.get(m.author_user_id or 0, "Staff"),
                                 "reply", m.body, relay, mine=m.author_user_id == user.id))
        else:
            entries.append(Entry(m.created_at, "System", "system", m.body))
    for n in detail.notes:
        entries.append(Entry(n.created_at, names.get(n.author_user_id or 0, "Staff"), "note",
                             n.body, mine=n.author_user_id == user.id))
    for e in detail.events:
        who = names.get(e.user_id or 0, "System")
        mine = e.user_id == user.id
        reason = e.reason if e.reason_ct else ""
        if e.kind == "assign":
            to = names.get(int(e.to_value), "someone") if e.to_value and e.to_value.isdigit() \
                else None
            text = f"Assigned the tip to {to}" if to else "Left the tip unassigned"
        elif e.kind == "status":
            text = f"Changed the status from {_words(e.from_value)} to {_words(e.to_value)}"
        elif e.kind == "retriage":
            text = f"Re-triaged from {_words(e.from_value)} to {_words(e.to_value)}"
        elif e.kind == "reporter_status":
            text = "Set the status line the reporter sees"
        else:
            text = _words(e.kind)
        entries.append(Entry(e.created_at, who, e.kind, text, reason, mine=mine))
    if detail.show_explanation:
        entries += _acks(session, tip, names)
    for r, name in detail.mandated_reports:
        entries.append(Entry(r.reported_at, name, "report",
                             "Recorded a report to Children's Division",
                             mine=r.user_id == user.id))
    for job in detail.jobs:
        if job.reason == "retriage" or not detail.show_explanation:
            continue
        entries.append(Entry(job.created_at, "System", "routing",
                             "Routed the tip" if job.status == "done" else
                             f"Routing {job.status}"))
    if last_visit is not None:
        entries = [Entry(x.at, x.who, x.kind, x.text, x.detail,
                         new=x.at > last_visit and not x.mine, mine=x.mine) for x in entries]
    entries.sort(key=lambda x: x.at)
    alerted, acked = _people(detail)
    job = next((j for j in reversed(detail.jobs) if j.explanation), None)
    sentence = routing_sentence(job.explanation if job else None, alerted,
                                (job.explanation or {}).get("rule") if job else None)
    transcripts = transcript_state(tip, detail.attachments)
    placeholder = tip.channel == Channel.VOICE.value and bool(transcripts) and not any(
        t.text for t in transcripts.values())
    _record_visit(session, user, tip, last, now)
    return TipStory(
        entries=entries, alerted=alerted, acknowledged_by=acked, routing_sentence=sentence,
        language=language_label(tip.language), language_code=tip.language or "en",
        transcripts=transcripts, body_is_placeholder=placeholder, last_visit=last_visit,
        new_count=sum(1 for x in entries if x.new), reporter_status=tip.reporter_status,
    )


def _words(value: str | None) -> str:
    return (value or "—").replace("_", " ").replace("/", ", severity ")


def _people(detail: Any) -> tuple[list[str], list[str]]:
    """Who was alerted (sent dispatches) and who acknowledged, as contact labels."""
    alerted: list[str] = []
    acked: list[str] = []
    for d in detail.dispatches:
        if d.status in ("scheduled", "notice") or (d.status == "cancelled"
                                                   and d.activated_at is None):
            continue
        label = contact_label(detail.contacts.get(d.contact_id))
        if label not in alerted:
            alerted.append(label)
        if d.status == "acknowledged" and d.ack_via in ("sms", "voice") and label not in acked:
            acked.append(label)
    return alerted, acked


def _record_visit(session: Session, user: StaffUser, tip: Tip, row: TipRead | None,
                  now: datetime) -> None:
    if row is not None:
        row.seen_at = now
        return
    try:
        with session.begin_nested():
            session.add(TipRead(user_id=user.id, tip_id=tip.id, seen_at=now))
    except IntegrityError:  # the same person's other tab, just now
        pass


def unread_condition(user_id: int) -> Any:
    """SQL: the tip has a reporter message newer than this user's last visit."""
    seen = select(TipRead.seen_at).where(TipRead.tip_id == Tip.id, TipRead.user_id == user_id
                                         ).correlate(Tip).scalar_subquery()
    return and_(Tip.reporter_message_at.is_not(None),
                or_(seen.is_(None), Tip.reporter_message_at > seen))


def unread_count(session: Session, scope: Any, user_id: int) -> int:
    """Open tips in ``scope`` (a WHERE clause) with a reporter message this user has not read."""
    return int(session.execute(
        select(func.count(Tip.id)).where(scope, Tip.status != "closed", unread_condition(user_id))
    ).scalar_one())


def set_reporter_status(session: Session, user: StaffUser, tip: Tip, text: str,
                        now: datetime) -> str | None:
    """Staff write the short status line the reporter sees on the follow-up page (sealed,
    audited without its words, and kept in the tip's history). Empty text clears it."""
    from tipline.triage.models import TipEvent

    value = " ".join((text or "").split())
    if len(value) > MAX_REPORTER_STATUS:
        raise StatusRefused(f"The status line is too long (at most {MAX_REPORTER_STATUS} "
                            "characters).")
    old = tip.reporter_status
    if (old or "") == value:
        raise StatusRefused("The reporter already sees that status line.")
    tip.reporter_status = value or None
    tip.updated_at = now
    ev = TipEvent(tip=tip, user_id=user.id, kind="reporter_status", created_at=now)
    ev.reason = value or "(cleared)"
    session.add(ev)
    record(session, "tip.reporter_status", actor=f"user:{user.id}", actor_user_id=user.id,
           tip_id=tip.id, object_type="tip", object_id=tip.uid,
           detail={"cleared": not value, "length": len(value)})
    return value or None
