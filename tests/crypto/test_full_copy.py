"""The full copy (issue 13): after tips by web, SMS, MMS and voice, a copy of the database, the
key file, the data directory and what went to the broker opens no tip text, phone number,
attachment or transcript by any way the server itself has; a signed-in staff member of the
right district reads all of it, another district's staff member none, and the district's
recovery key restores access after everyone lost theirs."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import LargeBinary, String, Text, select
from sqlalchemy.orm import Session

from tests.intake.helpers import post_tip
from tests.staffsupport import make_staff, sign_in
from tests.telephony.conftest import tw_app as tw_app
from tests.telephony.conftest import tw_client as tw_client
from tests.telephony.conftest import tw_settings as tw_settings
from tests.telephony.helpers import ACCOUNT, CALLER, REPORTER, new_sid, run_all, send_sms
from tests.twilio_support import signed_post, webhook_example
from tipline.accounts import keys
from tipline.accounts import services as accounts
from tipline.crypto import CryptoError, Keychain, Vault, reporter_recipient, using
from tipline.crypto.models import KeySession, StaffKey
from tipline.db import Base, utcnow
from tipline.telephony.client import FakeTwilioGateway
from tipline.telephony.voice import voice_code
from tipline.tips.models import Attachment, DataKey, Message, Note, Tip

WEB = "ZEBRAWEB a boy said he will bring a knife to Roosevelt on Friday"
WEB_WHERE = "QUOKKAPLACE behind the gym"
SMS = "OCELOTSMS there will be a fight at Roosevelt high after school"
MMS = "NARWHALMMS look at this picture from Roosevelt"
VOICE = "PANGOLINVOICE someone has a gun at roosevelt high school"
AUDIO = b"ID3\x04\x00PANGOLINAUDIO" * 40
NEEDLES_TEXT = ["ZEBRAWEB", "QUOKKAPLACE", "OCELOTSMS", "NARWHALMMS", "PANGOLINVOICE"]
PHONES = [REPORTER, REPORTER.lstrip("+"), REPORTER[2:], CALLER, CALLER.lstrip("+"), CALLER[2:]]


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (12, 200, 90)).save(out, "JPEG", quality=90)
    return out.getvalue()


def _mms(client: Any, gateway: FakeTwilioGateway, photo: bytes) -> None:
    sid = new_sid("MM")
    params = webhook_example("sms_inbound", "example_mms", From=REPORTER, Body=MMS,
                             MessageSid=sid, SmsSid=sid, SmsMessageSid=sid, NumMedia="1")
    url = f"https://api.twilio.com{ACCOUNT}/Messages/{sid}/Media/{new_sid('ME')}"
    gateway.media[url] = (photo, "image/jpeg")
    params.update({"MediaUrl0": url, "MediaContentType0": "image/jpeg"})
    assert signed_post(client, "/twilio/sms", params).status_code == 200


def _voice(client: Any, gateway: FakeTwilioGateway) -> str:
    call, rec = new_sid("CA"), new_sid("RE")
    url = f"https://api.twilio.com{ACCOUNT}/Recordings/{rec}"
    gateway.media[url] = (AUDIO, "audio/mpeg")
    gateway.media[url + ".mp3"] = (AUDIO, "audio/mpeg")
    base = {"CallSid": call, "RecordingSid": rec, "RecordingUrl": url}
    params = webhook_example("voice_record_action", **base)
    params.update({"From": CALLER, "Caller": CALLER})
    assert signed_post(client, "/twilio/voice/recorded?lang=en", params).status_code == 200
    params = webhook_example("voice_recording_status_callback", RecordingStatus="completed",
                             **base)
    assert signed_post(client, "/twilio/voice/recording-status", params).status_code == 204
    params = webhook_example("voice_transcription_callback", TranscriptionSid=new_sid("TR"),
                             TranscriptionText=VOICE, TranscriptionStatus="completed", **base)
    params.update({"From": CALLER, "Caller": CALLER})
    assert signed_post(client, "/twilio/voice/transcription", params).status_code == 204
    return call


def _all_bytes(session: Session) -> bytes:
    """Every text and binary value of every table: the database copy."""
    chunks: list[bytes] = []
    for table in Base.metadata.sorted_tables:
        cols = [c for c in table.columns if isinstance(c.type, (String, Text, LargeBinary))]
        if not cols:
            continue
        for row in session.execute(select(*cols)):
            for value in row:
                if isinstance(value, bytes):
                    chunks.append(value)
                elif isinstance(value, str):
                    chunks.append(value.encode())
    return b"\n".join(chunks)


def _files(root: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def _contents(session: Session) -> dict[str, Any]:
    """Everything a reader reads, through the model properties (raises without the keys)."""
    out: dict[str, Any] = {}
    for tip in session.execute(select(Tip).order_by(Tip.id)).scalars():
        out[f"{tip.reference}/details"] = tip.details_json
        out[f"{tip.reference}/phone"] = tip.phone
        for m in tip.messages:
            out[f"{tip.reference}/message/{m.id}"] = m.body
        for a in tip.attachments:
            out[f"{tip.reference}/attachment/{a.id}"] = a.data
            out[f"{tip.reference}/transcript/{a.id}"] = a.transcript
        for n in session.execute(select(Note).where(Note.tip_id == tip.id)).scalars():
            out[f"{tip.reference}/note/{n.id}"] = n.body
    return out


def _readable(session: Session, chain: Keychain) -> dict[str, bool]:
    """Which content fields open with ``chain`` (and the key file, always installed)."""
    result = {}
    session.expire_all()
    with using(chain):
        for tip in session.execute(select(Tip).order_by(Tip.id)).scalars():
            fields = [("details", lambda t=tip: t.details_json), ("phone", lambda t=tip: t.phone)]
            fields += [(f"message/{m.id}", lambda m=m: m.body) for m in tip.messages]
            fields += [(f"attachment/{a.id}", lambda a=a: a.data) for a in tip.attachments]
            fields += [(f"transcript/{a.id}", lambda a=a: a.transcript) for a in tip.attachments]
            for name, read in fields:
                try:
                    value = read()
                except CryptoError:
                    result[f"{tip.reference}/{name}"] = False
                else:
                    if value is not None:  # an empty field has nothing to open
                        result[f"{tip.reference}/{name}"] = True
    return result


@pytest.fixture
def gateway() -> FakeTwilioGateway:
    return FakeTwilioGateway()


def test_a_full_copy_of_the_server_reads_no_tip(tw_app: Any, tw_client: Any, db_session: Session,
                                                 vault: Vault, queue: Any, demo_directory: Any,
                                                 gateway: FakeTwilioGateway, settings: Any,
                                                 keyring: Any) -> None:
    admin, password, secret = make_staff(db_session, vault, "district_admin", district="slps")
    county, county_pw, _ = make_staff(db_session, vault, "district_admin",
                                      district="stlco-demo")
    db_session.commit()

    # -- tips arrive by every channel -----------------------------------------------------
    assert post_tip(tw_client, body=WEB, where=WEB_WHERE).status_code == 200
    assert send_sms(tw_client, SMS).status_code == 200
    _mms(tw_client, gateway, _jpeg())
    call = _voice(tw_client, gateway)
    run_all(db_session, vault, gateway, queue)
    db_session.commit()
    tips = db_session.execute(select(Tip).order_by(Tip.id)).scalars().all()
    assert {t.channel for t in tips} == {"web", "sms", "voice"}
    assert db_session.execute(select(Attachment)).scalars().all(), "no attachment taken in"

    # A signed-in session exists while the copy is taken (its cookie is in the browser).
    staff_client = tw_app.test_client()
    sign_in(staff_client, admin.email, password, secret)
    assert db_session.execute(select(KeySession)).scalars().all()

    # -- the copy: database, data directory (with the key file), the broker's messages ------
    db_session.expire_all()
    copy = _all_bytes(db_session) + _files(Path(settings.data_dir)) + \
        repr(queue.sent).encode()
    for needle in NEEDLES_TEXT + PHONES:
        assert needle.encode() not in copy, f"{needle} is in the copy in clear"
    assert b"PANGOLINAUDIO" not in copy

    # -- every way the server itself has -----------------------------------------------------
    server = Keychain()
    # the voice caller's code is computable from the call SID and the key file: its key too
    for tip in tips:
        if tip.external_id:
            code = voice_code(vault, tip.external_id)
            recipient, private = reporter_recipient(code, tip.uid)
            server.add(recipient.rid, private)
    # key-file material tried as staff passwords (personal keys are under passwords only)
    guesses = [base64.b64encode(k).decode() for k in keyring.keks.values()]
    guesses += [base64.b64encode(keyring.lookup_secret).decode(), keyring.secret_key]
    for row in db_session.execute(select(StaffKey)).scalars():
        user = db_session.get(accounts.StaffUser, row.user_id)
        for guess in guesses:
            assert keys.unlock_personal_key(db_session, user, guess) is None
    # a signed-in session's key row, without the key its cookie carries
    for ks in db_session.execute(select(KeySession)).scalars():
        for guess_key in [*keyring.keks.values(), keyring.lookup_secret]:
            handle = keys.SessionKeys(ks.sid, guess_key)
            assert keys.session_personal_key(db_session, handle, ks.user_id, utcnow()) is None
    # the key file alone opens no tip data key (staff accounts' TOTP keys it does open)
    tip_keys = {t.data_key_id for t in tips}
    for row in db_session.execute(select(DataKey)).scalars():
        if row.id in tip_keys:
            with pytest.raises(CryptoError):
                vault.unwrap(row.wrapped())
    opened = _readable(db_session, server)
    assert opened and not any(opened.values()), \
        f"the server opens {[k for k, v in opened.items() if v]}"

    # -- the right district's staff member reads all of it --------------------------------
    page = staff_client.get(f"/staff/tips/{tips[0].uid}").get_data(as_text=True)
    assert "ZEBRAWEB" in page
    mine = keys.keychain_for(db_session, admin.id,
                             keys.unlock_personal_key(db_session, admin, password))
    readable = _readable(db_session, mine)
    assert all(readable.values()), [k for k, v in readable.items() if not v]
    with using(mine):
        text = repr(_contents(db_session))
    for needle in NEEDLES_TEXT:
        assert needle in text
    assert REPORTER in text

    # -- another district's staff member reads none ---------------------------------------
    theirs = keys.keychain_for(db_session, county.id,
                               keys.unlock_personal_key(db_session, county, county_pw))
    slps_refs = {t.reference for t in tips if t.district_id == admin.district_id}
    assert len(slps_refs) == len(tips)  # every tip named Roosevelt (SLPS)
    other = {k: v for k, v in _readable(db_session, theirs).items()
             if k.split("/")[0] in slps_refs}
    assert other and not any(other.values()), [k for k, v in other.items() if v]

    # -- sign-out: the session's keys are gone from the server ----------------------------
    from tests.staffsupport import csrf_token

    staff_client.post("/staff/logout",
                      data={"csrf_token": csrf_token(staff_client, "/staff/account")})
    db_session.expire_all()
    assert not db_session.execute(select(KeySession).where(
        KeySession.user_id == admin.id)).scalars().all()

    # -- recovery restores access after everyone lost theirs -------------------------------
    recovery = keys.recovery_init(db_session, admin.district_id, mine)
    one_time = accounts.reset_credentials(admin, now=utcnow())
    fresh = keys.unlock_or_create(db_session, admin, one_time)
    lost = _readable(db_session, keys.keychain_for(db_session, admin.id, fresh))
    assert not any(v for k, v in lost.items() if k.split("/")[0] in slps_refs)
    with pytest.raises(keys.KeyAccessError):  # not onto a key under the one-time password
        keys.recover(db_session, admin.district_id, recovery, admin)
    accounts.change_password(db_session, admin, one_time, "a passphrase of my own 1",
                             now=utcnow())
    fresh = keys.unlock_personal_key(db_session, admin, "a passphrase of my own 1")
    assert fresh is not None
    keys.recover(db_session, admin.district_id, recovery, admin)
    back = _readable(db_session, keys.keychain_for(db_session, admin.id, fresh))
    assert all(v for k, v in back.items() if k.split("/")[0] in slps_refs)
    assert call  # the voice tip was part of all of the above
    assert Message  # (imported for the model registry the properties use)
