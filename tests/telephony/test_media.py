"""Workers: MMS media and recordings fetched from a local server, stripped, sealed, stored,
then deleted at Twilio (the SDK pointed at the Prism mock); retries; the sweep."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy import select

from tests.intake.helpers import jpeg_with_gps
from tests.telephony.helpers import (
    ACCOUNT,
    REPORTER,
    new_sid,
    run_all,
    send_mms,
    send_sms,
    staff_reply,
    sweep_and_run,
)
from tests.twilio_support import (
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    TEST_FROM_NUMBER,
    RecordingHttpClient,
    signed_post,
    webhook_example,
)
from tipline.db import utcnow
from tipline.telephony import media
from tipline.telephony.client import FakeTwilioGateway, RestTwilioGateway, TwilioTransientError
from tipline.telephony.models import TaskKind, TaskStatus, TelephonyTask
from tipline.tips.models import Attachment, Message, Tip


@pytest.fixture
def http() -> RecordingHttpClient:
    return RecordingHttpClient()


@pytest.fixture
def gateway(twilio_mock_url: str, http: RecordingHttpClient) -> RestTwilioGateway:
    return RestTwilioGateway(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM_NUMBER,
                             api_base=twilio_mock_url, http_client=http)


def test_mms_picture_is_stripped_sealed_stored_then_deleted_at_twilio(
        tw_client, db_session, vault, queue, demo_directory, media_server, gateway,
        http) -> None:
    photo = jpeg_with_gps()
    assert b"SpyPhone" in photo
    sid = send_mms(tw_client, media_server, [(photo, "image/jpeg")],
                   body="photo of the threat at vashon")
    assert run_all(db_session, vault, gateway, queue) == ["done"]
    assert sweep_and_run(db_session, vault, gateway, queue) == ["done"]  # the message record
    att = db_session.execute(select(Attachment)).scalar_one()
    assert att.kind == "image" and att.content_type == "image/jpeg"
    assert b"SpyPhone" not in att.data and b"SpyPhone" not in att.data_ct
    with Image.open(io.BytesIO(att.data)) as img:
        assert not img.getexif()
    media_sid = media_server.requests[0][0].rsplit("/", 1)[-1]
    assert media_server.requests[0][1] is not None  # fetched with the account's credentials
    assert [(r.method, r.path) for r in http.sent] == [
        ("DELETE", f"{ACCOUNT}/Messages/{sid}/Media/{media_sid}.json"),
        ("DELETE", f"{ACCOUNT}/Messages/{sid}.json"),
    ]
    tip = db_session.execute(select(Tip)).scalar_one()
    assert att.tip_id == tip.id


def test_mms_on_a_threaded_message_links_the_picture_to_it(
        tw_client, db_session, vault, queue, demo_directory, media_server) -> None:
    send_sms(tw_client, "fight at vashon")
    send_mms(tw_client, media_server, [(jpeg_with_gps(), "image/jpeg")], body="this is him")
    fake = FakeTwilioGateway()
    fake.media = {}
    gw = RestTwilioGateway(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM_NUMBER,
                           http_client=RecordingHttpClient())
    gw.delete_media = fake.delete_media  # type: ignore[method-assign]
    gw.delete_message = fake.delete_message  # type: ignore[method-assign]
    run_all(db_session, vault, gw, queue)
    att = db_session.execute(select(Attachment)).scalar_one()
    msg = db_session.get(Message, att.message_id)
    assert msg is not None and msg.body == "this is him"
    assert [k for k, _ in fake.deleted] == ["media"]
    sweep_and_run(db_session, vault, gw, queue)  # both texts' records, after their media
    assert sorted(k for k, _ in fake.deleted) == ["media", "message", "message"]


def test_picture_without_words_still_opens_a_tip(tw_client, db_session, queue,
                                                 demo_directory, media_server) -> None:
    send_mms(tw_client, media_server, [(jpeg_with_gps(), "image/jpeg")])
    tip = db_session.execute(select(Tip)).scalar_one()
    assert "picture" in tip.messages[0].body


def test_unsupported_media_is_not_kept_but_still_deleted(
        tw_client, db_session, vault, queue, demo_directory, media_server, gateway,
        http) -> None:
    send_mms(tw_client, media_server, [(b"\x00\x00\x00\x18ftypmp42video", "video/mp4")],
             body="video of the fight at vashon")
    assert run_all(db_session, vault, gateway, queue) == ["done"]
    assert sweep_and_run(db_session, vault, gateway, queue) == ["done"]
    assert db_session.execute(select(Attachment)).first() is None
    notes = db_session.execute(select(Message).where(Message.author == "system")
                               ).scalars().all()
    assert len(notes) == 1 and "video/mp4" in notes[0].body
    assert [r.method for r in http.sent] == ["DELETE", "DELETE"]


def test_transient_fetch_failure_is_retried_and_nothing_is_deleted(
        tw_client, db_session, vault, queue, demo_directory, media_server, gateway,
        http) -> None:
    send_mms(tw_client, media_server, [(jpeg_with_gps(), "image/jpeg")], body="at vashon")
    path = next(iter(media_server.files))
    media_server.fail_with[path] = 503
    task = db_session.execute(select(TelephonyTask).where(
        TelephonyTask.kind == TaskKind.MEDIA)).scalar_one()
    with pytest.raises(media.RetryLater):
        media.run_task(db_session, vault, gateway, queue, task.id, utcnow())
    db_session.refresh(task)
    assert task.status == TaskStatus.PENDING and task.attempts == 1
    assert http.sent == []
    # The message record's deletion waits for its media.
    assert media.schedule_message_deletions(db_session, queue, utcnow() + timedelta(1)) == 1
    message_task = db_session.execute(select(TelephonyTask).where(
        TelephonyTask.kind == TaskKind.MESSAGE)).scalar_one()
    assert media.run_task(db_session, vault, gateway, queue, message_task.id,
                          utcnow()) == "waiting"
    assert http.sent == []
    # Twilio is back; the sweep re-sends the task after its backoff.
    del media_server.fail_with[path]
    queue.sent.clear()
    later = utcnow() + timedelta(minutes=5)
    result = media.sweep(db_session, queue, later, timedelta(seconds=20))
    assert result.tasks == 2
    assert run_all(db_session, vault, gateway, queue) == ["done", "done"]
    assert db_session.execute(select(Attachment)).scalar_one().kind == "image"


def test_task_run_twice_does_the_work_once(tw_client, db_session, vault, queue,
                                           demo_directory, media_server) -> None:
    send_mms(tw_client, media_server, [(jpeg_with_gps(), "image/jpeg")], body="at vashon")
    fake = FakeTwilioGateway()
    fake.media = {url: (data, ctype) for url, (data, ctype) in
                  ((media_server.base_url + p, f) for p, f in media_server.files.items())}
    task = db_session.execute(select(TelephonyTask).where(
        TelephonyTask.kind == TaskKind.MEDIA)).scalar_one()
    assert media.run_task(db_session, vault, fake, queue, task.id, utcnow()) == "done"
    assert media.run_task(db_session, vault, fake, queue, task.id, utcnow()) == "done"
    assert len(fake.fetched) == 1
    assert len(db_session.execute(select(Attachment)).scalars().all()) == 1


def test_recording_is_fetched_sealed_stored_then_deleted_with_its_transcription(
        tw_client, db_session, vault, queue, media_server, gateway, http) -> None:
    call, rec, tr = new_sid("CA"), new_sid("RE"), new_sid("TR")
    audio = b"ID3\x04\x00fake-mp3-audio" * 50
    url = media_server.add(f"{ACCOUNT}/Recordings/{rec}", audio, "audio/mpeg")
    params = webhook_example("voice_recording_status_callback", CallSid=call, RecordingSid=rec,
                             RecordingUrl=url)
    assert signed_post(tw_client, "/twilio/voice/recording-status", params).status_code == 204
    params = webhook_example("voice_transcription_callback", CallSid=call, RecordingSid=rec,
                             RecordingUrl=url, TranscriptionSid=tr, From="+13145550177",
                             Caller="+13145550177")
    assert signed_post(tw_client, "/twilio/voice/transcription", params).status_code == 204
    assert run_all(db_session, vault, gateway, queue) == ["done", "done"]
    att = db_session.execute(select(Attachment)).scalar_one()
    assert att.kind == "audio" and att.data == audio and att.size == len(audio)
    assert audio not in att.data_ct
    assert att.transcript == "there is going to be a fight behind the gym after school"
    assert [(r.method, r.path) for r in http.sent] == [
        ("DELETE", f"{ACCOUNT}/Recordings/{rec}.json"),
        ("DELETE", f"{ACCOUNT}/Transcriptions/{tr}.json"),
    ]


def test_recording_not_ready_yet_is_retried(tw_client, db_session, vault, queue,
                                            media_server, gateway) -> None:
    call, rec = new_sid("CA"), new_sid("RE")
    params = webhook_example("voice_recording_status_callback", CallSid=call, RecordingSid=rec,
                             RecordingUrl=media_server.base_url + f"/rec/{rec}")
    signed_post(tw_client, "/twilio/voice/recording-status", params)
    task = db_session.execute(select(TelephonyTask)).scalar_one()
    with pytest.raises(media.RetryLater):
        media.run_task(db_session, vault, gateway, queue, task.id, utcnow())
    media_server.add(f"/rec/{rec}", b"audio-bytes", "audio/mpeg")
    assert media.run_task(db_session, vault, gateway, queue, task.id, utcnow()) == "done"
    assert db_session.execute(select(Attachment)).scalar_one().data == b"audio-bytes"


def test_staff_reply_is_relayed_once_from_the_line_number(
        tw_client, db_session, demo_directory, gateway, http) -> None:
    send_sms(tw_client, "fight at vashon", frm=REPORTER)
    tip = db_session.execute(select(Tip)).scalar_one()
    msg = staff_reply(db_session, tip, "Thank you. Which day is the fight?")
    assert media.relay_sms(db_session, gateway, msg.id, utcnow(),
                           status_callback="https://tips.example.org/twilio/sms/status") == "sent"
    sent = http.last()
    assert sent.method == "POST" and sent.path == f"{ACCOUNT}/Messages.json"
    assert sent.data["To"] == REPORTER
    assert sent.data["From"] == TEST_FROM_NUMBER
    assert "Which day is the fight?" in sent.data["Body"] and "988" in sent.data["Body"]
    assert sent.data["StatusCallback"] == "https://tips.example.org/twilio/sms/status"
    db_session.refresh(msg)
    assert msg.relay_status == "sent" and msg.external_id
    assert media.relay_sms(db_session, gateway, msg.id, utcnow()) == "sent"
    assert len(http.sent) == 1


def test_relay_transient_failure_stays_pending_and_sweep_resends(
        tw_client, db_session, queue, demo_directory) -> None:
    send_sms(tw_client, "fight at vashon")
    tip = db_session.execute(select(Tip)).scalar_one()
    msg = staff_reply(db_session, tip, "Are you safe?")
    fake = FakeTwilioGateway()
    fake.fail_next = TwilioTransientError("down")
    with pytest.raises(media.RetryLater):
        media.relay_sms(db_session, fake, msg.id, utcnow())
    db_session.refresh(msg)
    assert msg.relay_status == "pending"
    queue.sent.clear()
    media.sweep(db_session, queue, utcnow() + timedelta(minutes=1), timedelta(seconds=20))
    assert ("tipline.relay_sms", (msg.id,)) in queue.sent
    assert media.relay_sms(db_session, fake, msg.id, utcnow()) == "sent"
    assert [m["to"] for m in fake.sent] == [REPORTER]


def test_relay_to_an_opted_out_reporter_fails_without_sending(
        tw_client, db_session, demo_directory) -> None:
    send_sms(tw_client, "fight at vashon")
    send_sms(tw_client, "STOP")
    tip = db_session.execute(select(Tip)).scalar_one()
    msg = staff_reply(db_session, tip, "Are you safe?")
    fake = FakeTwilioGateway()
    assert media.relay_sms(db_session, fake, msg.id, utcnow()) == "failed"
    assert fake.sent == []


def test_permanent_relay_error_marks_failed(tw_client, db_session, demo_directory) -> None:
    from tipline.telephony.client import TwilioPermanentError

    send_sms(tw_client, "fight at vashon")
    tip = db_session.execute(select(Tip)).scalar_one()
    msg = staff_reply(db_session, tip, "Are you safe?")
    fake = FakeTwilioGateway()
    fake.fail_next = TwilioPermanentError("bad number", code=21211, status=400)
    assert media.relay_sms(db_session, fake, msg.id, utcnow()) == "failed"


def test_status_callback_marks_undelivered_relay_failed_and_deletes_the_record(
        tw_client, db_session, queue, demo_directory) -> None:
    send_sms(tw_client, "fight at vashon")
    tip = db_session.execute(select(Tip)).scalar_one()
    msg = staff_reply(db_session, tip, "Are you safe?")
    fake = FakeTwilioGateway()
    media.relay_sms(db_session, fake, msg.id, utcnow())
    sid = fake.sent[0]["sid"]
    params = webhook_example("sms_status_callback", MessageSid=sid, SmsSid=sid,
                             MessageStatus="undelivered")
    assert signed_post(tw_client, "/twilio/sms/status", params).status_code == 204
    db_session.refresh(msg)
    assert msg.relay_status == "failed"
    task = db_session.execute(select(TelephonyTask).where(TelephonyTask.sid == sid)
                              ).scalar_one()
    assert task.kind == TaskKind.MESSAGE


def test_sweep_erases_numbers_of_closed_and_idle_conversations(
        tw_client, db_session, queue, demo_directory) -> None:
    send_sms(tw_client, "fight at vashon", frm="+13145550191")
    send_sms(tw_client, "drugs at soldan", frm="+13145550192")
    tips = db_session.execute(select(Tip).order_by(Tip.id)).scalars().all()
    tips[0].status = "closed"
    db_session.commit()
    result = media.sweep(db_session, queue, utcnow(), timedelta(seconds=20))
    assert result.numbers_erased == 1
    db_session.refresh(tips[0])
    db_session.refresh(tips[1])
    assert tips[0].phone_ct is None and tips[0].phone_hash is None
    assert tips[1].phone == "+13145550192"
    result = media.sweep(db_session, queue, utcnow() + timedelta(days=31), timedelta(seconds=20),
                         conversation_days=30)
    db_session.refresh(tips[1])
    assert tips[1].phone_ct is None and result.numbers_erased == 1


def test_sweep_gives_up_after_too_many_attempts_and_tells_staff(
        tw_client, db_session, queue, demo_directory, media_server) -> None:
    send_mms(tw_client, media_server, [(jpeg_with_gps(), "image/jpeg")], body="at vashon")
    task = db_session.execute(select(TelephonyTask).where(
        TelephonyTask.kind == TaskKind.MEDIA)).scalar_one()
    task.attempts = media.MAX_ATTEMPTS
    db_session.commit()
    media.sweep(db_session, queue, utcnow() + timedelta(hours=2), timedelta(seconds=20))
    db_session.refresh(task)
    assert task.status == TaskStatus.FAILED
    notes = db_session.execute(select(Message).where(Message.author == "system")
                               ).scalars().all()
    assert len(notes) == 1 and "could not be retrieved" in notes[0].body


def test_sweep_deletes_the_record_of_a_text_without_media(
        tw_client, db_session, vault, queue, demo_directory, gateway, http) -> None:
    sid = new_sid("SM")
    send_sms(tw_client, "fight at vashon", sid=sid)
    stop_sid = new_sid("SM")
    send_sms(tw_client, "STOP", sid=stop_sid)  # keyword texts' records go too
    assert not [a for n, a in queue.sent if n == "tipline.telephony_task"]
    assert sweep_and_run(db_session, vault, gateway, queue, seconds=5) == []  # too recent
    assert sweep_and_run(db_session, vault, gateway, queue) == ["done", "done"]
    assert [(r.method, r.path) for r in http.sent] == [
        ("DELETE", f"{ACCOUNT}/Messages/{sid}.json"),
        ("DELETE", f"{ACCOUNT}/Messages/{stop_sid}.json")]
    assert sweep_and_run(db_session, vault, gateway, queue, seconds=90) == []  # once only


def test_twiml_replies_ask_for_a_status_callback_and_their_records_are_deleted(
        tw_client, db_session, vault, queue, demo_directory) -> None:
    # Twilio keeps a record of each TwiML reply (to: the texter's number; body: e.g. the school
    # named). The reply asks for a status callback, which schedules that record's deletion.
    import xml.etree.ElementTree as ET

    resp = send_sms(tw_client, "fight at vashon")
    message = ET.fromstring(resp.get_data(as_text=True)).find("Message")  # noqa: S314
    assert message is not None
    assert message.get("action") == "https://tips.example.org/twilio/sms/status"
    assert message.get("method") == "POST"
    reply_sid = new_sid("SM")
    params = webhook_example("sms_status_callback", MessageSid=reply_sid, SmsSid=reply_sid,
                             MessageStatus="delivered")
    assert signed_post(tw_client, "/twilio/sms/status", params).status_code == 204
    task = db_session.execute(select(TelephonyTask).where(TelephonyTask.sid == reply_sid)
                              ).scalar_one()
    assert task.kind == TaskKind.MESSAGE
    fake = FakeTwilioGateway()
    assert media.run_task(db_session, vault, fake, queue, task.id, utcnow()) == "done"
    assert fake.deleted == [("message", reply_sid)]


def test_relay_that_keeps_failing_is_given_up_and_marked_failed(
        tw_client, db_session, demo_directory) -> None:
    # A transient failure retries (Celery, then the sweep) but not forever: once the reply is
    # older than RELAY_GIVE_UP_AFTER, the next failure marks it failed for staff to see.
    send_sms(tw_client, "fight at vashon")
    tip = db_session.execute(select(Tip)).scalar_one()
    msg = staff_reply(db_session, tip, "Are you safe?")
    fake = FakeTwilioGateway()
    fake.fail_next = TwilioTransientError("down")
    with pytest.raises(media.RetryLater):
        media.relay_sms(db_session, fake, msg.id, utcnow() + timedelta(minutes=30))
    fake.fail_next = TwilioTransientError("still down")
    later = utcnow() + media.RELAY_GIVE_UP_AFTER + timedelta(minutes=1)
    assert media.relay_sms(db_session, fake, msg.id, later) == "failed"
    db_session.refresh(msg)
    assert msg.relay_status == "failed" and fake.sent == []


def test_call_record_is_deleted_at_twilio_once_the_call_must_be_over(
        tw_client, db_session, vault, queue, demo_directory) -> None:
    # Twilio's call record holds the caller's number; our tip holds its CallSid.
    from twilio.http.response import Response

    from tests.telephony.helpers import voice_params

    call = new_sid("CA")
    params = voice_params("voice_record_action", call, RecordingSid=new_sid("RE"))
    assert signed_post(tw_client, "/twilio/voice/recorded?lang=en", params).status_code == 200
    assert signed_post(tw_client, "/twilio/voice/recorded?lang=en", params).status_code == 200

    def call_tasks(minutes_later: float) -> list[TelephonyTask]:
        media.sweep(db_session, queue, utcnow() + timedelta(minutes=minutes_later),
                    timedelta(seconds=20))
        return list(db_session.execute(select(TelephonyTask).where(
            TelephonyTask.kind == TaskKind.CALL)).scalars())

    assert call_tasks(10) == []  # the caller may still be on the line
    over = media.CALLS_OVER_AFTER.total_seconds() / 60 + 1
    tasks = call_tasks(over)
    assert [t.sid for t in tasks] == [call]
    assert call_tasks(over + 5) == tasks  # scheduled once
    # The recording is still to be taken in (Twilio unreachable so far): the call waits.
    waiting = FakeTwilioGateway()
    assert media.run_task(db_session, vault, waiting, queue, tasks[0].id, utcnow()) == "waiting"
    assert waiting.deleted == []
    recording = db_session.execute(select(TelephonyTask).where(
        TelephonyTask.kind == TaskKind.RECORDING, TelephonyTask.parent_sid == call)).scalar_one()
    recording.status = TaskStatus.DONE
    db_session.commit()
    http = RecordingHttpClient()
    http.canned.append(Response(204, ""))
    rest = RestTwilioGateway(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM_NUMBER,
                             http_client=http)
    assert media.run_task(db_session, vault, rest, queue, tasks[0].id, utcnow()) == "done"
    assert [(r.method, r.path) for r in http.sent] == [
        ("DELETE", f"{ACCOUNT}/Calls/{call}.json")]


def test_reply_that_stays_sent_is_deleted_later_and_final_status_only_once(
        tw_client, db_session, vault, queue, demo_directory) -> None:
    # A carrier that never reports delivery leaves the reply "sent": its record still goes.
    stuck, delivered = new_sid("SM"), new_sid("SM")
    for sid, statuses in ((stuck, ["sent"]), (delivered, ["sent", "delivered", "delivered"])):
        for status in statuses:
            params = webhook_example("sms_status_callback", MessageSid=sid, SmsSid=sid,
                                     MessageStatus=status)
            assert signed_post(tw_client, "/twilio/sms/status", params).status_code == 204

    def message_tasks(later: timedelta) -> list[str]:
        media.sweep(db_session, queue, utcnow() + later, timedelta(seconds=20))
        return sorted(db_session.execute(select(TelephonyTask.sid).where(
            TelephonyTask.kind == TaskKind.MESSAGE)).scalars())

    assert message_tasks(timedelta(minutes=5)) == [delivered]
    later = media.SENT_IS_FINAL_AFTER + timedelta(minutes=1)
    assert message_tasks(later) == sorted([stuck, delivered])
    assert message_tasks(later + timedelta(minutes=5)) == sorted([stuck, delivered])


def test_unexpected_task_failure_is_counted_so_retries_stay_bounded(
        tw_client, db_session, vault, queue, demo_directory) -> None:
    sid = new_sid("SM")
    send_sms(tw_client, "fight at vashon", sid=sid)
    media.sweep(db_session, queue, utcnow() + timedelta(minutes=1), timedelta(seconds=20))
    task = db_session.execute(select(TelephonyTask).where(TelephonyTask.sid == sid)
                              ).scalar_one()
    fake = FakeTwilioGateway()
    fake.fail_next = RuntimeError("a bug")
    with pytest.raises(RuntimeError):
        media.run_task(db_session, vault, fake, queue, task.id, utcnow())
    db_session.refresh(task)
    assert task.status == TaskStatus.PENDING
    assert task.attempts == 1 and task.last_error == "unexpected RuntimeError"
    task.attempts = media.MAX_ATTEMPTS
    db_session.commit()
    media.sweep(db_session, queue, utcnow() + timedelta(days=1), timedelta(seconds=20))
    db_session.refresh(task)
    assert task.status == TaskStatus.FAILED


def test_sweep_marks_a_relay_pending_for_a_day_failed(tw_client, db_session, queue,
                                                      demo_directory) -> None:
    send_sms(tw_client, "fight at vashon")
    tip = db_session.execute(select(Tip)).scalar_one()
    msg = staff_reply(db_session, tip, "Are you safe?")
    media.sweep(db_session, queue, utcnow() + timedelta(hours=2), timedelta(seconds=20))
    db_session.refresh(msg)
    assert msg.relay_status == "pending"  # still retried
    queue.sent.clear()
    later = utcnow() + media.RELAY_ABANDON_AFTER + timedelta(minutes=1)
    media.sweep(db_session, queue, later, timedelta(seconds=20))
    db_session.refresh(msg)
    assert msg.relay_status == "failed"
    assert ("tipline.relay_sms", (msg.id,)) not in queue.sent
