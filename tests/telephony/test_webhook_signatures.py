"""Every Twilio webhook is refused (403, nothing stored) unless signed exactly as Twilio signs."""

from __future__ import annotations

import pytest

from tests.telephony.helpers import counts, new_sid, sms_params, voice_params
from tests.twilio_support import TEST_AUTH_TOKEN, sign, signed_post, webhook_example

ROUTES = [
    ("/twilio/sms", lambda: sms_params("there is a knife in a locker at vashon")),
    ("/twilio/sms/status", lambda: webhook_example("sms_status_callback")),
    ("/twilio/voice", lambda: voice_params("voice_inbound", new_sid("CA"))),
    ("/twilio/voice/language", lambda: voice_params("voice_gather_action", new_sid("CA"))),
    ("/twilio/voice/recorded", lambda: voice_params("voice_record_action", new_sid("CA"))),
    ("/twilio/voice/recording-status",
     lambda: webhook_example("voice_recording_status_callback", CallSid=new_sid("CA"))),
    ("/twilio/voice/transcription",
     lambda: voice_params("voice_transcription_callback", new_sid("CA"))),
]


@pytest.mark.parametrize(("path", "params"), ROUTES, ids=[r[0] for r in ROUTES])
def test_signed_request_is_accepted(tw_client, db_session, demo_directory, path,
                                    params) -> None:
    resp = signed_post(tw_client, path, params())
    assert resp.status_code in (200, 204)


@pytest.mark.parametrize(("path", "params"), ROUTES, ids=[r[0] for r in ROUTES])
def test_unsigned_forged_and_tampered_requests_get_403_and_store_nothing(
        tw_client, db_session, demo_directory, path, params) -> None:
    before = counts(db_session)
    body = params()
    url = "https://tips.example.org" + path
    good = sign(url, body, TEST_AUTH_TOKEN)
    attempts = [
        {},  # unsigned
        {"X-Twilio-Signature": ""},
        {"X-Twilio-Signature": sign(url, body, "some-other-token")},  # forged
        {"X-Twilio-Signature": sign("http://tips.example.org" + path, body, TEST_AUTH_TOKEN)},
        {"X-Twilio-Signature": sign("https://tips.example.org/twilio/other", body,
                                    TEST_AUTH_TOKEN)},
    ]
    for headers in attempts:
        assert tw_client.post(path, data=body, headers=headers).status_code == 403
    tampered = {**body, next(iter(body)): "changed"}
    assert tw_client.post(path, data=tampered,
                          headers={"X-Twilio-Signature": good}).status_code == 403
    added = {**body, "Extra": "1"}
    assert tw_client.post(path, data=added,
                          headers={"X-Twilio-Signature": good}).status_code == 403
    assert counts(db_session) == before


def test_no_auth_token_configured_refuses_everything(client, db_session) -> None:
    # The default test app has no TWILIO_AUTH_TOKEN: even a "valid" signature cannot verify.
    resp = signed_post(client, "/twilio/sms", sms_params("hello"))
    assert resp.status_code == 403


def test_unknown_parameters_are_signed_over_and_ignored(tw_client, db_session,
                                                        demo_directory) -> None:
    params = sms_params("someone has a gun at roosevelt", NewTwilioField="x",
                        AddOns='{"status":"successful"}')
    resp = signed_post(tw_client, "/twilio/sms", params)
    assert resp.status_code == 200
    assert counts(db_session)["Tip"] == 1


def test_url_twilio_called_is_rebuilt_from_public_url_behind_a_proxy(
        tw_client, db_session, demo_directory) -> None:
    # The proxy forwards to http://internal:8000; Twilio signed https://tips.example.org/...
    params = sms_params("fight planned at vashon")
    sig = sign("https://tips.example.org/twilio/sms", params, TEST_AUTH_TOKEN)
    resp = tw_client.post("/twilio/sms", data=params, base_url="http://internal:8000",
                          headers={"X-Twilio-Signature": sig, "X-Forwarded-Proto": "http"})
    assert resp.status_code == 200


def test_query_string_is_part_of_the_signed_url(tw_client, db_session) -> None:
    params = voice_params("voice_record_action", new_sid("CA"))
    path = "/twilio/voice/recorded?lang=es"
    assert signed_post(tw_client, path, params).status_code == 200
    sig = sign("https://tips.example.org/twilio/voice/recorded", params, TEST_AUTH_TOKEN)
    resp = tw_client.post(path, data=params, headers={"X-Twilio-Signature": sig})
    assert resp.status_code == 403


def test_oversized_webhook_bodies_are_refused_before_anything_is_stored(
        tw_client, db_session, demo_directory) -> None:
    from tipline.telephony.views import MAX_WEBHOOK_BYTES

    before = counts(db_session)
    big = sms_params("x" * MAX_WEBHOOK_BYTES)  # signed like Twilio, but no text is this long
    assert signed_post(tw_client, "/twilio/sms", big).status_code == 413
    forged = tw_client.post("/twilio/voice", data={"CallSid": "x" * MAX_WEBHOOK_BYTES},
                            headers={"X-Twilio-Signature": "forged"})
    assert forged.status_code == 413  # refused before the form is parsed for the check
    assert counts(db_session) == before
    assert signed_post(tw_client, "/twilio/sms", sms_params("k" * 1600)).status_code == 200


def test_every_telephony_route_refuses_an_unsigned_request(tw_app, tw_client,
                                                           db_session) -> None:
    # Catches a route added later without ``twilio_signed`` (ROUTES above is a hand list).
    rules = [r for r in tw_app.url_map.iter_rules() if r.endpoint.startswith("telephony.")]
    assert {r.rule for r in rules} >= {path for path, _ in ROUTES}
    before = counts(db_session)
    for rule in rules:
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            resp = tw_client.open(rule.rule, method=method, data={"From": "+13145550188"})
            assert resp.status_code == 403, (rule.rule, method)
    assert counts(db_session) == before


@pytest.mark.parametrize(("path", "params"), ROUTES, ids=[r[0] for r in ROUTES])
def test_a_repeated_field_is_checked_like_any_other(tw_client, db_session, demo_directory, path,
                                                    params) -> None:
    """Twilio signs each value of a repeated parameter; a forged request that repeats one is
    refused with 403 (it used to crash the signature check), a signed one is accepted."""
    from twilio.request_validator import RequestValidator
    from werkzeug.datastructures import MultiDict

    body = MultiDict([*params().items(), ("Extra", "1"), ("Extra", "2")])
    before = counts(db_session)
    assert tw_client.post(path, data=body).status_code == 403
    assert tw_client.post(path, data=body,
                          headers={"X-Twilio-Signature": "bm9wZQ=="}).status_code == 403
    assert counts(db_session) == before
    good = RequestValidator(TEST_AUTH_TOKEN).compute_signature(
        "https://tips.example.org" + path, body)
    resp = tw_client.post(path, data=body, headers={"X-Twilio-Signature": good})
    assert resp.status_code in (200, 204)


def test_a_multipart_field_without_a_name_is_refused_not_crashed(tw_client, db_session) -> None:
    """A name ending in a backslash (Werkzeug's parser read it as a field named None; the
    app's parser reads it as written): the forged signature is refused, nothing crashes."""
    import io

    for path in ("/twilio/sms", "/twilio/alerts/call-status/1"):
        resp = tw_client.post(path, content_type="multipart/form-data", data={
            "a\\": "x", "Body": "hi", "f": (io.BytesIO(b"z"), "f.png")},
            headers={"X-Twilio-Signature": "bm9wZQ=="})
        assert resp.status_code == 403, path
