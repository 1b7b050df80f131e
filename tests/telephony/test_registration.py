"""`tipline twilio check` reads A2P registration through Twilio's Messaging v1 API.

Against Prism running Twilio's own Messaging v1 contract (trimmed, see
``tests/telephony/twilio_messaging_v1.trimmed.json``): the requests must be valid for the
contract, and the answers are the contract's examples (a service with sticky sender on, one
pool number ``+987654321``, one campaign ``PENDING``; one toll-free verification for
``+18003334444``, ``TWILIO_APPROVED``).
"""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner

from tests.twilio_support import (
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    RecordingHttpClient,
    twilio_messaging_mock_url,
)
from tipline.cli import main
from tipline.settings import Settings
from tipline.telephony.cli import check_lines, registration
from tipline.telephony.registration import is_toll_free, messaging_client

__all__ = ["twilio_messaging_mock_url"]

SERVICE = "MG" + "a" * 32


def _settings(**over: Any) -> Settings:
    base: dict[str, Any] = {"public_url": "https://tips.example.org",
                            "twilio_account_sid": TEST_ACCOUNT_SID,
                            "twilio_auth_token": TEST_AUTH_TOKEN,
                            "twilio_from_number": "+13145550100"}
    return Settings(**(base | over))


def _client(settings: Settings, url: str) -> tuple[Any, RecordingHttpClient]:
    http = RecordingHttpClient()
    return messaging_client(settings, url, http_client=http), http


def test_a_service_whose_campaign_is_pending_is_a_problem(twilio_messaging_mock_url: str
                                                          ) -> None:
    settings = _settings(twilio_messaging_service_sid=SERVICE)
    client, http = _client(settings, twilio_messaging_mock_url)
    lines, problems = registration(settings, client)
    paths = [r.path for r in http.sent]
    assert f"/v1/Services/{SERVICE}" in paths
    assert f"/v1/Services/{SERVICE}/PhoneNumbers" in paths
    assert f"/v1/Services/{SERVICE}/Compliance/Usa2p" in paths
    out = "\n".join(lines)
    assert "sticky sender on" in out and "status PENDING" in out
    joined = "\n".join(problems)
    assert "no A2P 10DLC campaign of the Messaging Service is approved" in joined
    # The example pool has one number, which is not the configured from-number.
    assert "is not in the Messaging Service's sender pool" in joined


def test_a_local_number_without_a_messaging_service_cannot_be_registered(
        twilio_messaging_mock_url: str) -> None:
    settings = _settings()
    client, http = _client(settings, twilio_messaging_mock_url)
    _lines, problems = registration(settings, client)
    assert http.sent == []  # nothing to ask: a 10DLC campaign needs a Messaging Service
    assert any("A2P 10DLC campaign" in p and "MESSAGING_SERVICE_SID" in p for p in problems)


def test_an_approved_toll_free_number_passes(twilio_messaging_mock_url: str) -> None:
    settings = _settings(twilio_from_number="+18003334444")
    client, http = _client(settings, twilio_messaging_mock_url)
    lines, problems = registration(settings, client)
    assert [r.path for r in http.sent] == ["/v1/Tollfree/Verifications"]
    assert problems == []
    assert "toll-free verification for +18003334444: TWILIO_APPROVED" in lines


def test_a_toll_free_number_without_verification_is_a_problem(
        twilio_messaging_mock_url: str) -> None:
    settings = _settings(twilio_from_number="+18885550100")
    client, _http = _client(settings, twilio_messaging_mock_url)
    _lines, problems = registration(settings, client)
    assert any("+18885550100 has no toll-free verification" in p for p in problems)


def test_twilio_unreachable_is_a_problem_not_a_crash() -> None:
    settings = _settings(twilio_messaging_service_sid=SERVICE)
    client, _http = _client(settings, "http://127.0.0.1:9")  # nothing listens there
    lines, problems = registration(settings, client)
    assert lines == [] and problems and "could not read the A2P registration" in problems[0]


def test_check_prints_the_senders_rate() -> None:
    lines, problems = check_lines(_settings(twilio_messaging_service_sid=SERVICE,
                                            twilio_senders=5, twilio_sender_mps=1.0))
    out = "\n".join(lines)
    assert "5 sender(s) x 1 segment(s)/s = 5 alert texts per second" in out
    assert problems == []


def test_senders_above_one_without_a_service_is_a_problem(twilio_messaging_mock_url: str
                                                          ) -> None:
    settings = _settings(twilio_senders=5)
    client, _http = _client(settings, twilio_messaging_mock_url)
    _lines, problems = registration(settings, client)
    assert any("TIPLINE_TWILIO_SENDERS is above 1" in p for p in problems)


def test_cli_check_asks_twilio_and_exits_non_zero_on_a_registration_problem(
        tmp_path: Any, twilio_messaging_mock_url: str) -> None:
    (tmp_path / "t.env").write_text("")
    env = {"TIPLINE_CONFIG_FILE": str(tmp_path / "t.env"), "TIPLINE_DATA_DIR": str(tmp_path),
           "TIPLINE_PUBLIC_URL": "https://tips.example.org",
           "TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
           "TIPLINE_TWILIO_FROM_NUMBER": "+13145550100",
           "TIPLINE_TWILIO_MESSAGING_SERVICE_SID": SERVICE,
           "TIPLINE_TWILIO_API_BASE": twilio_messaging_mock_url}
    result = CliRunner().invoke(main, ["twilio", "check"], env=env)
    assert result.exit_code == 1
    assert "US A2P registration" in result.output
    assert "status PENDING" in result.output
    offline = CliRunner().invoke(main, ["twilio", "check", "--offline"], env=env)
    assert "US A2P registration" not in offline.output


def test_a_voice_number_that_is_not_e164_is_a_problem() -> None:
    _lines, problems = check_lines(_settings(twilio_voice_from_number="314-555-0199"))
    assert any("TIPLINE_TWILIO_VOICE_FROM_NUMBER must be E.164" in p for p in problems)


def test_toll_free_prefixes() -> None:
    assert is_toll_free("+18005550100") and is_toll_free("+18335550100")
    assert not is_toll_free("+13145550100") and not is_toll_free("+448005550100")
