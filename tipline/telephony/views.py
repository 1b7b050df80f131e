"""Twilio webhooks: SMS in, the voice IVR and its callbacks, outbound message status.

Every route is signature-checked (``twilio_signed``: 403 and nothing stored when the
signature is missing or wrong). Views parse the form, call a service, commit, and only then
answer with TwiML built by the SDK. When the database is unavailable the reporter is told so,
with 911/988, instead of a silent error. Nothing from the request (number, text) is logged.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from flask import Blueprint, Flask, Response, request
from sqlalchemy.exc import SQLAlchemyError
from twilio.twiml.messaging_response import MessagingResponse
from werkzeug.exceptions import HTTPException

from tipline.db import utcnow
from tipline.intake.directory_view import last_known_hotlines
from tipline.intake.services import IntakeError
from tipline.telephony import texts, voice
from tipline.telephony.media import take_sms_status
from tipline.telephony.signature import twilio_signed
from tipline.telephony.sms import (
    InboundSms,
    detect_language,
    handle_inbound_sms,
    parse_media,
    staff_handler,
)
from tipline.telephony.spool import SPOOL_TASK, seal_inbound
from tipline.telephony.tasks import status_callback_url
from tipline.web import db_session, services

log = logging.getLogger(__name__)

bp = Blueprint("telephony", __name__, url_prefix="/twilio")

XML = "text/xml; charset=utf-8"


def register(app: Flask) -> None:
    """Register the webhooks without CSRF: Twilio cannot send a token; signatures stand in."""
    from tipline.app import csrf

    csrf.exempt(bp)
    app.register_blueprint(bp)


# Twilio's webhook bodies are a few KB (a text is at most 1600 characters; Add-on results
# add some). The app-wide limit is sized for web uploads; a forged request must not make the
# server parse megabytes before its signature is checked.
MAX_WEBHOOK_BYTES = 256 * 1024


@bp.before_request
def limit_webhook_size() -> None:
    """Every webhook blueprint's (``/twilio`` and ``/twilio/alerts``)."""
    request.max_content_length = MAX_WEBHOOK_BYTES


# Views whose answer is what the reporter reads or hears (the rest are Twilio's callbacks).
REPORTER_FACING = frozenset({"telephony.sms", "telephony.voice_call", "telephony.voice_language",
                             "telephony.voice_recorded"})


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Any:
    """Last resort for a bug or an unforeseen failure: the texter or caller still gets the
    911/988 guidance instead of Twilio's generic "application error". Logged by type and
    code location only: an exception's message may quote the request (a number, a tip)."""
    if isinstance(exc, HTTPException):  # 403 from the signature check, 413, ...
        return exc
    where = " < ".join(f"{frame.filename}:{frame.lineno} {frame.name}"
                       for frame in reversed(traceback.extract_tb(exc.__traceback__)[-4:]))
    log.error("unexpected %s in %s at %s", type(exc).__name__, request.endpoint, where)
    if request.endpoint == "telephony.sms":
        return _sms_unavailable(detect_language(request.form.get("Body") or ""))
    if request.endpoint in REPORTER_FACING:
        return _xml(voice.unavailable_twiml(texts.lang(request.args.get("lang"))))
    return Response(status=500)


def _sms_unavailable(language: str) -> Response:
    """Nothing could be stored: say so, with 911/988 and the other hotlines."""
    hotlines = "; ".join(f"{name}: {line}" for name, line in last_known_hotlines())
    sorry = texts.sms("unavailable", language)
    return _sms_twiml(f"{sorry} {hotlines}" if hotlines else sorry)


def _xml(body: str, status: int = 200) -> Response:
    return Response(body, status=status, content_type=XML)


def _sms_twiml(text: str | None) -> Response:
    """The reply as TwiML. ``action`` asks Twilio for the reply's status callback: Twilio's
    record of it holds the texter's number (and e.g. the school named), and ``sms_status``
    deletes it once final, as for relayed staff replies."""
    resp = MessagingResponse()
    if text:
        resp.message(text, action=status_callback_url(services()), method="POST")
    return _xml(str(resp))


def _empty() -> Response:
    return Response(status=204)


def voice_paths() -> voice.Paths:
    base = services().settings.public_url.rstrip("/") + bp.url_prefix  # type: ignore[operator]
    return voice.Paths(language=f"{base}/voice/language", recorded=f"{base}/voice/recorded",
                       recording_status=f"{base}/voice/recording-status",
                       transcription=f"{base}/voice/transcription")


def _form(name: str) -> str:
    return (request.form.get(name) or "").strip()


# -- SMS ---------------------------------------------------------------------------------------


