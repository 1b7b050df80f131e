"""`tipline twilio check`, the Celery task registration, and the telephony settings."""

from __future__ import annotations

from celery import Celery
from click.testing import CliRunner

from tipline.cli import main
from tipline.settings import Settings, load_settings
from tipline.telephony.cli import check_lines
from tipline.telephony.tasks import SWEEP_TASK, register_tasks


def test_check_prints_webhook_urls_and_passes_when_configured() -> None:
    settings = Settings(public_url="https://tips.example.org",
                        twilio_account_sid="AC" + "0" * 32, twilio_auth_token="t",
                        twilio_from_number="+13145550100")
    lines, problems = check_lines(settings)
    out = "\n".join(lines)
    assert "https://tips.example.org/twilio/sms" in out
    assert "https://tips.example.org/twilio/voice" in out
    assert problems == []


def test_check_names_what_is_missing() -> None:
    _lines, problems = check_lines(Settings(public_url="http://127.0.0.1:8080"))
    joined = "\n".join(problems)
    for var in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TIPLINE_TWILIO_FROM_NUMBER",
                "TIPLINE_PUBLIC_URL"):
        assert var in joined


def test_cli_command_exits_non_zero_without_credentials(tmp_path) -> None:
    env = {"TIPLINE_CONFIG_FILE": str(tmp_path / "none.env"),
           "TIPLINE_PUBLIC_URL": "https://tips.example.org", "TIPLINE_DATA_DIR": str(tmp_path)}
    (tmp_path / "none.env").write_text("")
    result = CliRunner().invoke(main, ["twilio", "check"], env=env)
    assert result.exit_code == 1
    assert "https://tips.example.org/twilio/sms" in result.output
    assert "TWILIO_AUTH_TOKEN is not set" in result.output


def test_tasks_are_registered_by_name_with_a_periodic_sweep() -> None:
    celery = Celery("t")
    register_tasks(celery)
    for name in ("tipline.telephony_task", "tipline.relay_sms", SWEEP_TASK):
        assert name in celery.tasks
        assert celery.tasks[name].acks_late
    assert celery.conf.beat_schedule["telephony-sweep"]["task"] == SWEEP_TASK


def test_telephony_settings_load_from_the_environment(tmp_path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    s = load_settings({"TIPLINE_SMS_CONVERSATION_DAYS": "7",
                       "TIPLINE_VOICE_MAX_RECORD_SECONDS": "90"}, env_file=empty)
    assert s.sms_conversation_days == 7 and s.voice_max_record_seconds == 90
