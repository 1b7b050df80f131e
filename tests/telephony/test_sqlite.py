"""The SMS conversation and voice intake on SQLite (the embedded default), via migrations."""

from __future__ import annotations

from sqlalchemy import select

from tests.conftest import DEMO_DIRECTORY
from tipline import migrations
from tipline.db import Database, utcnow
from tipline.directory.loader import load_directory_file
from tipline.jobs import RecordingQueue
from tipline.telephony.models import SmsConversation, SmsStep, TelephonyTask
from tipline.telephony.schools import INDEX
from tipline.telephony.sms import InboundSms, handle_inbound_sms
from tipline.telephony.voice import ensure_voice_tip, take_transcription
from tipline.tips.models import Attachment, Tip


def test_sms_and_voice_on_sqlite(tmp_path, vault) -> None:
    url = f"sqlite:///{tmp_path / 'embedded.sqlite3'}"
    migrations.upgrade(url)
    db = Database(url)
    queue = RecordingQueue()
    INDEX.clear()
    with db.session() as s:
        load_directory_file(s, DEMO_DIRECTORY)
    for sid, body in (("SM" + "1" * 32, "there is a fight planned"), ("SM" + "2" * 32, "vashn"),
                      ("SM" + "2" * 32, "vashn"), ("SM" + "3" * 32, "2")):
        with db.session() as s:
            handle_inbound_sms(s, vault, queue, InboundSms(sid, "+13145550188", body), utcnow())
    with db.sessions() as s:
        tip = s.execute(select(Tip)).scalar_one()
        assert tip.school.code == "slps-vashon" and tip.category == "threat"
        assert [m.body for m in tip.messages] == ["there is a fight planned", "vashn", "2"]
        assert s.execute(select(SmsConversation)).scalar_one().step == SmsStep.OPEN
    with db.session() as s:
        take_transcription(s, vault, queue, call_sid="CA" + "4" * 32,
                           transcription_sid="TR" + "5" * 32, recording_sid="RE" + "6" * 32,
                           recording_url="https://api.twilio.com/x", status="completed",
                           text="a gun in locker 9")
    with db.session() as s:
        again = ensure_voice_tip(s, vault, queue, call_sid="CA" + "4" * 32,
                                 recording_sid="RE" + "6" * 32,
                                 recording_url="https://api.twilio.com/x")
        assert not again.created
    with db.sessions() as s:
        assert len(s.execute(select(Tip)).scalars().all()) == 2
        att = s.execute(select(Attachment)).scalar_one()
        assert att.transcript == "a gun in locker 9"
        kinds = sorted(t.kind for t in s.execute(select(TelephonyTask)).scalars())
        assert kinds == ["recording", "transcription"]
    with db.session() as s:
        from datetime import timedelta

        from tipline.telephony.media import sweep

        result = sweep(s, queue, utcnow() + timedelta(minutes=1), timedelta(seconds=20))
        # The three inbound texts' records (one text was a retry), plus the recording and
        # transcription tasks still pending from above, re-sent.
        assert result.tasks == 5
    db.dispose()
    INDEX.clear()
