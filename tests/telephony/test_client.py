"""The Twilio gateway against a Prism mock of Twilio's REST contract, and the fake."""

from __future__ import annotations

import base64
import json

import pytest
from twilio.http.response import Response

from tests.telephony.conftest import MediaServer
from tests.twilio_support import (
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    TEST_FROM_NUMBER,
    RecordingHttpClient,
)
from tipline.settings import Settings
from tipline.telephony.client import (
    FakeTwilioGateway,
    RestTwilioGateway,
    TwilioPermanentError,
    TwilioTransientError,
    build_gateway,
)

ACCOUNT_PATH = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}"
MEDIA_SID = "ME" + "8b" * 16
MESSAGE_SID = "MM" + "2b" * 16
RECORDING_SID = "RE" + "6f" * 16
TRANSCRIPTION_SID = "TR" + "7a" * 16


def gateway(base: str, http: RecordingHttpClient | None = None) -> RestTwilioGateway:
    return RestTwilioGateway(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM_NUMBER,
                             api_base=base, http_client=http or RecordingHttpClient())


def test_send_sms_posts_to_messages_with_from_number(twilio_mock_url: str) -> None:
    http = RecordingHttpClient()
    sid = gateway(twilio_mock_url, http).send_sms(
        "+13145550177", "Reply from staff ✓", status_callback="https://tips.example.org/cb")
    sent = http.last()
    assert sent.method == "POST"
    assert sent.path == f"{ACCOUNT_PATH}/Messages.json"
    assert sent.data == {"To": "+13145550177", "From": TEST_FROM_NUMBER,
                         "Body": "Reply from staff ✓",
                         "StatusCallback": "https://tips.example.org/cb"}
    assert sid.startswith("SM")


