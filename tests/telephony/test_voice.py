"""The voice IVR and its callbacks: notices, language, recording, the spoken tip code, and
callbacks that come late, twice or out of order."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.telephony.helpers import (
    CALLER,
    count,
    counts,
    new_sid,
    said,
    twiml,
    voice_params,
)
from tests.twilio_support import signed_post, webhook_example
from tipline.intake.followup import find_tip_by_code
from tipline.telephony import voice
from tipline.telephony.models import TaskKind, TelephonyTask
from tipline.tips.models import Attachment, Channel, Message, Tip
from tipline.tips.receipts import normalize_code


def record_action(client, call_sid: str, recording_sid: str, lang: str = "en"):
    params = voice_params("voice_record_action", call_sid, RecordingSid=recording_sid,
                          RecordingUrl=f"https://api.twilio.com/2010-04-01/Accounts/AC"
                                       f"{'0' * 32}/Recordings/{recording_sid}")
    return signed_post(client, f"/twilio/voice/recorded?lang={lang}", params)


def recording_status(client, call_sid: str, recording_sid: str, status: str = "completed"):
    params = webhook_example("voice_recording_status_callback", CallSid=call_sid,
                             RecordingSid=recording_sid, RecordingStatus=status,
                             RecordingUrl=f"https://api.twilio.com/2010-04-01/Accounts/AC"
                                          f"{'0' * 32}/Recordings/{recording_sid}")
    return signed_post(client, "/twilio/voice/recording-status", params)


def transcription(client, call_sid: str, recording_sid: str, text: str,
                  transcription_sid: str | None = None, status: str = "completed"):
    params = voice_params("voice_transcription_callback", call_sid, RecordingSid=recording_sid,
                          TranscriptionSid=transcription_sid or new_sid("TR"),
                          TranscriptionText=text, TranscriptionStatus=status)
    return signed_post(client, "/twilio/voice/transcription", params)


def spoken_code(root) -> str:
    found = re.search(r"tip code is: ([\d ,]+)\.", said(root)) or re.search(
        r"código de aviso es: ([\d ,]+)\.", said(root))
    assert found, said(root)
    return "".join(ch for ch in found.group(1) if ch.isdigit())


def test_call_starts_with_emergency_notice_and_language_choice(tw_client) -> None:
    root = twiml(signed_post(tw_client, "/twilio/voice",
                             voice_params("voice_inbound", new_sid("CA"))))
    first = root.find("Say")
    assert first is not None and "9 1 1" in first.text and "9 8 8" in first.text
    gather = root.find("Gather")
    assert gather is not None
    assert gather.get("action") == "https://tips.example.org/twilio/voice/language"
    assert gather.get("numDigits") == "1"
    langs = {s.get("language") for s in gather.iter("Say")}
    assert langs == {"en-US", "es-MX"}
    assert root.find("Redirect").text == "https://tips.example.org/twilio/voice/language"


def test_language_choice_gives_recording_notice_and_record_verb(tw_client) -> None:
    params = voice_params("voice_gather_action", new_sid("CA"), Digits="2")
    root = twiml(signed_post(tw_client, "/twilio/voice/language", params))
    notice = root.find("Say")
    assert notice.get("language") == "es-MX" and "grabado" in notice.text
    # A Spanish caller who pressed 2 during the English greeting still hears 911/988 in
    # Spanish before the beep.
    assert "9 1 1" in notice.text and "9 8 8" in notice.text
    record = root.find("Record")
    assert record is not None
    assert record.get("action") == "https://tips.example.org/twilio/voice/recorded?lang=es"
    assert record.get("maxLength") == "120"
    # Twilio transcribes English only: a Spanish message is not sent for transcription.
    assert record.get("transcribe") == "false"
    assert record.get("transcribeCallback") is None
    assert record.get("recordingStatusCallback") == \
        "https://tips.example.org/twilio/voice/recording-status"
    # Nothing pressed (the Redirect): English.
    params = voice_params("voice_gather_action", new_sid("CA"))
    params.pop("Digits")
    root = twiml(signed_post(tw_client, "/twilio/voice/language", params))
    assert root.find("Say").get("language") == "en-US"
    assert "9 1 1" in root.find("Say").text and "9 8 8" in root.find("Say").text
    assert root.find("Record").get("transcribe") == "true"
    assert root.find("Record").get("transcribeCallback") == \
        "https://tips.example.org/twilio/voice/transcription"


def test_recording_becomes_a_tip_and_the_caller_hears_a_digit_code(
        tw_client, db_session, vault, queue) -> None:
    call, rec = new_sid("CA"), new_sid("RE")
    root = twiml(record_action(tw_client, call, rec))
    code = spoken_code(root)
    assert len(code) == 20
    text = said(root)
    assert "9 1 1" in text and "9 8 8" in text and "Again, your tip code" in text
    assert root.find("Hangup") is not None
    tip = db_session.execute(select(Tip).where(Tip.external_id == call)).scalar_one()
    assert tip.channel == Channel.VOICE.value
    assert tip.phone_ct is None and tip.phone_hash is None
    # The code works on the web follow-up page.
    assert normalize_code(code) == code
    found = find_tip_by_code(db_session, vault, "-".join(code[i:i + 4] for i in range(0, 20, 4)))
    assert found is not None and found.id == tip.id
    task = db_session.execute(select(TelephonyTask).where(
        TelephonyTask.kind == TaskKind.RECORDING)).scalar_one()
    assert task.sid == rec and task.tip_id == tip.id
    assert ("tipline.telephony_task", (task.id,)) in queue.sent


def test_spanish_caller_hears_the_code_in_spanish(tw_client, db_session) -> None:
    root = twiml(record_action(tw_client, new_sid("CA"), new_sid("RE"), lang="es"))
    assert len(spoken_code(root)) == 20
    assert "Otra vez" in said(root)


def test_record_action_retry_gives_the_same_code_and_one_tip(tw_client, db_session) -> None:
    call, rec = new_sid("CA"), new_sid("RE")
    code1 = spoken_code(twiml(record_action(tw_client, call, rec)))
    before = counts(db_session)
    code2 = spoken_code(twiml(record_action(tw_client, call, rec)))
    assert code1 == code2
    assert counts(db_session) == before


def test_transcription_before_recording_is_kept_and_joined(tw_client, db_session) -> None:
    call, rec, tr = new_sid("CA"), new_sid("RE"), new_sid("TR")
    resp = transcription(tw_client, call, rec, "there is going to be a fight behind the gym",
                         transcription_sid=tr)
    assert resp.status_code == 204
    tip = db_session.execute(select(Tip).where(Tip.external_id == call)).scalar_one()
    att = db_session.execute(select(Attachment).where(Attachment.external_id == rec)
                             ).scalar_one()
    assert att.transcript == "there is going to be a fight behind the gym"
    # Then the recording status and the record action arrive: the same tip, same audio row.
    assert recording_status(tw_client, call, rec).status_code == 204
    code = spoken_code(twiml(record_action(tw_client, call, rec)))
    assert count(db_session, Tip) == 1
    assert count(db_session, Attachment) == 1
    first = db_session.execute(select(Message).where(Message.tip_id == tip.id)).scalar_one()
    assert "fight behind the gym" in first.body
    assert len(code) == 20
    kinds = sorted(t.kind for t in db_session.execute(select(TelephonyTask)).scalars())
    assert kinds == [TaskKind.RECORDING, TaskKind.TRANSCRIPTION]


def test_callbacks_twice_are_taken_once(tw_client, db_session) -> None:
    call, rec, tr = new_sid("CA"), new_sid("RE"), new_sid("TR")
    record_action(tw_client, call, rec)
    recording_status(tw_client, call, rec)
    transcription(tw_client, call, rec, "a knife in locker 12", transcription_sid=tr)
    before = counts(db_session)
    recording_status(tw_client, call, rec)
    transcription(tw_client, call, rec, "a knife in locker 12", transcription_sid=tr)
    assert counts(db_session) == before


def test_late_transcription_after_everything_else(tw_client, db_session) -> None:
    call, rec = new_sid("CA"), new_sid("RE")
    record_action(tw_client, call, rec)
    recording_status(tw_client, call, rec)
    transcription(tw_client, call, rec, "someone brought a gun to school")
    att = db_session.execute(select(Attachment).where(Attachment.external_id == rec)
                             ).scalar_one()
    assert att.transcript == "someone brought a gun to school"


def test_failed_transcription_keeps_the_tip_and_deletes_at_twilio(tw_client,
                                                                  db_session) -> None:
    call, rec = new_sid("CA"), new_sid("RE")
    record_action(tw_client, call, rec)
    transcription(tw_client, call, rec, "", status="failed")
    att = db_session.execute(select(Attachment).where(Attachment.external_id == rec)
                             ).scalar_one()
    assert att.transcript is None
    assert db_session.execute(select(TelephonyTask).where(
        TelephonyTask.kind == TaskKind.TRANSCRIPTION)).scalar_one() is not None
    # The tip no longer promises a transcript: it says to listen to the recording.
    first = db_session.execute(select(Message).where(Message.tip_id == att.tip_id)
                               .order_by(Message.id).limit(1)).scalar_one()
    assert first.body == voice.FAILED_BODY and "pending" not in first.body


def test_a_spanish_voicemail_says_listen_to_the_recording_and_never_pending(
        tw_client, db_session) -> None:
    call, rec = new_sid("CA"), new_sid("RE")
    record_action(tw_client, call, rec, lang="es")
    tip = db_session.execute(select(Tip).where(Tip.external_id == call)).scalar_one()
    first = db_session.execute(select(Message).where(Message.tip_id == tip.id)
                               .order_by(Message.id).limit(1)).scalar_one()
    assert tip.language == "es"
    assert first.body.startswith("Spanish voicemail: listen to the recording")
    assert "pending" not in first.body


def test_absent_recording_stores_nothing(tw_client, db_session) -> None:
    before = counts(db_session)
    resp = recording_status(tw_client, new_sid("CA"), new_sid("RE"), status="absent")
    assert resp.status_code == 204
    assert counts(db_session) == before


@pytest.mark.parametrize("lang", ["en", "es"])
def test_record_action_without_recording_says_goodbye_with_911_and_988(
        tw_client, db_session, lang) -> None:
    params = voice_params("voice_record_action", new_sid("CA"))
    params.pop("RecordingSid")
    root = twiml(signed_post(tw_client, f"/twilio/voice/recorded?lang={lang}", params))
    assert "9 1 1" in said(root) and "9 8 8" in said(root)
    assert count(db_session, Tip) == 0


def test_caller_number_is_not_stored(tw_client, db_session) -> None:
    call, rec = new_sid("CA"), new_sid("RE")
    record_action(tw_client, call, rec)
    transcription(tw_client, call, rec, "bullying on the bus")
    tip = db_session.execute(select(Tip).where(Tip.external_id == call)).scalar_one()
    assert tip.phone_ct is None and tip.phone_hash is None
    assert CALLER not in tip.messages[0].body


def test_school_named_in_the_transcript_is_set_and_the_tip_rerouted(
        tw_client, db_session, demo_directory) -> None:
    from tipline.routing.models import RoutingJob

    call, rec = new_sid("CA"), new_sid("RE")
    record_action(tw_client, call, rec)
    transcription(tw_client, call, rec, "there is a boy with a knife at vashon high school")
    tip = db_session.execute(select(Tip).where(Tip.external_id == call)).scalar_one()
    assert tip.school is not None and tip.school.code == "slps-vashon"
    jobs = db_session.execute(select(RoutingJob.reason).where(RoutingJob.tip_id == tip.id)
                              ).scalars().all()
    assert sorted(jobs) == ["intake", "retriage"]
