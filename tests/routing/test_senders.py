"""The real senders: SMTP against a real local server, Twilio against the Prism mock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response

from tests.livesupport import free_port
from tests.routing.delivery_support import SmtpSink
from tests.twilio_support import (
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    TEST_FROM_NUMBER,
    RecordingHttpClient,
    twilio_mock_url,
)
from tipline.context import Services
from tipline.routing.senders import (
    Alert,
    OutboxSender,
    PermanentSendError,
    SmtpEmailSender,
    TransientSendError,
    TwilioSmsSender,
    TwilioVoiceSender,
    build_senders,
)
from tipline.telephony.client import FakeTwilioGateway, RestTwilioGateway

__all__ = ["twilio_mock_url"]

PUBLIC = "https://tips.example.org"
ALERT_TEXT = "tipline alert T-4821-KQ: weapon, severity high, Roosevelt High School."


def _alert(channel: str, recipient: str, delivery_id: int = 41) -> Alert:
    return Alert(channel, recipient, "[tipline] high tip T-4821-KQ", ALERT_TEXT, delivery_id,
                 "4821")


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


# -- SMTP --------------------------------------------------------------------------------
def test_smtp_sender_delivers_to_a_real_server(smtp: SmtpSink) -> None:
    sender = SmtpEmailSender("127.0.0.1", smtp.port, "alerts@tips.example.org")
    ref = sender.send(None, _alert("email", "d.reyes@slps.demo.invalid"))  # type: ignore[arg-type]
    assert ref and "@" in ref
    assert len(smtp.messages) == 1
    msg = smtp.messages[0]
    assert msg["to"] == ["d.reyes@slps.demo.invalid"]
    assert msg["from"] == "alerts@tips.example.org"
    assert "Subject: [tipline] high tip T-4821-KQ" in msg["data"]
    assert ALERT_TEXT in msg["data"]


def test_smtp_refused_recipient_is_permanent(smtp: SmtpSink) -> None:
    smtp.rcpt_reply = "550 5.1.1 no such user"
    sender = SmtpEmailSender("127.0.0.1", smtp.port, "alerts@tips.example.org")
    with pytest.raises(PermanentSendError):
        sender.send(None, _alert("email", "nobody@slps.demo.invalid"))  # type: ignore[arg-type]
    assert smtp.messages == []


def test_smtp_deferred_recipient_is_transient(smtp: SmtpSink) -> None:
    smtp.rcpt_reply = "451 4.3.0 try again later"
    sender = SmtpEmailSender("127.0.0.1", smtp.port, "alerts@tips.example.org")
    with pytest.raises(TransientSendError):
        sender.send(None, _alert("email", "d.reyes@slps.demo.invalid"))  # type: ignore[arg-type]


def test_smtp_server_down_is_transient() -> None:
    sender = SmtpEmailSender("127.0.0.1", free_port(), "alerts@tips.example.org", timeout=2)
    with pytest.raises(TransientSendError):
        sender.send(None, _alert("email", "d.reyes@slps.demo.invalid"))  # type: ignore[arg-type]


# -- Twilio against the Prism mock ------------------------------------------------------
def _gateway(base: str, http: TwilioHttpClient | None = None) -> tuple[RestTwilioGateway, Any]:
    recorder = http or RecordingHttpClient()
    gw = RestTwilioGateway(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM_NUMBER, api_base=base,
                           http_client=recorder)
    return gw, recorder


def test_twilio_sms_sender_sends_text_with_status_callback(twilio_mock_url: str) -> None:
    gw, http = _gateway(twilio_mock_url)
    sid = TwilioSmsSender(gw, PUBLIC).send(None, _alert("sms", "+13145550101"))  # type: ignore[arg-type]
    assert sid.startswith("SM")
    sent = http.last()
    assert sent.method == "POST"
    assert sent.path == f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json"
    assert sent.data["To"] == "+13145550101"
    assert sent.data["From"] == TEST_FROM_NUMBER
    assert sent.data["Body"] == ALERT_TEXT
    assert sent.data["StatusCallback"] == f"{PUBLIC}/twilio/alerts/sms-status/41"


def test_twilio_voice_sender_places_call_that_fetches_alert_twiml(twilio_mock_url: str) -> None:
    gw, http = _gateway(twilio_mock_url)
    sid = TwilioVoiceSender(gw, PUBLIC).send(None, _alert("voice", "+13145550110", 7))  # type: ignore[arg-type]
    assert sid.startswith("CA")
    sent = http.last()
    assert sent.path == f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls.json"
    assert sent.data["To"] == "+13145550110"
    assert sent.data["From"] == TEST_FROM_NUMBER
    assert sent.data["Url"] == f"{PUBLIC}/twilio/alerts/call/7"
    assert sent.data["StatusCallback"] == f"{PUBLIC}/twilio/alerts/call-status/7"
    # The alert text (and so anything from the tip) is not in the call request.
    assert not any(ALERT_TEXT in str(v) for v in sent.data.values())


def test_twilio_lookups_ask_the_contract_for_one_number_from_ours(
        twilio_mock_url: str) -> None:
    """Before re-sending an alert whose outcome is unknown, the sender lists what Twilio has
    for that number from the tip line's: the requests must be valid for Twilio's contract."""
    gw, http = _gateway(twilio_mock_url)
    sms = TwilioSmsSender(gw, PUBLIC).lookup(_alert("sms", "+13145550101"))
    asked = http.last()
    assert asked.method == "GET"
    assert asked.path == f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json"
    assert asked.params["To"] == "+13145550101" and asked.params["From"] == TEST_FROM_NUMBER
    # The mock's example messages have other words: not taken for this alert.
    assert sms == []
    calls = TwilioVoiceSender(gw, PUBLIC).lookup(_alert("voice", "+13145550110"))
    asked = http.last()
    assert asked.path == f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls.json"
    assert asked.params["To"] == "+13145550110" and asked.params["From"] == TEST_FROM_NUMBER
    assert calls and all(c.ref.startswith("CA") and c.created is not None for c in calls)


def test_a_timeout_means_the_outcome_is_unknown_a_refusal_does_not() -> None:
    gw, _ = _gateway("", TimeoutHttpClient())
    with pytest.raises(TransientSendError) as timed_out:
        TwilioSmsSender(gw, PUBLIC).send(None, _alert("sms", "+13145550101"))  # type: ignore[arg-type]
    assert timed_out.value.unknown_outcome
    gw, _ = _gateway("http://127.0.0.1:9", None)  # nothing listens on the discard port
    with pytest.raises(TransientSendError) as refused:
        TwilioSmsSender(gw, PUBLIC).send(None, _alert("sms", "+13145550101"))  # type: ignore[arg-type]
    assert not refused.value.unknown_outcome


def test_twilio_500_is_transient_and_400_permanent() -> None:
    http = RecordingHttpClient()
    http.canned = [
        Response(500, '{"code": 20500, "message": "Internal Server Error", "status": 500}'),
        Response(400, '{"code": 21211, "message": "The \'To\' number is not a valid phone '
                      'number.", "more_info": "https://www.twilio.com/docs/errors/21211", '
                      '"status": 400}'),
    ]
    gw, _ = _gateway("", http)
    sender = TwilioSmsSender(gw, PUBLIC)
    with pytest.raises(TransientSendError):
        sender.send(None, _alert("sms", "+13145550101"))  # type: ignore[arg-type]
    with pytest.raises(PermanentSendError):
        sender.send(None, _alert("sms", "+1314"))  # type: ignore[arg-type]
    assert len(http.sent) == 2


class TimeoutHttpClient(TwilioHttpClient):
    """Twilio not answering in time."""

    def request(self, *args: Any, **kwargs: Any) -> Response:
        raise requests.Timeout("read timed out")


def test_twilio_timeout_is_transient() -> None:
    gw, _ = _gateway("", TimeoutHttpClient())
    with pytest.raises(TransientSendError):
        TwilioVoiceSender(gw, PUBLIC).send(None, _alert("voice", "+13145550110"))  # type: ignore[arg-type]


# -- choosing senders -------------------------------------------------------------------
def test_sender_factory_follows_settings(settings: Any) -> None:
    default = build_senders(settings)
    assert {type(s) for s in default.values()} == {OutboxSender}
    configured = settings.with_overrides(alert_sender="twilio", email_sender="smtp",
                                         smtp_host="127.0.0.1", smtp_port=2525)
    fake = FakeTwilioGateway()
    chosen = build_senders(configured, gateway=fake)
    assert isinstance(chosen["sms"], TwilioSmsSender) and chosen["sms"].gateway is fake
    assert isinstance(chosen["voice"], TwilioVoiceSender)
    assert isinstance(chosen["email"], SmtpEmailSender) and chosen["email"].port == 2525
    real = build_senders(configured.with_overrides(
        twilio_account_sid=TEST_ACCOUNT_SID, twilio_auth_token=TEST_AUTH_TOKEN,
        twilio_from_number=TEST_FROM_NUMBER))
    assert isinstance(real["sms"], TwilioSmsSender)
    assert isinstance(real["sms"].gateway, RestTwilioGateway)


def test_services_build_senders_once_per_process(settings: Any) -> None:
    svc = Services(settings=settings.with_overrides(email_sender="smtp"), db=None,  # type: ignore[arg-type]
                   vault=None, queue=None)  # type: ignore[arg-type]
    first = svc.senders()
    assert isinstance(first["email"], SmtpEmailSender)
    assert svc.senders() is first
