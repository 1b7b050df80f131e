"""Signatures from every channel: the first SMS, and a voice tip's transcript (not its
"transcript pending" stand-in)."""

from __future__ import annotations

from sqlalchemy import select

from tipline.db import utcnow
from tipline.surge.models import TipSignature
from tipline.telephony.sms import InboundSms, handle_inbound_sms
from tipline.telephony.voice import ensure_voice_tip, take_transcription
from tipline.tips.models import Tip

CALL = "CA" + "7" * 32


def test_first_sms_gets_a_signature(db_session, vault, queue, demo_directory):
    handle_inbound_sms(db_session, vault, queue, InboundSms(
        "SM" + "8" * 32, "+13145550177", "someone will shoot up roosevelt friday"), utcnow())
    db_session.commit()
    tip = db_session.execute(select(Tip)).scalar_one()
    sig = db_session.get(TipSignature, tip.id)
    assert sig is not None and sig.size > 0 and sig.signals


def test_voice_tip_gets_its_signature_from_the_transcript(db_session, vault, queue,
                                                          demo_directory):
    made = ensure_voice_tip(db_session, vault, queue, call_sid=CALL,
                            recording_sid="RE" + "1" * 32, recording_url="https://api.twilio.com/x")
    db_session.commit()
    assert db_session.get(TipSignature, made.tip_id) is None  # no words yet
    take_transcription(db_session, vault, queue, call_sid=CALL,
                       transcription_sid="TR" + "2" * 32, recording_sid="RE" + "1" * 32,
                       recording_url="https://api.twilio.com/x", status="completed",
                       text="a kid said he will shoot up roosevelt high on friday")
    db_session.commit()
    sig = db_session.get(TipSignature, made.tip_id)
    assert sig is not None and sig.size > 0
    tip = db_session.get(Tip, made.tip_id)
    assert sig.school_id == tip.school_id
