"""Typed, frozen settings, loaded once from the environment and an optional env file.

Every variable is documented in ``config/example.env``. ``load_settings`` is the only
place that reads the environment; the rest of the code receives a ``Settings``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlsplit

MODES = ("embedded", "production", "test")
ALERT_SENDERS = ("outbox", "twilio")
EMAIL_SENDERS = ("outbox", "smtp")
LOG_FORMATS = ("text", "json")


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the variable in one line."""


@dataclass(frozen=True)
class Settings:
    """Everything the app, the workers and the CLI need to know about their deployment."""

    mode: str = "embedded"
    data_dir: Path = Path("var")
    database_url: str = ""
    broker_url: str = ""
    key_file: Path = Path("var/keys.json")
    secret_key: str = ""
    public_url: str = "http://127.0.0.1:8080"
    log_level: str = "INFO"
    # text: one readable line per record; json: one JSON object per line (log shippers).
    log_format: str = "text"
    # Rate limiting keeps only salted hashes; storage may be memory:// or redis://.
    ratelimit_storage_url: str = "memory://"
    # Reverse proxies in front of the app that append to X-Forwarded-For (0: none trusted).
    trusted_proxy_hops: int = 0
    # Routing pipeline.
    sweep_interval_seconds: float = 5.0
    sweep_grace_seconds: float = 20.0
    publish_timeout_seconds: float = 1.0
    # Surge grouping (tipline.surge): later tips about a threat being worked fold into its
    # alerts. Off only for test rigs whose tips repeat one text; districts choose in the policy.
    surge_grouping: bool = True
    # Providers.
    alert_sender: str = "outbox"
    email_sender: str = "outbox"
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_api_base: str = ""
    twilio_from_number: str = ""
    # Issue 18: a Messaging Service (sender pool, sticky sender) to send texts through instead
    # of the single number; the number voice alerts are placed from (default: the from-number);
    # how many message segments per second ONE sender of the pool takes (a US long code: 1),
    # and how many senders the pool has; how long an alert text may wait in Twilio's queue
    # (ValidityPeriod) before it fails and the contact's next channel opens.
    twilio_messaging_service_sid: str = ""
    twilio_voice_from_number: str = ""
    twilio_sender_mps: float = 1.0
    twilio_senders: int = 1
    # Calls per second the account may start (Twilio's default CPS is 1; it can be raised).
    twilio_cps: float = 1.0
    alert_sms_validity_seconds: int = 300
    urgent_sms_validity_seconds: int = 30
    # SMS conversations close (and the reporter's number is erased) after this many idle days.
    sms_conversation_days: int = 30
    # Longest voice message a caller can leave (Twilio transcribes up to 120 s).
    voice_max_record_seconds: int = 120
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "tipline@localhost"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    # Reporter side.
    default_language: str = "en"
    languages: tuple[str, ...] = ("en", "es", "bs")  # web pages; bs = Bosnian
    max_upload_bytes: int = 10 * 1024 * 1024
    retention_days: int = 365
    demo_data: bool = True
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def https(self) -> bool:
        return self.public_url.startswith("https://")

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


