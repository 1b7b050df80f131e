"""After an SMS conversation (with a picture and a staff reply) and a voice call, neither the
database nor the logs hold the reporter's number, the caller's number or the tip text."""

from __future__ import annotations

import logging

from sqlalchemy import text

from tests.intake.helpers import jpeg_with_gps
from tests.telephony.helpers import (
    CALLER,
    REPORTER,
    new_sid,
    run_all,
    send_mms,
    send_sms,
    staff_reply,
    voice_params,
)
from tests.twilio_support import signed_post, webhook_example
from tipline.db import utcnow
from tipline.telephony import media
from tipline.telephony.client import FakeTwilioGateway
from tipline.tips.models import Tip

SECRET_TEXT = "Jordan Example keeps a pistol in locker 4471"
TRANSCRIPT = "my cousin Quinlan Testperson said he will burn the gym"
STAFF_TEXT = "Is Jordan still at school right now?"


def _variants(number: str) -> list[str]:
    digits = number.lstrip("+")
    local = digits[-10:]
    return [number, digits, local, f"{local[:3]}-{local[3:6]}-{local[6:]}",
            f"({local[:3]}) {local[3:6]}-{local[6:]}", local[3:]]


def _secrets() -> list[str]:
    words = [*_variants(REPORTER), *_variants(CALLER), SECRET_TEXT, "locker 4471",
             TRANSCRIPT, "Quinlan", STAFF_TEXT]
    # bytea columns appear hex-encoded in row_to_json: look for the hex form too.
    return words + [w.encode().hex() for w in words if len(w) >= 7]


def _dump(db_session) -> str:
    tables = db_session.execute(text(
        "SELECT tablename FROM pg_tables WHERE schemaname='public'")).scalars().all()
    parts = []
    for table in tables:
        rows = db_session.execute(text(f'SELECT row_to_json(t)::text FROM "{table}" t')
                                  ).scalars()
        parts.append(f"== {table}\n" + "\n".join(rows))
    return "\n".join(parts)


def test_nothing_identifying_in_database_or_logs(tw_client, db_session, vault, queue,
                                                 demo_directory, media_server,
                                                 caplog) -> None:
    caplog.set_level(logging.DEBUG)
    # SMS: first text, school, category, a picture, a staff reply relayed, STOP later.
    send_sms(tw_client, SECRET_TEXT)
    send_sms(tw_client, "vashon")
    send_sms(tw_client, "1")
    send_mms(tw_client, media_server, [(jpeg_with_gps(), "image/jpeg")], body="")
    fake = FakeTwilioGateway()
    fake.media = {media_server.base_url + p: f for p, f in media_server.files.items()}
    run_all(db_session, vault, fake, queue)
    tip = db_session.query(Tip).filter(Tip.channel == "sms").one()
    msg = staff_reply(db_session, tip, STAFF_TEXT)
    assert media.relay_sms(db_session, fake, msg.id, utcnow()) == "sent"
    assert fake.sent[0]["to"] == REPORTER  # it really was relayed to the number...
    # Voice: call, language, recording, status and transcription callbacks.
    call, rec = new_sid("CA"), new_sid("RE")
    signed_post(tw_client, "/twilio/voice", voice_params("voice_inbound", call))
    signed_post(tw_client, "/twilio/voice/language",
                voice_params("voice_gather_action", call, Digits="1"))
    signed_post(tw_client, "/twilio/voice/recorded?lang=en",
                voice_params("voice_record_action", call, RecordingSid=rec))
    signed_post(tw_client, "/twilio/voice/recording-status",
                webhook_example("voice_recording_status_callback", CallSid=call,
                                RecordingSid=rec))
    signed_post(tw_client, "/twilio/voice/transcription",
                voice_params("voice_transcription_callback", call, RecordingSid=rec,
                             TranscriptionSid=new_sid("TR"), TranscriptionText=TRANSCRIPT))
    db_session.commit()

    dump = _dump(db_session)
    assert "== sms_conversations" in dump and "== tips" in dump
    logged = "\n".join(f"{r.name}: {r.getMessage()}" for r in caplog.records)
    for secret in _secrets():
        assert secret not in dump, secret
        assert secret not in logged, secret
    # ...and yet it is all there for staff, sealed.
    assert tip.phone == REPORTER
    assert SECRET_TEXT in [m.body for m in tip.messages]
