"""Voice tips: the IVR's TwiML, and taking in a recording whichever callback brings it first.

A call becomes a tip when a recording exists. Twilio reports that three ways (the ``<Record>``
action, the recording-status callback, the transcription callback) in no fixed order, each
possibly more than once, so each handler calls ``ensure_voice_tip``, which finds or creates
the one tip for the CallSid (``Tip.external_id``), its audio attachment and the fetch task.

The caller's tip code is derived from the CallSid with a server secret, so any of those
requests can speak it without the code ever being stored (only its keyed hash is, as for web
receipts). The caller's number is not stored at all: nobody can text a caller back.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from hashlib import sha256

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from twilio.twiml.voice_response import Gather, VoiceResponse

from tipline import crypto
from tipline.crypto import Vault
from tipline.db import utcnow
from tipline.intake.services import TipSubmission, create_tip
from tipline.intake.triage import run_triage
from tipline.jobs import JobQueue
from tipline.routing.audience import give_item_key, intake_plan, tip_audience
from tipline.surge import services as surge
from tipline.telephony import texts
from tipline.telephony.models import TaskKind
from tipline.telephony.schools import INDEX, find_school_in_text
from tipline.telephony.store import add_task, first_time, reroute
from tipline.tips.models import Attachment, Category, Channel, Message, Severity, Tip

log = logging.getLogger(__name__)

VOICE_CODE_PURPOSE = "voice-receipt"
AFTER_COMMIT_KEY = "tipline_after_commit"  # tipline.jobs keeps after-commit sends here
PENDING_BODY = "Voice message: recording attached; transcript pending."
# Twilio transcribes a <Record> in English only (docs/twilio.md): any other language is asked
# for no transcript, and the tip says so instead of promising one.
TRANSCRIBED = frozenset({"en"})
NO_TRANSCRIPT_BODY = {
    "es": "Spanish voicemail: listen to the recording (no transcript: automatic transcription "
          "is English only).",
    "bs": "Bosnian voicemail: listen to the recording (no transcript: automatic transcription "
          "is English only).",
}
FAILED_BODY = "Voice message: listen to the recording (the automatic transcript failed)."


def pending_body(language: str) -> str:
    """The tip's first words until (or instead of) a transcript."""
    lang = texts.lang(language)
    return PENDING_BODY if lang in TRANSCRIBED else NO_TRANSCRIPT_BODY.get(
        lang, "Voicemail: listen to the recording (no transcript in this language).")


@dataclass(frozen=True)
class Paths:
    """Callback URLs (absolute, under TIPLINE_PUBLIC_URL) the TwiML points Twilio at."""

    language: str
    recorded: str
    recording_status: str
    transcription: str


def voice_code(vault: Vault, call_sid: str) -> str:
    """The caller's 20-digit tip code, the same every time for this call, never stored."""
    digest = hmac.new(vault.derive_secret(VOICE_CODE_PURPOSE), call_sid.encode(),
                      sha256).digest()
    number = int.from_bytes(digest[:16], "big") % (10 ** 20)
    raw = f"{number:020d}"
    return "-".join(raw[i : i + 4] for i in range(0, 20, 4))


# -- TwiML -----------------------------------------------------------------------------------


def _say(resp: VoiceResponse | Gather, key: str, language: str) -> None:
    resp.say(texts.voice(key, language), language=texts.VOICE_LANG[texts.lang(language)])


def greeting_twiml(paths: Paths) -> str:
    """Emergency and crisis notice in both languages, then the language choice."""
    resp = VoiceResponse()
    _say(resp, "greeting", "en")
    gather = Gather(num_digits=1, action=paths.language, method="POST", timeout=6)
    _say(gather, "choose", "en")
    _say(gather, "greeting", "es")
    _say(gather, "choose", "es")
    resp.append(gather)
    resp.redirect(paths.language, method="POST")  # no key pressed: English
    return str(resp)


def choose_language(digits: str | None) -> str:
    return "es" if (digits or "").strip() == "2" else "en"