_ENV_MAP = {
    "TIPLINE_MODE": "mode",
    "TIPLINE_DATA_DIR": "data_dir",
    "TIPLINE_DATABASE_URL": "database_url",
    "TIPLINE_BROKER_URL": "broker_url",
    "TIPLINE_KEY_FILE": "key_file",
    "TIPLINE_SECRET_KEY": "secret_key",
    "TIPLINE_PUBLIC_URL": "public_url",
    "TIPLINE_LOG_LEVEL": "log_level",
    "TIPLINE_LOG_FORMAT": "log_format",
    "TIPLINE_RATELIMIT_STORAGE_URL": "ratelimit_storage_url",
    "TIPLINE_TRUSTED_PROXY_HOPS": "trusted_proxy_hops",
    "TIPLINE_SWEEP_INTERVAL_SECONDS": "sweep_interval_seconds",
    "TIPLINE_SWEEP_GRACE_SECONDS": "sweep_grace_seconds",
    "TIPLINE_PUBLISH_TIMEOUT_SECONDS": "publish_timeout_seconds",
    "TIPLINE_SURGE_GROUPING": "surge_grouping",
    "TIPLINE_ALERT_SENDER": "alert_sender",
    "TIPLINE_EMAIL_SENDER": "email_sender",
    "TWILIO_ACCOUNT_SID": "twilio_account_sid",
    "TWILIO_AUTH_TOKEN": "twilio_auth_token",
    "TIPLINE_TWILIO_API_BASE": "twilio_api_base",
    "TIPLINE_TWILIO_FROM_NUMBER": "twilio_from_number",
    "TIPLINE_TWILIO_MESSAGING_SERVICE_SID": "twilio_messaging_service_sid",
    "TIPLINE_TWILIO_VOICE_FROM_NUMBER": "twilio_voice_from_number",
    "TIPLINE_TWILIO_SENDER_MPS": "twilio_sender_mps",
    "TIPLINE_TWILIO_SENDERS": "twilio_senders",
    "TIPLINE_TWILIO_CPS": "twilio_cps",
    "TIPLINE_ALERT_SMS_VALIDITY_SECONDS": "alert_sms_validity_seconds",
    "TIPLINE_URGENT_SMS_VALIDITY_SECONDS": "urgent_sms_validity_seconds",
    "TIPLINE_SMS_CONVERSATION_DAYS": "sms_conversation_days",
    "TIPLINE_VOICE_MAX_RECORD_SECONDS": "voice_max_record_seconds",
    "TIPLINE_SMTP_HOST": "smtp_host",
    "TIPLINE_SMTP_PORT": "smtp_port",
    "TIPLINE_SMTP_FROM": "smtp_from",
    "TIPLINE_SMTP_USERNAME": "smtp_username",
    "TIPLINE_SMTP_PASSWORD": "smtp_password",
    "TIPLINE_SMTP_STARTTLS": "smtp_starttls",
    "TIPLINE_DEFAULT_LANGUAGE": "default_language",
    "TIPLINE_MAX_UPLOAD_BYTES": "max_upload_bytes",
    "TIPLINE_RETENTION_DAYS": "retention_days",
    "TIPLINE_DEMO_DATA": "demo_data",
}
ENV_VARIABLES = tuple(_ENV_MAP)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a KEY=VALUE file (comments and blank lines allowed, optional quotes)."""
    values: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        if "=" not in line:
            raise SettingsError(f"{path}:{lineno}: expected KEY=VALUE, got {line[:40]!r}")
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _coerce(name: str, var: str, raw: str, kind: type) -> object:
    if kind is bool:
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise SettingsError(f"{var}: expected true or false, got {raw!r}")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{var}: expected a whole number, got {raw!r}") from None
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{var}: expected a number, got {raw!r}") from None
    if kind is Path:
        return Path(raw).expanduser()
    return raw


_KINDS: dict[str, type] = {
    "data_dir": Path,
    "key_file": Path,
    "sweep_interval_seconds": float,
    "sweep_grace_seconds": float,
    "publish_timeout_seconds": float,
    "surge_grouping": bool,
    "smtp_port": int,
    "trusted_proxy_hops": int,
    "smtp_starttls": bool,
    "max_upload_bytes": int,
    "retention_days": int,
    "sms_conversation_days": int,
    "voice_max_record_seconds": int,
    "twilio_sender_mps": float,
    "twilio_senders": int,
    "twilio_cps": float,
    "alert_sms_validity_seconds": int,
    "urgent_sms_validity_seconds": int,
    "demo_data": bool,
}

_DB_URL = re.compile(r"^(sqlite(\+pysqlite)?:///.+|postgresql(\+psycopg)?://.+)$")


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = None
) -> Settings:
    """Build ``Settings`` from an env file (optional) overlaid by the environment.

    The env file is ``$TIPLINE_CONFIG_FILE`` or ``config/tipline.env`` when present.
    Raises ``SettingsError`` with one line naming the offending variable.
    """
    env = dict(os.environ if environ is None else environ)
    file_path = env_file or Path(env.get("TIPLINE_CONFIG_FILE", "config/tipline.env"))
    merged: dict[str, str] = {}
    if env.get("TIPLINE_CONFIG_FILE") and not file_path.exists():
        raise SettingsError(f"TIPLINE_CONFIG_FILE: no such file {file_path}")
    if file_path.exists():
        merged.update(read_env_file(file_path))
    merged.update({k: v for k, v in env.items() if k in _ENV_MAP})

    values: dict[str, object] = {}
    for var, attr in _ENV_MAP.items():
        if var in merged:
            values[attr] = _coerce(attr, var, merged[var], _KINDS.get(attr, str))

    mode = str(values.get("mode", "embedded"))
    if mode not in MODES:
        raise SettingsError(f"TIPLINE_MODE: expected one of {', '.join(MODES)}, got {mode!r}")
    data_dir = Path(values.get("data_dir", Path("var")))  # type: ignore[arg-type]
    values["data_dir"] = data_dir
    values.setdefault("key_file", data_dir / "keys.json")

    if mode == "production":
        for var in ("TIPLINE_DATABASE_URL", "TIPLINE_BROKER_URL", "TIPLINE_SECRET_KEY"):
            if not merged.get(var):
                raise SettingsError(f"{var}: required when TIPLINE_MODE=production")
        if "TIPLINE_KEY_FILE" not in merged:
            raise SettingsError("TIPLINE_KEY_FILE: required when TIPLINE_MODE=production")
        if len(str(values["secret_key"])) < 32:
            raise SettingsError("TIPLINE_SECRET_KEY: must be at least 32 characters")
    values.setdefault("database_url", f"sqlite:///{(data_dir / 'tipline.sqlite3').resolve()}")
    values.setdefault("broker_url", f"filesystem://{(data_dir / 'broker').resolve()}")

    db_url = str(values["database_url"])
    if not _DB_URL.match(db_url):
        raise SettingsError(
            "TIPLINE_DATABASE_URL: expected sqlite:///PATH or postgresql://USER@HOST/DB, "
            f"got {_redact_url(db_url)!r}"
        )
    broker = str(values["broker_url"])
    if not broker.startswith(("redis://", "rediss://", "filesystem://", "memory://")):
        raise SettingsError(
            f"TIPLINE_BROKER_URL: expected redis://HOST:PORT/N or filesystem://DIR, "
            f"got {_redact_url(broker)!r}"
        )
    public = str(values.get("public_url", Settings.public_url))
    parts = urlsplit(public)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"TIPLINE_PUBLIC_URL: expected an http(s) URL, got {public!r}")
    values["public_url"] = public.rstrip("/")
    limiter_store = str(values.get("ratelimit_storage_url", Settings.ratelimit_storage_url))
    if not limiter_store.startswith(("memory://", "redis://", "rediss://")):
        raise SettingsError(
            "TIPLINE_RATELIMIT_STORAGE_URL: expected memory:// or redis://HOST:PORT/N, "
            f"got {_redact_url(limiter_store)!r}"
        )
    if int(values.get("trusted_proxy_hops", 0)) < 0:  # type: ignore[call-overload]
        raise SettingsError("TIPLINE_TRUSTED_PROXY_HOPS: expected 0 or more")
    for attr, allowed, var in (
        ("alert_sender", ALERT_SENDERS, "TIPLINE_ALERT_SENDER"),
        ("email_sender", EMAIL_SENDERS, "TIPLINE_EMAIL_SENDER"),
    ):
        value = str(values.get(attr, getattr(Settings, attr)))
        if value not in allowed:
            raise SettingsError(f"{var}: expected one of {', '.join(allowed)}, got {value!r}")
    if values.get("alert_sender") == "twilio":
        for var in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TIPLINE_TWILIO_FROM_NUMBER"):
            if not merged.get(var):
                raise SettingsError(f"{var}: required when TIPLINE_ALERT_SENDER=twilio")
    sid = str(values.get("twilio_account_sid", ""))
    if sid and not re.fullmatch(r"AC[0-9a-fA-F]{32}", sid):
        raise SettingsError("TWILIO_ACCOUNT_SID: expected AC followed by 32 hex digits")
    _check_sending(values)
    level = str(values.get("log_level", "INFO")).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(
            f"TIPLINE_LOG_LEVEL: expected DEBUG, INFO, WARNING or ERROR, got {level!r}"
        )
    values["log_level"] = level
    log_format = str(values.get("log_format", "text")).lower()
    if log_format not in LOG_FORMATS:
        raise SettingsError(f"TIPLINE_LOG_FORMAT: expected text or json, got {log_format!r}")
    values["log_format"] = log_format
    lang = str(values.get("default_language", "en"))
    if lang not in Settings.languages:
        raise SettingsError(f"TIPLINE_DEFAULT_LANGUAGE: expected one of en, es, got {lang!r}")
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in values.items() if k in known})  # type: ignore[arg-type]


def _check_sending(values: Mapping[str, object]) -> None:
    """The Messaging Service SID's shape, the senders' rate and the validity periods (Twilio
    accepts a ValidityPeriod of 1 to 36000 seconds)."""
    service = str(values.get("twilio_messaging_service_sid", ""))
    if service and not re.fullmatch(r"MG[0-9a-fA-F]{32}", service):
        raise SettingsError("TIPLINE_TWILIO_MESSAGING_SERVICE_SID: expected MG followed by 32 "
                            "hex digits")
    mps = float(values.get("twilio_sender_mps", 1.0))  # type: ignore[arg-type]
    if not 0 < mps <= 1000:
        raise SettingsError("TIPLINE_TWILIO_SENDER_MPS: expected a number above 0 (a US long "
                            "code sends 1 segment per second)")
    if not 0 < float(values.get("twilio_cps", 1.0)) <= 1000:  # type: ignore[arg-type]
        raise SettingsError("TIPLINE_TWILIO_CPS: expected a number above 0 (Twilio's default "
                            "is 1 call per second)")
    if int(values.get("twilio_senders", 1)) < 1:  # type: ignore[call-overload]
        raise SettingsError("TIPLINE_TWILIO_SENDERS: expected 1 or more")
    for attr, var in (("alert_sms_validity_seconds", "TIPLINE_ALERT_SMS_VALIDITY_SECONDS"),
                      ("urgent_sms_validity_seconds", "TIPLINE_URGENT_SMS_VALIDITY_SECONDS")):
        if not 5 <= int(values.get(attr, 30)) <= 36000:  # type: ignore[call-overload]
            raise SettingsError(f"{var}: expected 5 to 36000 seconds")


def _redact_url(url: str) -> str:
    """Hide a password in a URL before it is shown in an error line."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