def test_start_call_sends_twiml_and_status_events(twilio_mock_url: str) -> None:
    http = RecordingHttpClient()
    sid = gateway(twilio_mock_url, http).start_call(
        "+13145550177", twiml="<Response><Say>New tip</Say></Response>",
        status_callback="https://tips.example.org/status")
    sent = http.last()
    assert sent.path == f"{ACCOUNT_PATH}/Calls.json"
    assert sent.data["To"] == "+13145550177"
    assert sent.data["From"] == TEST_FROM_NUMBER
    assert sent.data["Twiml"] == "<Response><Say>New tip</Say></Response>"
    assert sent.data["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert sid.startswith("CA")


def test_start_call_needs_url_or_twiml(twilio_mock_url: str) -> None:
    with pytest.raises(ValueError, match="url or twiml"):
        gateway(twilio_mock_url).start_call("+13145550177")


def test_redact_and_deletes_hit_the_contract_paths(twilio_mock_url: str) -> None:
    http = RecordingHttpClient()
    gw = gateway(twilio_mock_url, http)
    gw.redact_message(MESSAGE_SID)
    gw.delete_message(MESSAGE_SID)
    gw.delete_media(MESSAGE_SID, MEDIA_SID)
    gw.delete_recording(RECORDING_SID)
    gw.delete_transcription(TRANSCRIPTION_SID)
    assert [(r.method, r.path) for r in http.sent] == [
        ("POST", f"{ACCOUNT_PATH}/Messages/{MESSAGE_SID}.json"),
        ("DELETE", f"{ACCOUNT_PATH}/Messages/{MESSAGE_SID}.json"),
        ("DELETE", f"{ACCOUNT_PATH}/Messages/{MESSAGE_SID}/Media/{MEDIA_SID}.json"),
        ("DELETE", f"{ACCOUNT_PATH}/Recordings/{RECORDING_SID}.json"),
        ("DELETE", f"{ACCOUNT_PATH}/Transcriptions/{TRANSCRIPTION_SID}.json"),
    ]
    assert http.sent[0].data == {"Body": ""}


def test_contract_violation_is_permanent(twilio_mock_url: str) -> None:
    # A malformed SID breaks the path pattern of the contract: Prism answers 422.
    with pytest.raises(TwilioPermanentError) as info:
        gateway(twilio_mock_url).delete_recording("not-a-sid")
    assert info.value.status == 422


def test_twilio_error_code_is_kept() -> None:
    http = RecordingHttpClient()
    http.canned.append(Response(400, json.dumps({
        "code": 21211, "message": "The 'To' number is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400})))
    with pytest.raises(TwilioPermanentError) as info:
        gateway("", http).send_sms("+1", "hi")
    assert info.value.code == 21211
    assert "+1" not in str(info.value)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_transient(status: int) -> None:
    http = RecordingHttpClient()
    http.canned.append(Response(status, json.dumps({"code": 20429, "message": "x",
                                                    "status": status})))
    with pytest.raises(TwilioTransientError):
        gateway("", http).send_sms("+13145550177", "hi")


def test_connection_refused_is_transient() -> None:
    with pytest.raises(TwilioTransientError):
        gateway("http://127.0.0.1:9").send_sms("+13145550177", "hi")


def test_delete_of_missing_resource_counts_as_done() -> None:
    http = RecordingHttpClient()
    http.canned.append(Response(404, json.dumps({"code": 20404, "message": "not found",
                                                 "status": 404})))
    gateway("", http).delete_recording(RECORDING_SID)
    assert http.last().method == "DELETE"


def test_fetch_media_uses_account_basic_auth(media_server: MediaServer) -> None:
    url = media_server.add("/media/ME1", b"\xff\xd8jpegbytes", "image/jpeg; charset=binary")
    data, ctype = gateway("").fetch_media(url)
    assert (data, ctype) == (b"\xff\xd8jpegbytes", "image/jpeg")
    expected = "Basic " + base64.b64encode(
        f"{TEST_ACCOUNT_SID}:{TEST_AUTH_TOKEN}".encode()).decode()
    assert media_server.requests == [("/media/ME1", expected)]


def test_fetch_media_redirect_to_storage_drops_credentials(media_server: MediaServer) -> None:
    # Twilio redirects media downloads to its storage host; the auth token must not follow.
    other_host = media_server.base_url.replace("127.0.0.1", "localhost")
    media_server.add("/s3/object", b"PNGDATA", "image/png")
    media_server.redirects["/media/ME2"] = other_host + "/s3/object"
    data, ctype = gateway("").fetch_media(media_server.base_url + "/media/ME2")
    assert (data, ctype) == (b"PNGDATA", "image/png")
    assert media_server.requests[0][1] is not None
    assert media_server.requests[1] == ("/s3/object", None)


def test_fetch_errors_are_classified(media_server: MediaServer) -> None:
    media_server.fail_with["/gone"] = 404
    media_server.fail_with["/busy"] = 503
    gw = gateway("")
    with pytest.raises(TwilioPermanentError):
        gw.fetch_media(media_server.base_url + "/gone")
    with pytest.raises(TwilioTransientError):
        gw.fetch_recording(media_server.base_url + "/busy")


def test_fetch_recording_from_api_host_is_rebased_and_asks_for_mp3(
        media_server: MediaServer) -> None:
    path = f"{ACCOUNT_PATH}/Recordings/{RECORDING_SID}.mp3"
    media_server.add(path, b"ID3audio", "audio/mpeg")
    url = f"https://api.twilio.com{ACCOUNT_PATH}/Recordings/{RECORDING_SID}"
    data, ctype = gateway(media_server.base_url).fetch_recording(url)
    assert (data, ctype) == (b"ID3audio", "audio/mpeg")
    assert media_server.requests[0][0] == path


def test_fake_records_and_fails_once() -> None:
    fake = FakeTwilioGateway()
    fake.fail_next = TwilioTransientError("down")
    with pytest.raises(TwilioTransientError):
        fake.send_sms("+13145550177", "one")
    sid = fake.send_sms("+13145550177", "two")
    fake.delete_recording(RECORDING_SID)
    assert [m["body"] for m in fake.sent] == ["two"]
    assert sid.startswith("SM")
    assert fake.deleted == [("recording", RECORDING_SID)]


def test_build_gateway_picks_real_only_when_configured() -> None:
    assert isinstance(build_gateway(Settings()), FakeTwilioGateway)
    partial = Settings(twilio_account_sid=TEST_ACCOUNT_SID, twilio_auth_token=TEST_AUTH_TOKEN)
    assert isinstance(build_gateway(partial), FakeTwilioGateway)
    full = Settings(twilio_account_sid=TEST_ACCOUNT_SID, twilio_auth_token=TEST_AUTH_TOKEN,
                    twilio_from_number=TEST_FROM_NUMBER, twilio_api_base="http://127.0.0.1:1")
    gw = build_gateway(full)
    assert isinstance(gw, RestTwilioGateway)
    assert gw.api_base == "http://127.0.0.1:1"


def sdk_session(gw: RestTwilioGateway):
    http = gw.client.http_client
    inner = getattr(http, "inner", http)
    return inner, inner.session


def test_the_sdk_session_reads_proxy_and_ca_settings_once(monkeypatch, tmp_path) -> None:
    """requests would re-read the environment on every send; the gateway reads it when built,
    so a district's proxy and CA bundle still apply, and the pool fits a surge's threads."""
    bundle = tmp_path / "district-ca.pem"
    bundle.write_text("not read until a TLS connection is made\n")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.district.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    gw = RestTwilioGateway(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM_NUMBER)
    inner, session = sdk_session(gw)
    assert session.trust_env is False
    assert inner.proxy.get("https") == "http://proxy.district.example:3128"
    assert session.verify == str(bundle)
    adapter = session.get_adapter("https://api.twilio.com/2010-04-01")
    assert adapter._pool_maxsize >= 64

    monkeypatch.setenv("NO_PROXY", "api.twilio.com")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    inner, session = sdk_session(RestTwilioGateway(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN,
                                                   TEST_FROM_NUMBER))
    assert not inner.proxy and session.verify is True


def test_a_gateway_with_its_own_session_sends_to_the_contract(twilio_mock_url: str) -> None:
    gw = RestTwilioGateway(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM_NUMBER,
                           api_base=twilio_mock_url)
    assert gw.send_sms("+13145550177", "alert").startswith("SM")
    assert gw.start_call("+13145550177", url="https://tips.example.org/twilio/alerts/call/1"
                         ).startswith("CA")
