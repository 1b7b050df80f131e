"""The SMS conversation: keywords, the first text opening a tip, the guided questions, threading.

``handle_inbound_sms`` runs inside the webhook's transaction and returns the reply to send (or
None). The caller commits and only then answers Twilio, so "received" is never said about a
tip that is not stored. The reporter's number is used for two things only: its keyed HMAC finds
the conversation, and the tip keeps it sealed so a worker can relay staff replies. It is erased
when the reporter texts STOP, when the tip is closed, or after the conversation idles out.
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, delete, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tipline import crypto
from tipline.crypto import Vault
from tipline.directory.models import Contact
from tipline.intake.services import TipSubmission, create_tip
from tipline.intake.triage import Triage, run_triage
from tipline.jobs import JobQueue
from tipline.routing.ack import normalise_number
from tipline.routing.audience import give_item_key
from tipline.routing.notices import reporter_wrote
from tipline.telephony import texts
from tipline.telephony.models import (
    InboundEvent,
    SmsConversation,
    SmsOptOut,
    SmsStep,
    TaskKind,
)
from tipline.telephony.schools import INDEX, SchoolRef, find_school_in_text, match_school
from tipline.telephony.store import add_task, first_time, insert_ignore, reroute
from tipline.tips.models import Category, Channel, Message, Severity, Status, Tip
from tipline.typed import typed_number

log = logging.getLogger(__name__)

PHONE_PURPOSE = "phone"

# Carrier keywords: the whole message, case and punctuation ignored.
STOP_WORDS = frozenset({"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT",
                        "OPTOUT", "OPT OUT", "REVOKE"})
START_WORDS = frozenset({"START", "UNSTOP"})
START_IF_OPTED_OUT = frozenset({"YES"})
HELP_WORDS = frozenset({"HELP", "INFO", "AYUDA"})
LANGUAGE_WORDS = {"ESPANOL": "es", "SPANISH": "es", "ESPAÑOL": "es", "ENGLISH": "en",
                  "INGLES": "en", "INGLÉS": "en"}
SKIP_WORDS = frozenset({"SKIP", "OMITIR", "NO SE", "NO SÉ", "DONT KNOW", "DON'T KNOW",
                        "I DONT KNOW", "I DON'T KNOW"})
MAX_SCHOOL_TRIES = 2
MAX_CATEGORY_TRIES = 2

_SPANISH_HINTS = frozenset(str.split(
    "el la los las un una que de del en y es está esta hay por para con mi mis su sus "
    "escuela pistola arma pelea amenaza mañana manana hoy alguien quiere matar suicidio "
    "golpear acoso drogas ayuda tiene va van porque pero muy estudiante estudiantes "
    "maestro maestra clase compañero compañera amigo amiga no sé se"))
_ENGLISH_HINTS = frozenset(str.split(
    "the a an is are was to of and in at on with my his her their someone school gun "
    "fight threat tomorrow today wants kill bully drugs help has have because but very "
    "student students teacher class friend i you he she they it not"))


@dataclass(frozen=True)
class InboundSms:
    message_sid: str
    from_number: str
    body: str
    media: tuple[tuple[str, str], ...] = ()  # (MediaUrl, MediaContentType)


@dataclass(frozen=True)
class SmsReply:
    text: str | None
    kind: str  # staff | stop | start | help | language | welcome | new_tip | threaded | duplicate
    tip_id: int | None = None


StaffHandler = Callable[[Session, str, str, datetime], "str | None"]


def keyword(body: str) -> str:
    """The message as a carrier keyword: upper case, no punctuation or extra spaces."""
    return " ".join(re.sub(r"[^\w' ]+", " ", body.upper()).split())


def detect_language(body: str) -> str:
    words = re.findall(r"\w+", body.casefold())
    es = sum(w in _SPANISH_HINTS for w in words) + 2 * sum(ch in "ñ¿¡" for ch in body)
    en = sum(w in _ENGLISH_HINTS for w in words)
    return "es" if es > en else "en"


def staff_handler() -> StaffHandler | None:
    """``tipline.routing.ack.handle_staff_sms`` when that module exists (delivery's part)."""
    try:
        module = importlib.import_module("tipline.routing.ack")
    except ModuleNotFoundError as exc:
        if exc.name is None or not "tipline.routing.ack".startswith(exc.name):
            raise
        return None
    handler: StaffHandler | None = getattr(module, "handle_staff_sms", None)
    return handler


def handle_inbound_sms(
    session: Session,
    vault: Vault,
    queue: JobQueue,
    sms: InboundSms,
    now: datetime,
    *,
    conversation_days: int = 30,
    staff: StaffHandler | None = None,
) -> SmsReply:
    """Take in one inbound text; return what to answer. Nothing is committed here (the session
    is rolled back and the text handled again as a reporter's if ``staff`` raises)."""
    phone_hash = vault.lookup_hash(PHONE_PURPOSE, sms.from_number)
    taken = _take_in(session, sms.message_sid, phone_hash, sms.from_number, now)
    new, opted_out = taken.new, taken.opted_out
    if not new:
        return SmsReply(None, "duplicate") if opted_out else _duplicate_reply(session, phone_hash)

    word = keyword(sms.body)
    if word in STOP_WORDS:
        return _stop(session, phone_hash, now)
    if word in START_WORDS or (opted_out and word in START_IF_OPTED_OUT):
        session.execute(delete(SmsOptOut).where(SmsOptOut.phone_hash == phone_hash))
        return SmsReply(texts.sms("started", _language_of(session, phone_hash)), "start")

    if staff is not None and taken.contact_number:
        try:
            answer = staff(session, sms.from_number, sms.body, now)
        except Exception as exc:
            # A failure in staff handling must not cost a reporter's tip: start over without
            # it (only this text's dedup row was written so far in this transaction).
            log.error("staff SMS handling failed (%s); treating the text as a tip",
                      type(exc).__name__)
            session.rollback()
            return handle_inbound_sms(session, vault, queue, sms, now,
                                      conversation_days=conversation_days, staff=None)
        if answer is not None:
            return SmsReply(answer, "staff")

    if word in HELP_WORDS:
        language = "es" if word == "AYUDA" else _language_of(session, phone_hash)
        return SmsReply(texts.sms("help", language), "help")

    conv = _lock_conversation(session, phone_hash, now)
    tip = _open_tip(session, conv, now, conversation_days)
    if tip is None and conv.step != SmsStep.NEW:
        _reset(conv)
    conv.last_inbound_at = now

    if word in LANGUAGE_WORDS:
        conv.language = LANGUAGE_WORDS[word]
        prompt = _prompt(session, conv) if tip is not None else texts.sms(
            "welcome", conv.language)
        said = f"{texts.sms('language', conv.language, crisis=False)} {prompt}"
        return SmsReply(None if opted_out else said, "language", conv.tip_id)

    if tip is None:
        reply = _open_new_tip(session, vault, queue, conv, sms, keep_number=not opted_out)
    else:
        reply = _continue(session, queue, conv, tip, sms, now)
    if opted_out:  # carriers block texts to opted-out numbers; take the tip, send nothing
        return SmsReply(None, reply.kind, reply.tip_id)
    return reply


# -- keywords ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TakenIn:
    new: bool  # the first delivery of this MessageSid (not a Twilio retry)
    opted_out: bool  # the number texted STOP
    contact_number: bool  # some directory contact has this SMS number: maybe staff


def contact_number_forms(number: str) -> tuple[str, str]:
    """The ``Contact.sms_number`` values that make ``number`` a contact's: as sent, and as
    the staff handler (``tipline.routing.ack.handle_staff_sms``) normalises it."""
    return number, normalise_number(number)


@functools.lru_cache(maxsize=2)
def _take_in_stmt() -> Any:
    """PostgreSQL: record the MessageSid, read the opt-out and whether the number is a
    contact's, in one round trip."""
    events: Table = InboundEvent.__table__  # type: ignore[assignment]
    created = bindparam("now", type_=events.c.created_at.type)
    ins = postgresql.insert(events).values(key=bindparam("key"), kind="sms", created_at=created
                                           ).on_conflict_do_nothing().returning(events.c.id
                                                                                ).cte("ins")
    opted = exists().where(SmsOptOut.phone_hash == bindparam("phone_hash"))
    contact = exists().where(Contact.sms_number.in_([bindparam("sent"), bindparam("digits")]))
    return select(select(ins.c.id).scalar_subquery(), opted, contact)


def _take_in(session: Session, message_sid: str, phone_hash: str, number: str,
             now: datetime) -> TakenIn:
    """Record this delivery and read what decides how the text is handled."""
    key = f"sms:{message_sid}"[:120]
    sent, digits = forms = contact_number_forms(number)
    if session.get_bind().dialect.name == "postgresql":
        row = session.execute(_take_in_stmt(), {"key": key, "now": now, "phone_hash": phone_hash,
                                                "sent": sent, "digits": digits}).one()
        return TakenIn(row[0] is not None, bool(row[1]), bool(row[2]))
    contact = session.execute(select(exists().where(Contact.sms_number.in_(forms)))).scalar()
    return TakenIn(first_time(session, key, "sms"), _opted_out(session, phone_hash),
                   bool(contact))


def _opted_out(session: Session, phone_hash: str) -> bool:
    return session.execute(
        select(SmsOptOut.id).where(SmsOptOut.phone_hash == phone_hash)
    ).first() is not None


def _language_of(session: Session, phone_hash: str) -> str:
    found = session.execute(
        select(SmsConversation.language).where(SmsConversation.phone_hash == phone_hash)
    ).scalar_one_or_none()
    return texts.lang(found)


def _stop(session: Session, phone_hash: str, now: datetime) -> SmsReply:
    """Opt out: remember the HMAC, end the conversation and erase the number from its tips."""
    language = _language_of(session, phone_hash)
    insert_ignore(session, SmsOptOut.__table__,  # type: ignore[arg-type]
                  {"phone_hash": phone_hash, "created_at": now})
    erase_number(session, phone_hash)
    return SmsReply(texts.sms("stopped", language), "stop")


def erase_number(session: Session, phone_hash: str) -> int:
    """Forget a reporter's number: sealed copy and HMAC on tips, and the conversation."""
    tips = session.execute(select(Tip).where(Tip.phone_hash == phone_hash)).scalars().all()
    for tip in tips:
        tip.phone_ct = None
        tip.phone_hash = None
    if tips:  # a reply still waiting to be relayed holds the number too (telephony.relay)
        session.execute(
            update(Message).where(Message.tip_id.in_([t.id for t in tips]),
                                  Message.relay_status == "pending",
                                  Message.relay_payload_ct.is_not(None))
            .values(relay_status="failed", relay_payload_ct=None)
            .execution_options(synchronize_session=False))
    session.execute(delete(SmsConversation).where(SmsConversation.phone_hash == phone_hash))
    return len(tips)


# -- conversation state ---------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _upsert_conversation(dialect: str) -> Any:
    """INSERT the conversation or, if it exists, touch it (taking its row lock); RETURNING it."""
    table: Table = SmsConversation.__table__  # type: ignore[assignment]
    module: Any = postgresql if dialect == "postgresql" else sqlite
    columns = ("phone_hash", "step", "language", "school_tries", "category_tries",
               "created_at", "last_inbound_at")
    insert = module.insert(table).values({c: bindparam(c, type_=table.c[c].type)
                                          for c in columns})
    upsert = insert.on_conflict_do_update(
        index_elements=[table.c.phone_hash], set_={"phone_hash": insert.excluded.phone_hash},
    ).returning(*table.c)
    return select(SmsConversation).from_statement(upsert)


def _lock_conversation(session: Session, phone_hash: str, now: datetime) -> SmsConversation:
    """The number's conversation row, created if needed and locked for this transaction, so
    two texts sent at once from one phone are taken in one after the other (one statement)."""
    stmt = _upsert_conversation(session.get_bind().dialect.name)
    conv: SmsConversation = session.execute(stmt, {
        "phone_hash": phone_hash, "step": SmsStep.NEW, "language": "en", "school_tries": 0,
        "category_tries": 0, "created_at": now, "last_inbound_at": now,
    }, execution_options={"populate_existing": True}).scalar_one()
    return conv


def _open_tip(session: Session, conv: SmsConversation, now: datetime,
              conversation_days: int) -> Tip | None:
    if conv.tip_id is None:
        return None
    tip = session.get(Tip, conv.tip_id)
    if tip is None or tip.status == Status.CLOSED.value or tip.data_key_id is None:
        return None
    if conv.last_inbound_at < now - timedelta(days=conversation_days):
        return None
    return tip


def _reset(conv: SmsConversation) -> None:
    conv.tip_id = None
    conv.step = SmsStep.NEW
    conv.school_tries = 0
    conv.category_tries = 0
    conv.candidates = None


def _duplicate_reply(session: Session, phone_hash: str) -> SmsReply:
    """A Twilio retry: nothing new is stored; answer with where the conversation stands."""
    conv = session.execute(
        select(SmsConversation).where(SmsConversation.phone_hash == phone_hash)
    ).scalar_one_or_none()
    if conv is None or conv.tip_id is None:  # a keyword, a staff text, or no tip: say nothing
        return SmsReply(None, "duplicate")
    return SmsReply(_prompt(session, conv), "duplicate", conv.tip_id)


def _prompt(session: Session, conv: SmsConversation) -> str:
    """The question the conversation is waiting on (with the emergency guidance)."""
    language = conv.language
    if conv.step == SmsStep.SCHOOL:
        if conv.candidates:
            return _ambiguous_text(session, conv, language)
        return texts.sms("ask_school_again" if conv.school_tries else "ask_school", language)
    if conv.step == SmsStep.CATEGORY:
        return f"{texts.sms('ask_category', language, crisis=False)}\n" \
               f"{texts.category_menu(language)}\n{texts.CRISIS[texts.lang(language)]}"
    if conv.step == SmsStep.OPEN:
        return texts.sms("thanks", language)
    return texts.sms("welcome", language)


def _ambiguous_text(session: Session, conv: SmsConversation, language: str) -> str:
    from tipline.directory.models import School

    ids = [int(x) for x in (conv.candidates or "").split(",") if x.isdigit()]
    names = dict(session.execute(select(School.id, School.name).where(School.id.in_(ids))).all())
    lines = [f"{i} {names[sid]}" for i, sid in enumerate(ids, start=1) if sid in names]
    return f"{texts.sms('ambiguous', language, crisis=False)}\n" + "\n".join(lines) + \
        f"\n{texts.CRISIS[texts.lang(language)]}"


# -- the first text ------------------------------------------------------------------------


def _open_new_tip(session: Session, vault: Vault, queue: JobQueue, conv: SmsConversation,
                  sms: InboundSms, *, keep_number: bool) -> SmsReply:
    """Open a tip from the first text. The number is kept (sealed) only to relay staff
    replies, so not for a number that texted STOP: nothing may be sent to it anyway."""
    body = sms.body.strip()
    if not body and not sms.media:
        return SmsReply(texts.sms("welcome", conv.language), "welcome")
    if body and conv.language == "en":
        conv.language = detect_language(body)
    language = conv.language
    triage = run_triage(body, language) if body else Triage()
    school = find_school_in_text(INDEX.schools(session), body) if body else None
    text = body or _media_note(len(sms.media))
    receipt = create_tip(session, vault, queue, TipSubmission(
        channel=Channel.SMS, body=text, category=triage.category or Category.OTHER,
        severity=Severity.MEDIUM, school_code=school.code if school else None,
        language=language, phone=sms.from_number if keep_number else None,
        external_id=sms.message_sid,
        receipt_kind="digits", school_ref=(school.id, school.district_id) if school else None,
    ), severity_floor=triage.severity_floor)
    _add_media_tasks(session, queue, sms, receipt.tip_id, message_id=None)
    conv.tip_id = receipt.tip_id
    conv.school_tries = conv.category_tries = 0
    conv.candidates = None
    if school is None:
        conv.step = SmsStep.SCHOOL
    elif triage.category is None:
        conv.step = SmsStep.CATEGORY
    else:
        conv.step = SmsStep.OPEN
    received = texts.sms("received", language, crisis=False)
    if school is not None:
        noted = texts.sms("school_noted", language, crisis=False).format(name=school.name)
        received = f"{received} {noted}"
    return SmsReply(f"{received} {_prompt(session, conv)}", "new_tip", receipt.tip_id)


def _media_note(count: int) -> str:
    return f"(picture sent by text, {count} file{'s' if count != 1 else ''}; no words)"


def _add_media_tasks(session: Session, queue: JobQueue, sms: InboundSms, tip_id: int,
                     message_id: int | None) -> None:
    """One fetch task per media item. (Every inbound message record, tip or not, is deleted
    at Twilio by the sweep from its ``sms:`` dedup row, after its media: see
    ``media.schedule_message_deletions``.)"""
    for url, content_type in sms.media:
        media_sid = url.rstrip("/").rsplit("/", 1)[-1] or url
        add_task(session, queue, kind=TaskKind.MEDIA, sid=media_sid, parent_sid=sms.message_sid,
                 tip_id=tip_id, message_id=message_id, url=url, content_type=content_type)


# -- later texts ---------------------------------------------------------------------------


def _continue(session: Session, queue: JobQueue, conv: SmsConversation, tip: Tip,
              sms: InboundSms, now: datetime) -> SmsReply:
    body = sms.body.strip()
    message_id: int | None = None
    if body or sms.media:
        with session.no_autoflush:
            message = Message(tip_id=tip.id, author="reporter", channel=Channel.SMS.value,
                              external_id=sms.message_sid)
            message.tip = tip
            # Its own key, sealed to the tip's audience: the tip's key is staff-only.
            give_item_key(session, crypto.current(), tip, message)
            message.body = body or _media_note(len(sms.media))
        session.add(message)
        session.flush()
        message_id = message.id
        _add_media_tasks(session, queue, sms, tip.id, message_id)
        if conv.step == SmsStep.OPEN:  # a later message, not an answer to the questions
            reporter_wrote(session, queue, tip, now)
    if not body:
        return SmsReply(_prompt(session, conv), "threaded", tip.id)

    changed = False
    if conv.step == SmsStep.SCHOOL:
        changed = _answer_school(session, conv, tip, body)
    elif conv.step == SmsStep.CATEGORY:
        changed = _answer_category(conv, tip, body)
    triage = run_triage(body, conv.language)
    if triage.severity_floor is not None and int(triage.severity_floor) > tip.severity:
        tip.severity = int(triage.severity_floor)
        changed = True
    if tip.category == Category.OTHER.value and triage.category is not None \
            and conv.step != SmsStep.CATEGORY:
        tip.category = triage.category.value
        changed = True
    if changed:
        reroute(session, queue, tip.id)
    if conv.step == SmsStep.OPEN and not changed:
        return SmsReply(texts.sms("added", conv.language), "threaded", tip.id)
    return SmsReply(_prompt(session, conv), "threaded", tip.id)


def _answer_school(session: Session, conv: SmsConversation, tip: Tip, body: str) -> bool:
    """Apply a reply to "which school?"; True when the tip's school was set."""
    schools = INDEX.schools(session)
    chosen: SchoolRef | None = None
    word = keyword(body)
    pick = typed_number(word)
    if conv.candidates and pick is not None:
        ids = [int(x) for x in conv.candidates.split(",") if x.isdigit()]
        if 1 <= pick <= len(ids):
            chosen = next((s for s in schools if s.id == ids[pick - 1]), None)
    if chosen is None and word not in SKIP_WORDS:
        match = match_school(schools, body)
        if match.school is not None:
            chosen = match.school
        elif match.ambiguous and conv.school_tries < MAX_SCHOOL_TRIES:
            conv.school_tries += 1
            conv.candidates = ",".join(str(s.id) for s in match.candidates)
            return False
    if chosen is not None:
        tip.school_id, tip.district_id = chosen.id, chosen.district_id
        conv.candidates = None
        _after_school(conv, tip)
        return True
    conv.school_tries += 1
    conv.candidates = None
    if word in SKIP_WORDS or conv.school_tries >= MAX_SCHOOL_TRIES:
        _after_school(conv, tip)
    return False


def _after_school(conv: SmsConversation, tip: Tip) -> None:
    conv.step = SmsStep.CATEGORY if tip.category == Category.OTHER.value else SmsStep.OPEN


def _answer_category(conv: SmsConversation, tip: Tip, body: str) -> bool:
    """Apply a reply to the numbered menu; True when the tip's category was set."""
    word = keyword(body)
    chosen: Category | None = None
    number = typed_number(word)
    if number is not None and 1 <= number <= len(texts.MENU):
        chosen = texts.MENU[number - 1]
    else:
        chosen = run_triage(body, conv.language).category
    if chosen is not None:
        conv.step = SmsStep.OPEN
        if chosen.value != tip.category:
            tip.category = chosen.value
            return True
        return False
    conv.category_tries += 1
    if conv.category_tries >= MAX_CATEGORY_TRIES:
        conv.step = SmsStep.OPEN
    return False


def parse_media(form: Any) -> tuple[tuple[str, str], ...]:
    """(MediaUrl{N}, MediaContentType{N}) pairs from a webhook form, in order."""
    try:
        count = int(form.get("NumMedia", "0") or 0)
    except ValueError:
        count = 0
    items: list[tuple[str, str]] = []
    for i in range(min(max(count, 0), 10)):
        url = form.get(f"MediaUrl{i}")
        if url:
            items.append((url, form.get(f"MediaContentType{i}", "") or ""))
    return tuple(items)