def record_twiml(paths: Paths, language: str, max_seconds: int) -> str:
    """The recording notice, then ``<Record>`` with a maximum length, and transcription for an
    English message (the only language Twilio transcribes)."""
    resp = VoiceResponse()
    _say(resp, "notice", language)
    english = texts.lang(language) in TRANSCRIBED
    resp.record(
        action=f"{paths.recorded}?lang={texts.lang(language)}",
        method="POST",
        max_length=max(5, min(max_seconds, 3600)),
        finish_on_key="#",
        play_beep=True,
        timeout=10,
        transcribe=english,
        transcribe_callback=paths.transcription if english else None,
        recording_status_callback=paths.recording_status,
        recording_status_callback_method="POST",
        recording_status_callback_event="completed absent",
    )
    _say(resp, "nothing", language)  # reached only when nothing was recorded
    resp.hangup()
    return str(resp)


def code_twiml(code: str, language: str) -> str:
    """Thanks, the tip code twice, how to use it, and the emergency guidance again."""
    resp = VoiceResponse()
    lang_tag = texts.VOICE_LANG[texts.lang(language)]
    _say(resp, "received", language)
    resp.say(f"{texts.voice('code', language)}: {texts.spoken_digits(code)}.", language=lang_tag)
    resp.pause(length=1)
    resp.say(f"{texts.voice('repeat', language)}: {texts.spoken_digits(code)}.",
             language=lang_tag)
    _say(resp, "code_use", language)
    _say(resp, "bye", language)
    resp.hangup()
    return str(resp)


def nothing_twiml(language: str) -> str:
    resp = VoiceResponse()
    _say(resp, "nothing", language)
    resp.hangup()
    return str(resp)


def unavailable_twiml(language: str = "en") -> str:
    resp = VoiceResponse()
    _say(resp, "unavailable", language)
    if texts.lang(language) == "en":
        _say(resp, "unavailable", "es")
    resp.hangup()
    return str(resp)


# -- taking the recording in -----------------------------------------------------------------


@dataclass(frozen=True)
class VoiceTip:
    tip_id: int
    code: str
    created: bool


def ensure_voice_tip(session: Session, vault: Vault, queue: JobQueue, *, call_sid: str,
                     recording_sid: str | None, recording_url: str | None,
                     language: str = "en") -> VoiceTip:
    """Find or create the call's tip, its audio attachment and the recording fetch task."""
    code = voice_code(vault, call_sid)
    created = False
    tip = _tip_for_call(session, call_sid)
    if tip is None:
        callbacks = session.info.setdefault(AFTER_COMMIT_KEY, [])
        kept = len(callbacks)
        try:
            with session.begin_nested():
                create_tip(session, vault, queue, TipSubmission(
                    channel=Channel.VOICE, body=pending_body(language),
                    category=Category.OTHER,
                    severity=Severity.MEDIUM, language=texts.lang(language),
                    external_id=call_sid, receipt_kind="digits",
                    placeholder=pending_body(language) == PENDING_BODY),
                    receipt_code=code)
            created = True
            # Twilio's record of the call holds the caller's number and our tip its CallSid:
            # the sweep deletes that record once the call must be over (``call:`` rows).
            first_time(session, f"call:{call_sid}", "call")
        except IntegrityError:  # the same call's other callback created it just now
            del session.info.setdefault(AFTER_COMMIT_KEY, [])[kept:]  # no routing of a ghost
        tip = _tip_for_call(session, call_sid)
        if tip is None:
            raise RuntimeError("voice tip neither created nor found")
    if recording_sid:
        _ensure_audio(session, tip, recording_sid)
        if recording_url:
            add_task(session, queue, kind=TaskKind.RECORDING, sid=recording_sid,
                     parent_sid=call_sid, tip_id=tip.id, url=recording_url)
    return VoiceTip(tip.id, code, created)


def _tip_for_call(session: Session, call_sid: str) -> Tip | None:
    return session.execute(select(Tip).where(Tip.external_id == call_sid)).scalar_one_or_none()


def _audio_for(session: Session, recording_sid: str) -> Attachment | None:
    return session.execute(
        select(Attachment).where(Attachment.external_id == recording_sid)
    ).scalar_one_or_none()


