"""Helpers for the telephony tests: send signed SMS/voice webhooks, read TwiML, count rows."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.twilio_support import signed_post, webhook_example
from tipline.telephony.models import InboundEvent, SmsConversation, TelephonyTask
from tipline.tips.models import Attachment, Message, Tip

REPORTER = "+13145550188"
OTHER_REPORTER = "+13145550199"
CALLER = "+13145550177"
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
