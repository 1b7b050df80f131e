"""Helpers for the telephony tests: send signed SMS/voice webhooks, read TwiML, count rows."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.twilio_support import TEST_ACCOUNT_SID, signed_post, webhook_example
from tipline.db import utcnow
from tipline.telephony import media
from tipline.telephony.models import InboundEvent, SmsConversation, TelephonyTask
from tipline.tips.models import Attachment, Message, Tip

if TYPE_CHECKING:
    from tests.telephony.conftest import MediaServer

REPORTER = "+13145550188"
OTHER_REPORTER = "+13145550199"
CALLER = "+13145550177"
ACCOUNT = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}"
_ids = itertools.count(1)


def new_sid(prefix: str) -> str:
    return f"{prefix}{next(_ids):032x}"


def sms_params(body: str, frm: str = REPORTER, sid: str | None = None,
               **extra: str) -> dict[str, str]:
    sid = sid or new_sid("SM")
    return webhook_example("sms_inbound", From=frm, Body=body, MessageSid=sid, SmsSid=sid,
                           SmsMessageSid=sid, **extra)


def send_sms(client: Any, body: str, frm: str = REPORTER, sid: str | None = None,
             **extra: str) -> Any:
    return signed_post(client, "/twilio/sms", sms_params(body, frm, sid, **extra))


def reply_text(resp: Any) -> str | None:
    """The text of the TwiML <Message>, or None when the reply is empty."""
    assert resp.status_code == 200, resp.status_code
    assert resp.content_type.startswith("text/xml")
    root = ET.fromstring(resp.get_data(as_text=True))  # noqa: S314 - our own TwiML
    assert root.tag == "Response"
    msgs = root.findall("Message")
    return msgs[0].text if msgs else None


def twiml(resp: Any) -> ET.Element:
    assert resp.status_code == 200, resp.status_code
    root = ET.fromstring(resp.get_data(as_text=True))  # noqa: S314 - our own TwiML
    assert root.tag == "Response"
    return root


def said(root: ET.Element) -> str:
    return " ".join(el.text or "" for el in root.iter("Say"))


def voice_params(kind: str, call_sid: str, **extra: str) -> dict[str, str]:
    params = webhook_example(kind, CallSid=call_sid, **extra)
    if "From" in params:
        params.update({"From": CALLER, "Caller": CALLER})
    return params


def count(session: Session, model: Any) -> int:
    return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def counts(session: Session) -> dict[str, int]:
    return {m.__name__: count(session, m) for m in
            (Tip, Message, Attachment, InboundEvent, SmsConversation, TelephonyTask)}


def tip_messages(session: Session, tip_id: int) -> list[str]:
    rows = session.execute(select(Message).where(Message.tip_id == tip_id)
                           .order_by(Message.id)).scalars().all()
    return [m.body for m in rows]


def send_mms(client, server: MediaServer, items: list[tuple[bytes, str]], body: str = "",
             sid: str | None = None, frm: str = REPORTER):
    sid = sid or new_sid("MM")
    params = webhook_example("sms_inbound", "example_mms", From=frm, Body=body,
                             MessageSid=sid, SmsSid=sid, SmsMessageSid=sid,
                             NumMedia=str(len(items)))
    params.pop("MediaUrl0", None)
    params.pop("MediaContentType0", None)
    for i, (data, ctype) in enumerate(items):
        media_sid = new_sid("ME")
        params[f"MediaUrl{i}"] = server.add(f"{ACCOUNT}/Messages/{sid}/Media/{media_sid}",
                                            data, ctype)
        params[f"MediaContentType{i}"] = ctype
    resp = signed_post(client, "/twilio/sms", params)
    assert resp.status_code == 200
    return sid


def run_all(db_session, vault, gateway, queue) -> list[str]:
    """Run every telephony task the queue was asked to send, in order, like a worker."""
    results = []
    done: set[int] = set()
    while True:
        ids = [args[0] for name, args in queue.sent
               if name == "tipline.telephony_task" and args[0] not in done]
        if not ids:
            return results
        for task_id in ids:
            done.add(task_id)
            results.append(media.run_task(db_session, vault, gateway, queue, task_id, utcnow()))


def staff_reply(db_session, tip: Tip, text: str) -> Message:
    with db_session.no_autoflush:
        msg = Message(tip_id=tip.id, author="staff", channel="sms", relay_status="pending")
        msg.tip = tip
        msg.body = text
    db_session.add(msg)
    db_session.commit()
    return msg


def sweep_and_run(db_session: Session, vault: Any, gateway: Any, queue: Any,
                  seconds: float = 45) -> list[str]:
    """Run the telephony sweep ``seconds`` from now, then every task it sent."""
    from datetime import timedelta

    queue.sent.clear()
    media.sweep(db_session, queue, utcnow() + timedelta(seconds=seconds), timedelta(seconds=20))
    return run_all(db_session, vault, gateway, queue)
