"""Worker-side Twilio work: take media and recordings in, delete Twilio's copies, relay replies.

Each function takes ids, reloads and locks the row, and is safe to run twice or concurrently
(a second run finds the work done, or the row locked and skips). Content is stored and
committed before Twilio's copy is deleted, so a crash in between costs a repeated delete,
never the content. Transient Twilio failures are raised after the attempt is recorded, for
Celery to retry; the sweep re-sends whatever is still pending.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from tipline import crypto
from tipline.crypto import CryptoError, Vault
from tipline.jobs import JobQueue, after_commit
from tipline.media.images import UnsupportedMedia, sanitize_image
from tipline.routing.audience import give_item_key
from tipline.telephony import texts
from tipline.telephony.client import TwilioError, TwilioGateway, TwilioPermanentError
from tipline.telephony.models import (
    InboundEvent,
    SmsConversation,
    SmsOptOut,
    TaskKind,
    TaskStatus,
    TelephonyTask,
)
from tipline.telephony.relay import PayloadError, open_payload
from tipline.telephony.sms import erase_number
from tipline.telephony.store import TASK_NAME, add_task, first_time
from tipline.tips.models import Attachment, Message, Status, Tip

log = logging.getLogger(__name__)

RELAY_TASK = "tipline.relay_sms"
MAX_ATTEMPTS = 12
# A recording may not be downloadable the moment the <Record> action arrives: Twilio answers
# 404 for a short while. Treat that as "not yet" this many times before giving up.
NOT_READY_ATTEMPTS = 6
MAX_BACKOFF = timedelta(hours=1)
# A staff reply still not relayed this long after it was written is marked failed at its next
# failed attempt, so staff see it did not go out (Celery's retries and the sweep would
# otherwise keep it "pending" for as long as the failure lasts).
RELAY_GIVE_UP_AFTER = timedelta(hours=1)
# Whatever the cause (a worker bug, a broker down for a day), a reply not relayed after this
# long is marked failed by the sweep without another try: staff must see it did not go out.
RELAY_ABANDON_AFTER = timedelta(days=1)
# A reply whose payload only its task's key opens, still pending this long after it was
# written, lost that task (Celery's retries of it end well before): marked failed, payload gone.
RELAY_KEY_LOST_AFTER = timedelta(hours=3)
# Longest a call can last: greeting and menu, the longest recording allowed
# (``record_twiml`` caps it at an hour), the tip code. Its record is deleted after that.
CALLS_OVER_AFTER = timedelta(hours=1, minutes=30)


class RetryLater(Exception):
    """Transient failure recorded on the task; the Celery wrapper retries."""


def _lock_task(session: Session, task_id: int) -> TelephonyTask | None:
    stmt = select(TelephonyTask).where(TelephonyTask.id == task_id).with_for_update(
        skip_locked=True).execution_options(populate_existing=True)
    return session.execute(stmt).scalar_one_or_none()


def _tip(session: Session, tip_id: int | None) -> Tip | None:
    if tip_id is None:
        return None
    tip = session.get(Tip, tip_id)
    if tip is None or tip.data_key_id is None:  # gone or shredded: store nothing
        return None
    return tip


def _system_note(session: Session, tip: Tip, text: str) -> None:
    with session.no_autoflush:
        note = Message(tip_id=tip.id, author="system", channel="sms")
        note.tip = tip
        give_item_key(session, crypto.current(), tip, note)  # the tip's key is staff-only
        note.body = text
    session.add(note)


def run_task(session: Session, vault: Vault, gateway: TwilioGateway, queue: JobQueue,
             task_id: int, now: datetime) -> str:
    """Do one TelephonyTask; return its status. Commits. Raises ``RetryLater`` to retry."""
    task = _lock_task(session, task_id)
    if task is None:
        session.rollback()
        return "busy-or-missing"
    if task.status != TaskStatus.PENDING:
        session.rollback()
        return task.status
    try:
        if task.kind == TaskKind.MEDIA:
            _media(session, gateway, task)
        elif task.kind == TaskKind.MESSAGE:
            if _media_pending(session, task.sid):
                session.rollback()
                return "waiting"
            _delete_message(gateway, task.sid)
        elif task.kind == TaskKind.RECORDING:
            _recording(session, gateway, task)
        elif task.kind == TaskKind.TRANSCRIPTION:
            gateway.delete_transcription(task.sid)
        elif task.kind == TaskKind.CALL:
            # Take the recording in first: whether deleting a call also removes its
            # recordings is Twilio's business; the sweep re-sends this task later.
            if _media_pending(session, task.sid, kind=TaskKind.RECORDING):
                session.rollback()
                return "waiting"
            gateway.delete_call(task.sid)
        else:
            raise TwilioPermanentError(f"unknown task kind {task.kind!r}")
    except TwilioPermanentError as exc:
        return _failed_or_retry(session, task, now, exc)
    except TwilioError as exc:
        _attempted(session, task, now, exc)
        raise RetryLater(str(exc)) from None
    except Exception as exc:
        # A bug or an unforeseen failure (database, decoder): count it, or the sweep would
        # re-send this task forever without it ever reaching MAX_ATTEMPTS and staff.
        session.rollback()
        _count_unexpected(session, task_id, now, exc)
        raise
    task.status = TaskStatus.DONE
    task.updated_at = now
    task.last_error = None
    if task.kind == TaskKind.MEDIA and task.parent_sid:
        _release_message(session, queue, task.parent_sid, task.id)
    session.commit()
    return task.status


def _attempted(session: Session, task: TelephonyTask, now: datetime, exc: Exception) -> None:
    task.attempts += 1
    task.updated_at = now
    task.last_error = str(exc)[:200]
    log.warning("telephony task %s (%s) attempt %s failed: %s", task.id, task.kind,
                task.attempts, task.last_error)
    session.commit()


def _count_unexpected(session: Session, task_id: int, now: datetime, exc: Exception) -> None:
    """Record an attempt that failed unexpectedly (by exception type only: its message may
    quote content); if even that fails, the original error is what matters."""
    try:
        session.execute(update(TelephonyTask).where(
            TelephonyTask.id == task_id, TelephonyTask.status == TaskStatus.PENDING).values(
            attempts=TelephonyTask.attempts + 1, updated_at=now,
            last_error=f"unexpected {type(exc).__name__}"))
        session.commit()
    except SQLAlchemyError:
        session.rollback()


def _failed_or_retry(session: Session, task: TelephonyTask, now: datetime,
                     exc: TwilioPermanentError) -> str:
    not_ready = task.kind == TaskKind.RECORDING and exc.status == 404
    if not_ready and task.attempts + 1 < NOT_READY_ATTEMPTS:
        _attempted(session, task, now, exc)
        raise RetryLater("recording not ready yet")
    task.attempts += 1
    task.status = TaskStatus.FAILED
    task.updated_at = now
    task.last_error = str(exc)[:200]
    tip = _tip(session, task.tip_id)
    if tip is not None and task.kind in (TaskKind.MEDIA, TaskKind.RECORDING):
        what = "A picture or file sent by text" if task.kind == TaskKind.MEDIA \
            else "The voice recording"
        _system_note(session, tip, f"{what} could not be retrieved from Twilio "
                                   f"({task.last_error}).")
    log.error("telephony task %s (%s) failed: %s", task.id, task.kind, task.last_error)
    if task.kind == TaskKind.MEDIA and task.parent_sid:
        _release_message(session, None, task.parent_sid, task.id)
    session.commit()
    return task.status


def _media_pending(session: Session, message_sid: str, except_id: int | None = None,
                   kind: str = TaskKind.MEDIA) -> bool:
    """Whether a media item (or, for a call, a recording) of this message is still to do."""
    stmt = select(func.count(TelephonyTask.id)).where(
        TelephonyTask.kind == kind, TelephonyTask.parent_sid == message_sid,
        TelephonyTask.status == TaskStatus.PENDING)
    if except_id is not None:
        stmt = stmt.where(TelephonyTask.id != except_id)
    return bool(session.execute(stmt).scalar_one())


def _release_message(session: Session, queue: JobQueue | None, message_sid: str,
                     done_id: int) -> None:
    """When the last media item of a message is handled, its deletion may go ahead."""
    if _media_pending(session, message_sid, except_id=done_id) or queue is None:
        return
    task_id = session.execute(select(TelephonyTask.id).where(
        TelephonyTask.kind == TaskKind.MESSAGE, TelephonyTask.sid == message_sid,
        TelephonyTask.status == TaskStatus.PENDING)).scalar_one_or_none()
    if task_id is not None:
        after_commit(session, queue.send_task, TASK_NAME, task_id)


def _media(session: Session, gateway: TwilioGateway, task: TelephonyTask) -> None:
    tip = _tip(session, task.tip_id)
    stored = session.execute(
        select(Attachment.id).where(Attachment.external_id == task.sid)).first() is not None
    if tip is not None and not stored and task.url:
        try:
            data, content_type = gateway.fetch_media(task.url)
        except TwilioPermanentError as exc:
            if exc.status != 404 or task.attempts == 0:
                raise
            data, content_type = b"", ""  # fetched and deleted before a crash: nothing left
        if data:
            _store_picture(session, tip, task, data, content_type or task.content_type or "")
            session.commit()  # the content is safe before Twilio's copy goes
    if task.parent_sid:
        gateway.delete_media(task.parent_sid, task.sid)


def _store_picture(session: Session, tip: Tip, task: TelephonyTask, data: bytes,
                   content_type: str) -> None:
    try:
        clean = sanitize_image(data, content_type)
    except UnsupportedMedia:
        kind = (content_type or "unknown").split(";")[0][:60]
        _system_note(session, tip, f"A file sent by text ({kind}) was not kept: only pictures "
                                   "are stored, without their metadata.")
        return
    with session.no_autoflush:
        att = Attachment(tip_id=tip.id, message_id=task.message_id, kind="image",
                         content_type=clean.content_type, size=len(clean.data),
                         external_id=task.sid)
        att.tip = tip
        give_item_key(session, crypto.current(), tip, att)
        att.data = clean.data
    session.add(att)


def _delete_message(gateway: TwilioGateway, sid: str) -> None:
    """Delete Twilio's record of a message; if Twilio refuses, at least blank its body."""
    try:
        gateway.delete_message(sid)
    except TwilioPermanentError:
        gateway.redact_message(sid)


