"""SMS, MMS and voice tips once districts have read keys: intake seals, webhooks and workers
add content under keys of its own sealed to the tip's audience without ever opening a key,
and a staff reply reaches the SMS reporter through a one-job payload."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from tests.intake.helpers import jpeg_with_gps
from tests.keysupport import reader
from tests.telephony.helpers import REPORTER, new_sid, run_all, send_mms, send_sms
from tests.telephony.test_voice import record_action, recording_status, transcription
from tests.twilio_support import (
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    TEST_FROM_NUMBER,
    RecordingHttpClient,
)
from tipline.crypto import SEALED_ONLY, KeyUnavailable, current_keychain, using
from tipline.db import utcnow
from tipline.directory.models import District
from tipline.telephony import media
from tipline.telephony.client import RestTwilioGateway
from tipline.telephony.voice import FAILED_BODY
from tipline.tips.models import Attachment, DataKey, Message, Tip
from tipline.triage import services as triage


@pytest.fixture
def http() -> RecordingHttpClient:
    return RecordingHttpClient()


@pytest.fixture
def gateway(twilio_mock_url: str, http: RecordingHttpClient) -> RestTwilioGateway:
    return RestTwilioGateway(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM_NUMBER,
                             api_base=twilio_mock_url, http_client=http)


@pytest.fixture
def readers(db_session: Any, vault: Any, demo_directory: Any) -> dict[str, Any]:
    """A district admin with access in every district: every district has a read key, so
    even a tip that names no school yet is sealed (to every district's key)."""
    out = {}
    for code in db_session.execute(select(District.code).order_by(District.id)).scalars():
        out[code] = reader(db_session, vault, code)
    db_session.commit()
    return out


def _sealed_only(session: Any, uid: str | None) -> None:
    assert uid is not None
    key = session.execute(select(DataKey).where(DataKey.uid == uid)).scalar_one()
    assert key.kek_id == SEALED_ONLY
    assert {s["kind"] for s in json.loads(key.slots)["slots"]} == {"x25519"}


def test_sms_tip_and_a_later_text_are_sealed_and_read_in_a_staff_session(
        tw_client, db_session, readers) -> None:
    assert len(current_keychain()) == 0  # the webhook runs with no staff key
    send_sms(tw_client, "there will be a fight at vashon after school", frm=REPORTER)
    send_sms(tw_client, "it is about the bus money", frm=REPORTER)
    tip = db_session.execute(select(Tip)).scalar_one()
    _sealed_only(db_session, tip.data_key.uid)
    later = db_session.execute(select(Message).where(
        Message.tip_id == tip.id, Message.author == "reporter").order_by(Message.id)
    ).scalars().all()[-1]
    assert later.data_key_uid is not None and later.data_key_uid != tip.data_key.uid
    _sealed_only(db_session, later.data_key_uid)
    for row, what in ((tip, "phone"), (later, "body")):
        with pytest.raises(KeyUnavailable):
            getattr(row, what)
    _user, chain = readers["slps"]
    with using(chain):
        assert tip.phone == REPORTER
        assert later.body == "it is about the bus money"
    _other, elsewhere = readers["stlco-demo"] if "stlco-demo" in readers else readers["slps"]
    if elsewhere is not chain:  # another district's key opens neither
        with using(elsewhere), pytest.raises(KeyUnavailable):
            _ = later.body


def test_mms_picture_fetched_by_the_worker_is_sealed_under_its_own_key(
        tw_client, db_session, vault, queue, readers, media_server, gateway) -> None:
    send_mms(tw_client, media_server, [(jpeg_with_gps(), "image/jpeg")],
             body="photo of the threat at vashon")
    assert len(current_keychain()) == 0
    assert run_all(db_session, vault, gateway, queue) == ["done"]  # the worker: no keys
    att = db_session.execute(select(Attachment)).scalar_one()
    _sealed_only(db_session, att.data_key_uid)
    with pytest.raises(KeyUnavailable):
        _ = att.data
    with using(readers["slps"][1]):
        assert att.data.startswith(b"\xff\xd8")


def test_voice_recording_transcript_and_first_message_are_sealed(
        tw_client, db_session, vault, queue, readers, media_server, gateway) -> None:
    call, rec = new_sid("CA"), new_sid("RE")
    url = media_server.add(f"/rec/{rec}", b"ID3 fake audio" * 20, "audio/mpeg")
    record_action(tw_client, call, rec)
    tip = db_session.execute(select(Tip).where(Tip.external_id == call)).scalar_one()
    _sealed_only(db_session, tip.data_key.uid)
    first = db_session.execute(select(Message).where(Message.tip_id == tip.id)).scalar_one()
    assert first.placeholder
    assert transcription(tw_client, call, rec, "someone has a knife at vashon").status_code \
        == 204
    assert recording_status(tw_client, call, rec).status_code == 204
    task = next(t for t in db_session.execute(
        select(media.TelephonyTask).where(media.TelephonyTask.sid == rec)).scalars())
    task.url = url
    db_session.commit()
    assert media.run_task(db_session, vault, gateway, queue, task.id, utcnow()) == "done"
    db_session.expire_all()
    att = db_session.execute(select(Attachment).where(Attachment.tip_id == tip.id)).scalar_one()
    first = db_session.get(Message, first.id)
    for uid in (att.data_key_uid, att.transcript_key_uid, first.data_key_uid):
        _sealed_only(db_session, uid)
    assert not first.placeholder
    with pytest.raises(KeyUnavailable):
        _ = att.transcript
    with using(readers["slps"][1]):
        assert att.data == b"ID3 fake audio" * 20
        assert att.transcript == "someone has a knife at vashon"
        assert "knife at vashon" in first.body


def test_failed_transcript_replaces_the_placeholder_without_opening_any_key(
        tw_client, db_session, readers) -> None:
    call, rec = new_sid("CA"), new_sid("RE")
    record_action(tw_client, call, rec)
    transcription(tw_client, call, rec, "", status="failed")
    tip = db_session.execute(select(Tip).where(Tip.external_id == call)).scalar_one()
    first = db_session.execute(select(Message).where(Message.tip_id == tip.id)).scalar_one()
    db_session.refresh(first)
    assert not first.placeholder
    with using(readers["slps"][1]):
        assert first.body == FAILED_BODY


def test_staff_reply_is_relayed_with_the_job_key_and_the_payload_is_gone_after(
        tw_client, db_session, queue, readers, gateway, http) -> None:
    send_sms(tw_client, "fight at vashon tomorrow", frm=REPORTER)
    tip = db_session.execute(select(Tip)).scalar_one()
    user, chain = readers["slps"]
    queue.sent.clear()
    with using(chain):  # the staff request
        msg = triage.add_reply(db_session, queue, user, tip, "Which door?", utcnow())
    db_session.commit()
    [(message_id, job_key)] = [a for n, a in queue.sent if n == "tipline.relay_sms"]
    assert message_id == msg.id and msg.relay_payload_ct is not None
    assert REPORTER.encode() not in msg.relay_payload_ct
    # The sweep's re-send has no key: it leaves the reply for the task that has one.
    assert media.relay_sms(db_session, gateway, msg.id, utcnow()) == "waiting-for-key"
    assert len(current_keychain()) == 0  # the relay worker: no staff key
    assert media.relay_sms(db_session, gateway, msg.id, utcnow(), job_key=job_key) == "sent"
    sent = http.last()
    assert sent.data["To"] == REPORTER and "Which door?" in sent.data["Body"]
    db_session.refresh(msg)
    assert msg.relay_status == "sent" and msg.relay_payload_ct is None


def test_a_relay_with_the_wrong_job_key_fails_and_drops_the_payload(
        tw_client, db_session, queue, readers, gateway, http) -> None:
    send_sms(tw_client, "fight at vashon tomorrow", frm=REPORTER)
    tip = db_session.execute(select(Tip)).scalar_one()
    user, chain = readers["slps"]
    with using(chain):
        msg = triage.add_reply(db_session, queue, user, tip, "Which door?", utcnow())
    db_session.commit()
    wrong = "A" * 43 + "="
    assert media.relay_sms(db_session, gateway, msg.id, utcnow(), job_key=wrong) == "failed"
    db_session.refresh(msg)
    assert msg.relay_payload_ct is None and not http.sent


def _district_rids(session: Any, uid: str) -> set[str]:
    key = session.execute(select(DataKey).where(DataKey.uid == uid)).scalar_one()
    return {str(s.get("rid")) for s in json.loads(key.slots)["slots"]
            if str(s.get("rid", "")).startswith("district:")}


def test_a_tip_that_names_its_school_later_keeps_no_slot_of_another_district(
        tw_client, db_session, readers) -> None:
    """Sealed to every district while its school is unknown; once the reporter names it, the
    other districts' slots go from the tip's key and the keys of its earlier texts."""
    assert len(readers) > 1
    send_sms(tw_client, "someone keeps threatening my friend", frm=REPORTER)
    tip = db_session.execute(select(Tip)).scalar_one()
    assert len(_district_rids(db_session, tip.data_key.uid)) == len(readers)
    send_sms(tw_client, "roosvelt hihg", frm=REPORTER)
    db_session.expire_all()
    tip = db_session.execute(select(Tip)).scalar_one()
    assert tip.school.code == "slps-roosevelt"
    uids = [tip.data_key.uid, *(m.data_key_uid for m in db_session.execute(
        select(Message).where(Message.tip_id == tip.id)).scalars() if m.data_key_uid)]
    slps = readers["slps"][1]
    own = {rid for rid in slps.rids() if rid.startswith("district:")}
    for uid in uids:
        assert _district_rids(db_session, uid) <= own
    for code, (_user, chain) in readers.items():
        if code == "slps":
            continue
        with using(chain), pytest.raises(KeyUnavailable):
            _ = tip.phone
    with using(slps):
        assert tip.phone == REPORTER


def test_a_tip_under_the_key_file_is_sealed_once_its_school_is_known(
        tw_client, db_session, vault, demo_directory) -> None:
    """Another district has no read key yet, so a tip naming no school gets a key-file slot
    (legacy); once it names an SLPS school, the server alone must no longer open it."""
    reader(db_session, vault, "slps")
    db_session.commit()
    send_sms(tw_client, "someone keeps threatening my friend", frm=REPORTER)
    tip = db_session.execute(select(Tip)).scalar_one()
    assert tip.data_key.kek_id != SEALED_ONLY  # legacy while the school is unknown
    send_sms(tw_client, "roosvelt hihg", frm=REPORTER)
    db_session.expire_all()
    tip = db_session.execute(select(Tip)).scalar_one()
    assert tip.school.code == "slps-roosevelt"
    _sealed_only(db_session, tip.data_key.uid)
    with pytest.raises(KeyUnavailable):
        _ = tip.phone


def test_stop_drops_a_reply_still_waiting_to_be_relayed(
        tw_client, db_session, queue, readers, gateway, http) -> None:
    send_sms(tw_client, "fight at vashon tomorrow", frm=REPORTER)
    tip = db_session.execute(select(Tip)).scalar_one()
    user, chain = readers["slps"]
    with using(chain):
        msg = triage.add_reply(db_session, queue, user, tip, "Which door?", utcnow())
    db_session.commit()
    send_sms(tw_client, "STOP", frm=REPORTER)
    db_session.expire_all()
    msg = db_session.get(Message, msg.id)
    assert msg.relay_status == "failed" and msg.relay_payload_ct is None


def test_a_caller_reads_staff_questions_with_the_spoken_code(
        tw_client, db_session, vault, queue, readers) -> None:
    from tests.intake.helpers import csrf_from
    from tests.telephony.helpers import twiml
    from tests.telephony.test_voice import spoken_code

    call, rec = new_sid("CA"), new_sid("RE")
    code = spoken_code(twiml(record_action(tw_client, call, rec)))
    transcription(tw_client, call, rec, "someone has a knife at vashon")
    tip = db_session.execute(select(Tip).where(Tip.external_id == call)).scalar_one()
    user, chain = readers["slps"]
    with using(chain):  # the district's staff read the call and ask a question
        first = db_session.execute(select(Message).where(Message.tip_id == tip.id)).scalar_one()
        assert "knife" in first.body
        triage.add_reply(db_session, queue, user, tip, "Which hallway was it?", utcnow())
    db_session.commit()
    token = csrf_from(tw_client.get("/followup").get_data(as_text=True))
    assert tw_client.post("/followup", data={"csrf_token": token, "code": code}).status_code \
        == 303
    page = tw_client.get("/followup/tip")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Which hallway was it?" in html
    assert "knife" not in html  # the transcript is sealed to staff only


def test_a_call_whose_transcript_names_the_school_keeps_no_slot_of_another_district(
        tw_client, db_session, readers) -> None:
    call, rec = new_sid("CA"), new_sid("RE")
    record_action(tw_client, call, rec)
    tip = db_session.execute(select(Tip).where(Tip.external_id == call)).scalar_one()
    assert tip.school_id is None
    assert len(_district_rids(db_session, tip.data_key.uid)) == len(readers)
    assert transcription(tw_client, call, rec, "someone has a knife at vashon").status_code \
        == 204
    db_session.expire_all()
    tip = db_session.execute(select(Tip).where(Tip.external_id == call)).scalar_one()
    assert tip.school is not None and tip.school.code.startswith("slps-")
    own = {rid for rid in readers["slps"][1].rids() if rid.startswith("district:")}
    uids = [tip.data_key.uid, *(m.data_key_uid for m in db_session.execute(
        select(Message).where(Message.tip_id == tip.id)).scalars() if m.data_key_uid)]
    for att in db_session.execute(select(Attachment).where(Attachment.tip_id == tip.id)
                                  ).scalars():
        uids += [u for u in (att.data_key_uid, att.transcript_key_uid) if u]
    for uid in uids:
        assert _district_rids(db_session, uid) <= own