def _ensure_audio(session: Session, tip: Tip, recording_sid: str) -> Attachment:
    """The recording's attachment row; empty until the worker has fetched the audio."""
    found = _audio_for(session, recording_sid)
    if found is not None:
        return found
    try:
        with session.begin_nested(), session.no_autoflush:
            att = Attachment(tip_id=tip.id, kind="audio", content_type="audio/mpeg", size=0,
                             external_id=recording_sid)
            att.tip = tip
            give_item_key(session, crypto.current(), tip, att)  # the tip's key is staff-only
            att.data = b""
            session.add(att)
    except IntegrityError:
        pass
    found = _audio_for(session, recording_sid)
    if found is None:
        raise RuntimeError("audio attachment neither created nor found")
    return found


def take_transcription(session: Session, vault: Vault, queue: JobQueue, *, call_sid: str,
                       transcription_sid: str, recording_sid: str | None,
                       recording_url: str | None, status: str, text: str) -> int | None:
    """Seal a transcript onto the recording (creating the tip if it is the first callback),
    triage it, and schedule the transcription's deletion at Twilio. Returns the tip id."""
    if not first_time(session, f"tr:{transcription_sid}", "transcription"):
        return None
    voice_tip = ensure_voice_tip(session, vault, queue, call_sid=call_sid,
                                 recording_sid=recording_sid, recording_url=recording_url)
    tip = session.get(Tip, voice_tip.tip_id)
    if tip is None:
        raise RuntimeError("voice tip vanished")
    words = text.strip()
    if status == "completed" and words:
        _triage(session, queue, tip, words)
        # Surge grouping's signature from the transcript in memory (grouped when rerouted).
        surge.record_signature(session, vault, tip.id, words, tip.language, utcnow(),
                               school_id=tip.school_id, replace=True)
        _seal_transcript(session, vault, tip, recording_sid, words)
    else:  # failed or empty: say so rather than "transcript pending" for ever
        first = _first_message(session, tip)
        if first is not None and first.placeholder:
            give_item_key(session, vault, tip, first)
            first.body = FAILED_BODY
            first.placeholder = False
    add_task(session, queue, kind=TaskKind.TRANSCRIPTION, sid=transcription_sid,
             parent_sid=recording_sid, tip_id=tip.id)
    return tip.id


def _first_message(session: Session, tip: Tip) -> Message | None:
    return session.execute(
        select(Message).where(Message.tip_id == tip.id, Message.author == "reporter")
        .order_by(Message.id).limit(1)
    ).scalar_one_or_none()


def _seal_transcript(session: Session, vault: Vault, tip: Tip, recording_sid: str | None,
                     words: str) -> None:
    """Seal the transcript onto the recording and as the tip's first message, each under a
    fresh key sealed to the audience of the tip as just triaged (police when the policy now
    routes it to them): this webhook cannot open the tip's own key."""
    plan = intake_plan(session, school_id=tip.school_id, district_id=tip.district_id,
                       category=tip.category, severity=int(tip.severity), now=utcnow(),
                       sealed=True, fresh=True)
    audience = tip_audience(session, tip, plan.agency_ids)
    if recording_sid:
        att = _ensure_audio(session, tip, recording_sid)
        give_item_key(session, vault, tip, att, "transcript_key_uid", audience)
        att.transcript = words
    first = _first_message(session, tip)
    if first is not None:
        give_item_key(session, vault, tip, first, recipients=audience)
        first.body = f"Voice message (automatic transcript): {words}"
        first.placeholder = False


def _triage(session: Session, queue: JobQueue, tip: Tip, words: str) -> None:
    triage = run_triage(words, tip.language)
    changed = False
    if triage.severity_floor is not None and int(triage.severity_floor) > tip.severity:
        tip.severity = int(triage.severity_floor)
        changed = True
    if triage.category is not None and tip.category == Category.OTHER.value:
        tip.category = triage.category.value
        changed = True
    if tip.school_id is None:  # callers usually say the school; take it when it is clear
        school = find_school_in_text(INDEX.schools(session), words)
        if school is not None:
            tip.school_id, tip.district_id = school.id, school.district_id
            changed = True
    if changed:
        reroute(session, queue, tip.id)