@bp.post("/sms")
@twilio_signed
def sms() -> Any:
    sid = _form("MessageSid") or _form("SmsMessageSid") or _form("SmsSid")
    number = _form("From")
    if not sid or not number:
        return _xml(str(MessagingResponse()), 400)
    inbound = InboundSms(sid, number, request.form.get("Body") or "", parse_media(request.form))
    svc = services()
    session = db_session()
    try:
        reply = handle_inbound_sms(session, svc.vault, svc.queue, inbound, utcnow(),
                                   conversation_days=svc.settings.sms_conversation_days,
                                   staff=staff_handler())
        session.commit()
    except IntakeError:
        session.rollback()
        return _sms_twiml(texts.sms("welcome", "en"))
    except SQLAlchemyError as exc:
        session.rollback()
        language = detect_language(inbound.body)
        # Held in the broker until the database is back (tipline.telephony.spool); the
        # reporter is told it is received only once it is committed.
        if svc.queue.send_task(SPOOL_TASK, *seal_inbound(svc.vault, inbound), force=True):
            log.warning("SMS webhook could not store a message (%s); held for the database",
                        type(exc).__name__)
            return _sms_twiml(texts.sms("held", language))
        log.error("SMS webhook could not store a message (%s)", type(exc).__name__)
        return _sms_unavailable(language)
    return _sms_twiml(reply.text)


@bp.post("/sms/status")
@twilio_signed
def sms_status() -> Any:
    """Status of a relayed staff reply or a TwiML reply (see ``media.take_sms_status``)."""
    sid, status = _form("MessageSid"), _form("MessageStatus").lower()
    if not sid or not status:
        return _empty()
    session = db_session()
    try:
        take_sms_status(session, services().queue, sid, status, _form("ErrorCode") or None)
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        log.error("SMS status callback not stored (%s)", type(exc).__name__)
        return Response(status=500)
    return _empty()


# -- voice -------------------------------------------------------------------------------------


@bp.post("/voice")
@twilio_signed
def voice_call() -> Any:
    """Greet the caller, 911/988 first. No database work here, so an overloaded or unreachable
    database can never keep a caller from hearing that."""
    return _xml(voice.greeting_twiml(voice_paths()))


@bp.post("/voice/language")
@twilio_signed
def voice_language() -> Any:
    language = voice.choose_language(request.form.get("Digits"))
    return _xml(voice.record_twiml(voice_paths(), language,
                                   services().settings.voice_max_record_seconds))


@bp.post("/voice/recorded")
@twilio_signed
def voice_recorded() -> Any:
    """The ``<Record>`` action: store the tip, then tell the caller their tip code."""
    language = texts.lang(request.args.get("lang"))
    call_sid, recording_sid = _form("CallSid"), _form("RecordingSid")
    if not call_sid or not recording_sid:
        return _xml(voice.nothing_twiml(language))
    svc = services()
    session = db_session()
    try:
        result = voice.ensure_voice_tip(session, svc.vault, svc.queue, call_sid=call_sid,
                                        recording_sid=recording_sid,
                                        recording_url=_form("RecordingUrl") or None,
                                        language=language)
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        log.error("voice recording could not be stored (%s)", type(exc).__name__)
        return _xml(voice.unavailable_twiml(language))
    return _xml(voice.code_twiml(result.code, language))


@bp.post("/voice/recording-status")
@twilio_signed
def voice_recording_status() -> Any:
    call_sid, recording_sid = _form("CallSid"), _form("RecordingSid")
    status = _form("RecordingStatus").lower()
    if not call_sid or not recording_sid or status != "completed":
        return _empty()  # in-progress, or absent/failed: nothing was recorded to take in
    svc = services()
    session = db_session()
    try:
        voice.ensure_voice_tip(session, svc.vault, svc.queue, call_sid=call_sid,
                               recording_sid=recording_sid,
                               recording_url=_form("RecordingUrl") or None)
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        log.error("recording status not stored (%s)", type(exc).__name__)
        return Response(status=500)
    return _empty()


@bp.post("/voice/transcription")
@twilio_signed
def voice_transcription() -> Any:
    call_sid, transcription_sid = _form("CallSid"), _form("TranscriptionSid")
    if not call_sid or not transcription_sid:
        return _empty()
    svc = services()
    session = db_session()
    try:
        voice.take_transcription(
            session, svc.vault, svc.queue, call_sid=call_sid,
            transcription_sid=transcription_sid, recording_sid=_form("RecordingSid") or None,
            recording_url=_form("RecordingUrl") or None,
            status=_form("TranscriptionStatus").lower(),
            text=request.form.get("TranscriptionText") or "")
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        log.error("transcription not stored (%s)", type(exc).__name__)
        return Response(status=500)
    return _empty()
