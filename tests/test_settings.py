from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tipline.settings import SettingsError, load_settings

REPO = Path(__file__).resolve().parent.parent


def test_no_settings_gives_the_embedded_default(tmp_path) -> None:
    s = load_settings({}, env_file=tmp_path / "none.env")
    assert s.mode == "embedded"
    assert s.database_url.startswith("sqlite:///") and s.broker_url.startswith("filesystem://")
    assert s.key_file == Path("var") / "keys.json"


def test_no_forwarded_header_is_trusted_unless_configured(tmp_path) -> None:
    assert load_settings({}, env_file=tmp_path / "none.env").trusted_proxy_hops == 0
    behind = load_settings({"TIPLINE_TRUSTED_PROXY_HOPS": "1"}, env_file=tmp_path / "none.env")
    assert behind.trusted_proxy_hops == 1


def test_env_file_then_environment_override(tmp_path) -> None:
    f = tmp_path / "t.env"
    f.write_text("# comment\nTIPLINE_LOG_LEVEL=debug\nexport TIPLINE_PUBLIC_URL='https://a.example/'\n")
    s = load_settings({"TIPLINE_LOG_LEVEL": "warning"}, env_file=f)
    assert s.log_level == "WARNING" and s.public_url == "https://a.example"
    with pytest.raises(Exception, match=r"frozen|cannot assign"):
        s.mode = "production"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"TIPLINE_MODE": "prod"}, "TIPLINE_MODE"),
        ({"TIPLINE_DATABASE_URL": "mysql://x"}, "TIPLINE_DATABASE_URL"),
        ({"TIPLINE_BROKER_URL": "amqp://x"}, "TIPLINE_BROKER_URL"),
        ({"TIPLINE_PUBLIC_URL": "tips.example.org"}, "TIPLINE_PUBLIC_URL"),
        ({"TIPLINE_SMTP_PORT": "twenty-five"}, "TIPLINE_SMTP_PORT"),
        ({"TIPLINE_DEMO_DATA": "maybe"}, "TIPLINE_DEMO_DATA"),
        ({"TIPLINE_TRUSTED_PROXY_HOPS": "one"}, "TIPLINE_TRUSTED_PROXY_HOPS"),
        ({"TIPLINE_TRUSTED_PROXY_HOPS": "-1"}, "TIPLINE_TRUSTED_PROXY_HOPS"),
        ({"TIPLINE_RATELIMIT_STORAGE_URL": "memcached://m:11211"},
         "TIPLINE_RATELIMIT_STORAGE_URL"),
        ({"TWILIO_ACCOUNT_SID": "AC123"}, "TWILIO_ACCOUNT_SID"),
        ({"TIPLINE_ALERT_SENDER": "twilio"}, "TWILIO_ACCOUNT_SID"),
        ({"TIPLINE_MODE": "production"}, "TIPLINE_DATABASE_URL"),
        (
            {"TIPLINE_MODE": "production", "TIPLINE_DATABASE_URL": "postgresql://u@h/d",
             "TIPLINE_BROKER_URL": "redis://r:6379/0", "TIPLINE_SECRET_KEY": "s" * 40},
            "TIPLINE_KEY_FILE",
        ),
    ],
)
def test_invalid_settings_name_the_variable(env, needle, tmp_path) -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings(env, env_file=tmp_path / "none.env")
    assert str(exc.value).startswith(needle)
    assert "\n" not in str(exc.value)


def test_password_in_database_url_is_not_echoed(tmp_path) -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings({"TIPLINE_DATABASE_URL": "mysql://user:hunter2@db/x"},
                      env_file=tmp_path / "none.env")
    assert "hunter2" not in str(exc.value)


def _run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("TIPLINE_", "TWILIO_"))}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "tipline.cli", *args], env=full, cwd=cwd, capture_output=True,
        text=True, timeout=60, check=False,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"TIPLINE_MODE": "production", "TIPLINE_DATABASE_URL": "postgresql://u@127.0.0.1/d",
             "TIPLINE_BROKER_URL": "redis://127.0.0.1:6379/0", "TIPLINE_SECRET_KEY": "s" * 40,
             "TIPLINE_KEY_FILE": "/nonexistent/keys.json"},
            "key file /nonexistent/keys.json does not exist",
        ),
        ({"TIPLINE_DATABASE_URL": "postgres:/broken"}, "TIPLINE_DATABASE_URL: expected"),
        (
            {"TIPLINE_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nothing"},
            "database unreachable",
        ),
    ],
)
def test_bad_configuration_is_one_clear_line_not_a_traceback(env, expected, tmp_path) -> None:
    proc = _run_cli(["check"], env | {"TIPLINE_DATA_DIR": str(tmp_path)}, tmp_path)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("tipline: error: ") and expected in lines[0]
    assert "Traceback" not in proc.stderr
