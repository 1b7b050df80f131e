"""Twilio callbacks for OUTBOUND alerts: the alert call's script, its keypress, and the
status callbacks of alert texts and calls.

Every route checks Twilio's signature (``twilio_signed``) and is exempt from CSRF (Twilio
cannot send a token). The call says category, severity, school and reference only: never
what the tip says, since anyone near the phone may hear it.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, request
from twilio.twiml.voice_response import VoiceResponse

from tipline.db import utcnow
from tipline.directory.models import Contact
from tipline.directory.partners import school_shown
from tipline.routing.ack import acknowledge_dispatch
from tipline.routing.models import AlertDelivery, DispatchStatus
from tipline.routing.senders import alert_callback_url
from tipline.routing.services import record_provider_status, voice_script
from tipline.telephony.signature import twilio_signed
from tipline.telephony.views import limit_webhook_size
from tipline.web import db_session, services

bp = Blueprint("routing_alerts", __name__, url_prefix="/twilio/alerts")

_OPEN = (DispatchStatus.ACTIVE.value, DispatchStatus.EXPIRED.value)
# Twilio's limit on a webhook's body here too: a forged one is not parsed past 256 KiB.
bp.before_request(limit_webhook_size)


def register(app: Flask) -> None:
    from tipline.app import csrf

    csrf.exempt(bp)
    app.register_blueprint(bp)


def _twiml(resp: VoiceResponse) -> Response:
    return Response(str(resp), mimetype="text/xml")


def _delivery(delivery_id: int, sid_field: str) -> AlertDelivery | None:
    """The delivery named in the URL, if the callback's SID is the one we got for it."""
    dl = db_session().get(AlertDelivery, delivery_id)
    if dl is None:
        return None
    sid = request.form.get(sid_field, "")
    if dl.provider_ref and sid and sid != dl.provider_ref:
        return None
    return dl


@bp.post("/call/<int:delivery_id>")
@twilio_signed
def call(delivery_id: int) -> Response:
    """The alert call's TwiML: who it is about, and press 1 to acknowledge."""
    resp = VoiceResponse()
    dl = _delivery(delivery_id, "CallSid")
    if dl is None:
        resp.say("This alert is not known. Goodbye.")
        resp.hangup()
        return _twiml(resp)
    dispatch = dl.dispatch
    if dispatch.status == DispatchStatus.NOTICE.value:  # routing.notices: nothing to press
        ref = " ".join(dispatch.job.tip.reference.replace("-", ""))
        resp.say(f"This is the tip line. There is a new message from the reporter on tip "
                 f"reference {ref}. Open the dashboard to read it. Goodbye.")
        resp.hangup()
        return _twiml(resp)
    if dispatch.status not in _OPEN:
        resp.say("This tip line alert has already been acknowledged. Thank you. Goodbye.")
        resp.hangup()
        return _twiml(resp)
    tip = dispatch.job.tip
    contact = db_session().get(Contact, dispatch.contact_id)
    school = school_shown(contact.kind if contact else None,
                          contact.agreement if contact else None,
                          tip.school.name if tip.school else None)
    script = voice_script(tip, school)
    action = alert_callback_url(services().settings.public_url, "call", delivery_id) + "/gather"
    gather = resp.gather(num_digits=1, action=action, method="POST", timeout=8)
    gather.say(script)
    gather.pause(length=1)
    gather.say(script)
    resp.say("No key was pressed. The alert stays open. Acknowledge it in the dashboard, "
             "or reply to the text message. Goodbye.")
    resp.hangup()
    return _twiml(resp)


@bp.post("/call/<int:delivery_id>/gather")
@twilio_signed
def gather(delivery_id: int) -> Response:
    """The keypress on the alert call: 1 acknowledges."""
    resp = VoiceResponse()
    dl = _delivery(delivery_id, "CallSid")
    if dl is None:
        resp.say("This alert is not known. Goodbye.")
        resp.hangup()
        return _twiml(resp)
    digits = request.form.get("Digits", "").strip()
    if digits != "1":
        resp.say("To acknowledge, press 1.")
        resp.redirect(alert_callback_url(services().settings.public_url, "call", delivery_id),
                      method="POST")
        return _twiml(resp)
    session = db_session()
    if acknowledge_dispatch(session, dl.dispatch_id, via="voice", now=utcnow()):
        session.commit()
        resp.say("Acknowledged. Thank you. Open the dashboard for the details. Goodbye.")
    else:
        session.rollback()
        resp.say("This alert was already acknowledged. Thank you. Goodbye.")
    resp.hangup()
    return _twiml(resp)


def _status(delivery_id: int, sid_field: str, status_field: str) -> Response:
    sid = request.form.get(sid_field, "")[:64]
    status = request.form.get(status_field, "")
    svc = services()
    record_provider_status(db_session(), delivery_id, sid or None, status, svc.queue, utcnow())
    return Response("", status=204)


@bp.post("/sms-status/<int:delivery_id>")
@twilio_signed
def sms_status(delivery_id: int) -> Response:
    """Message status callback: delivered, or undelivered/failed (then the next channel)."""
    return _status(delivery_id, "MessageSid", "MessageStatus")


@bp.post("/call-status/<int:delivery_id>")
@twilio_signed
def call_status(delivery_id: int) -> Response:
    """Call status callback: completed, or busy/no-answer/failed (then the next channel)."""
    return _status(delivery_id, "CallSid", "CallStatus")