def _recording(session: Session, gateway: TwilioGateway, task: TelephonyTask) -> None:
    tip = _tip(session, task.tip_id)
    if tip is not None and task.url:
        att = session.execute(
            select(Attachment).where(Attachment.external_id == task.sid)).scalar_one_or_none()
        if att is None or att.size == 0:
            data, content_type = gateway.fetch_recording(task.url)
            with session.no_autoflush:
                if att is None:
                    att = Attachment(tip_id=tip.id, kind="audio", external_id=task.sid,
                                     content_type="audio/mpeg", size=0)
                    att.tip = tip
                    session.add(att)
                att.tip = tip
                att.content_type = (content_type or "audio/mpeg")[:64]
                att.size = len(data)
                # A fresh key: the empty placeholder's key (if any) was never opened here.
                give_item_key(session, crypto.current(), tip, att)
                att.data = data
            session.commit()  # stored before Twilio's copy is deleted
    gateway.delete_recording(task.sid)


# -- relaying staff replies -------------------------------------------------------------------


def relay_sms(session: Session, gateway: TwilioGateway, message_id: int, now: datetime,
              status_callback: str | None = None, job_key: str | None = None) -> str:
    """Send a staff reply to the SMS reporter once; set relay_status sent/failed. Commits.

    The number and text come from the reply's payload, opened with ``job_key`` (from the
    task's message: ``telephony.relay``); nothing of the tip is read. A message without a
    payload (written before revision 0012) falls back to the tip's sealed number, which opens
    only in legacy mode. The payload is cleared once the relay is settled.
    """
    message = session.execute(
        select(Message).where(Message.id == message_id).with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if message is None:
        session.rollback()
        return "missing"
    if message.relay_status != "pending":
        session.rollback()
        return message.relay_status
    tip = message.tip
    if tip.data_key_id is None or tip.phone_ct is None or tip.phone_hash is None:
        return _relay_failed(session, message, "the reporter's number is no longer kept")
    opted_out = session.execute(
        select(SmsOptOut.id).where(SmsOptOut.phone_hash == tip.phone_hash)).first()
    if opted_out is not None:
        return _relay_failed(session, message, "the reporter texted STOP")
    if message.relay_payload_ct is not None:
        if job_key is None:  # the sweep's re-send: only the original task holds the key
            session.rollback()
            return "waiting-for-key"
        try:
            number, reply = open_payload(message.uid, message.relay_payload_ct, job_key)
        except PayloadError:
            return _relay_failed(session, message, "the relay payload does not open")
    else:
        try:
            number, reply = tip.phone or "", message.body
        except CryptoError:
            return _relay_failed(session, message, "no relay payload, and the number is sealed")
    language = texts.lang(tip.language)
    label = "Personal de la línea de avisos" if language == "es" else "Tip line staff"
    text = f"{label}: {reply}\n{texts.CRISIS[language]}"
    try:
        sid = gateway.send_sms(number or "", text, status_callback=status_callback)
    except TwilioPermanentError as exc:
        return _relay_failed(session, message, str(exc))
    except TwilioError as exc:
        if message.created_at < now - RELAY_GIVE_UP_AFTER:
            return _relay_failed(session, message, f"gave up retrying: {exc}")
        session.rollback()
        log.warning("relay of message %s failed for now: %s", message_id, exc)
        raise RetryLater(str(exc)) from None
    message.relay_status = "sent"
    message.relay_payload_ct = None
    if message.external_id is None:
        message.external_id = sid[:64]
    session.commit()
    return "sent"


def _relay_failed(session: Session, message: Message, why: str) -> str:
    message.relay_status = "failed"
    message.relay_payload_ct = None
    log.warning("relay of message %s failed: %s", message.id, why[:200])
    session.commit()
    return "failed"


FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed", "read", "canceled"})
# Some carriers never report delivery: a message can stay "sent" for good. Its record is
# deleted this long after that status, unless a final status came first.
SENT_IS_FINAL_AFTER = timedelta(hours=6)


def take_sms_status(session: Session, queue: JobQueue, sid: str, status: str,
                    error_code: str | None) -> None:
    """An outbound message's status callback (a relayed staff reply or a TwiML reply): mark a
    relay that did not arrive failed, and have Twilio's record of the message (the reporter's
    number, our wording) deleted once its status is final. Does not commit."""
    if status == "sent":  # maybe final: ``sweep`` deletes it later if nothing final came
        first_time(session, f"sent:{sid}", "sent")
        return
    if status not in FINAL_STATUSES or not first_time(session, f"smsst:{sid}:{status}",
                                                       "sms_status"):
        return
    message = session.execute(
        select(Message).where(Message.external_id == sid)).scalar_one_or_none()
    if message is not None and status in ("undelivered", "failed"):
        message.relay_status = "failed"
        log.warning("relayed reply %s was %s (Twilio error %s)", message.id, status,
                    error_code or "-")
    add_task(session, queue, kind=TaskKind.MESSAGE, sid=sid,
             tip_id=message.tip_id if message else None)


# -- the sweep ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    tasks: int
    relays: int
    numbers_erased: int
    events_pruned: int


def _backoff(attempts: int, grace: timedelta) -> timedelta:
    return min(grace * (2 ** min(attempts, 12)), MAX_BACKOFF)


def sweep(session: Session, queue: JobQueue, now: datetime, grace: timedelta, *,
          conversation_days: int = 30, keep_events: timedelta = timedelta(days=7),
          calls_over_after: timedelta = CALLS_OVER_AFTER) -> SweepResult:
    """Re-send pending Twilio work and relays; schedule deletion of Twilio's records of texts
    and of calls that must be over by now; erase numbers of closed or idle conversations;
    give up on tasks that failed too often. Commits."""
    pending = session.execute(
        select(TelephonyTask).where(TelephonyTask.status == TaskStatus.PENDING,
                                    TelephonyTask.updated_at < now - grace)
        .order_by(TelephonyTask.id).limit(500)
    ).scalars().all()
    sent_tasks = 0
    for task in pending:
        if task.attempts >= MAX_ATTEMPTS:
            task.status = TaskStatus.FAILED
            log.error("telephony task %s (%s) given up after %s attempts", task.id, task.kind,
                      task.attempts)
            tip = _tip(session, task.tip_id)
            if tip is not None and task.kind in (TaskKind.MEDIA, TaskKind.RECORDING):
                _system_note(session, tip, "A picture or recording could not be retrieved "
                                           f"from Twilio after {task.attempts} attempts.")
            continue
        if task.updated_at > now - _backoff(task.attempts, grace):
            continue
        task.updated_at = now
        after_commit(session, queue.send_task, TASK_NAME, task.id)
        sent_tasks += 1
    scheduled = schedule_message_deletions(session, queue, now - grace)
    scheduled += schedule_call_deletions(session, queue, now - calls_over_after)
    scheduled += _schedule_deletions(session, queue, "sent", TaskKind.MESSAGE,
                                     now - SENT_IS_FINAL_AFTER, 500)
    pending_relay = (Message.author == "staff") & (Message.channel == "sms") & (
        Message.relay_status == "pending")
    abandoned = session.execute(
        update(Message).where(pending_relay, Message.created_at < now - RELAY_ABANDON_AFTER)
        .values(relay_status="failed", relay_payload_ct=None).returning(Message.id)
    ).scalars().all()
    key_lost = session.execute(
        update(Message).where(pending_relay, Message.relay_payload_ct.is_not(None),
                              Message.created_at < now - RELAY_KEY_LOST_AFTER)
        .values(relay_status="failed", relay_payload_ct=None).returning(Message.id)
    ).scalars().all()
    abandoned = [*abandoned, *key_lost]
    for message_id in abandoned:
        log.error("relay of message %s abandoned: still not sent after %s", message_id,
                  RELAY_ABANDON_AFTER)
    relay_ids = session.execute(  # with a payload, only the original task has the key
        select(Message.id).where(pending_relay, Message.created_at < now - grace,
                                 Message.relay_payload_ct.is_(None))
        .order_by(Message.id).limit(500)
    ).scalars().all()
    for message_id in relay_ids:
        after_commit(session, queue.send_task, RELAY_TASK, message_id)
    erased = erase_finished_numbers(session, now, conversation_days)
    pruned = session.execute(
        delete(InboundEvent).where(InboundEvent.created_at < now - keep_events))
    session.commit()
    return SweepResult(sent_tasks + scheduled, len(relay_ids), erased,
                       int(getattr(pruned, "rowcount", 0)))


def schedule_message_deletions(session: Session, queue: JobQueue, before: datetime,
                               limit: int = 500) -> int:
    """A deletion task for every inbound text taken in before ``before`` that has none yet.

    Driven by the webhook's ``sms:<MessageSid>`` dedup rows, so it covers every inbound text
    (tips, keywords, staff acknowledgements) and costs the webhook nothing. The task waits
    for the message's media, if any, to be taken in first.
    """
    return _schedule_deletions(session, queue, "sms", TaskKind.MESSAGE, before, limit)


def schedule_call_deletions(session: Session, queue: JobQueue, before: datetime,
                            limit: int = 500) -> int:
    """A deletion task for every inbound call answered before ``before`` that has none yet.

    Driven by the ``call:<CallSid>`` rows the voice webhook writes when it answers: Twilio's
    call record holds the caller's number, and our tip holds the CallSid. ``before`` must be
    late enough for the call to be over (Twilio refuses to delete a call in progress).
    """
    return _schedule_deletions(session, queue, "call", TaskKind.CALL, before, limit)


def _schedule_deletions(session: Session, queue: JobQueue, event_kind: str, task_kind: str,
                        before: datetime, limit: int) -> int:
    prefix = f"{event_kind}:"
    sid_of_event = func.substr(InboundEvent.key, len(prefix) + 1)
    missing = ~exists().where(TelephonyTask.kind == task_kind,
                              TelephonyTask.sid == sid_of_event)
    keys = session.execute(
        select(InboundEvent.key).where(InboundEvent.kind == event_kind,
                                       InboundEvent.created_at < before, missing)
        .order_by(InboundEvent.id).limit(limit)
    ).scalars().all()
    for key in keys:
        add_task(session, queue, kind=task_kind, sid=key[len(prefix):])
    return len(keys)


def erase_finished_numbers(session: Session, now: datetime, conversation_days: int) -> int:
    """Erase reporters' numbers when their tip is closed or the conversation idled out."""
    closed = session.execute(
        select(Tip.id).where(Tip.status == Status.CLOSED.value,
                             (Tip.phone_ct.is_not(None)) | (Tip.phone_hash.is_not(None)))
    ).scalars().all()
    if closed:
        session.execute(update(Tip).where(Tip.id.in_(closed))
                        .values(phone_ct=None, phone_hash=None))
        session.execute(delete(SmsConversation).where(SmsConversation.tip_id.in_(closed)))
    erased = len(closed)
    idle = session.execute(
        select(SmsConversation.phone_hash).where(
            SmsConversation.last_inbound_at < now - timedelta(days=conversation_days))
    ).scalars().all()
    for phone_hash in idle:
        erased += erase_number(session, phone_hash)
    return erased
