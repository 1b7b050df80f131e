"""``tipline twilio check``: what to paste into the Twilio console, and whether it can work."""

from __future__ import annotations

import sys

import click

from tipline.settings import Settings, SettingsError, load_settings

WEBHOOKS = (
    ("Messaging: A message comes in (HTTP POST)", "/twilio/sms"),
    ("Voice: A call comes in (HTTP POST)", "/twilio/voice"),
)
CALLBACKS = (
    ("IVR language choice", "/twilio/voice/language"),
    ("recording finished", "/twilio/voice/recorded"),
    ("recording status", "/twilio/voice/recording-status"),
    ("transcription", "/twilio/voice/transcription"),
    ("status of relayed staff replies", "/twilio/sms/status"),
)


def check_lines(settings: Settings) -> tuple[list[str], list[str]]:
    """(lines to print, problems found); problems make the command exit non-zero."""
    base = settings.public_url.rstrip("/")
    lines = ["Paste these into your Twilio number's configuration (Phone Numbers > Manage >",
             "Active numbers > your number):", ""]
    lines += [f"  {label}:\n    {base}{path}" for label, path in WEBHOOKS]
    lines += ["", "tipline points Twilio at these itself (nothing to paste):"]
    lines += [f"  {label}: {base}{path}" for label, path in CALLBACKS]
    problems = []
    for var, value in (("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
                       ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
                       ("TIPLINE_TWILIO_FROM_NUMBER", settings.twilio_from_number)):
        if not value:
            problems.append(f"{var} is not set")
    number = settings.twilio_from_number
    if number and not (number.startswith("+") and number[1:].isdigit()):
        problems.append("TIPLINE_TWILIO_FROM_NUMBER must be E.164, e.g. +13145550100")
    if not base.startswith("https://"):
        problems.append("TIPLINE_PUBLIC_URL is not https://: Twilio's signature covers the "
                        "exact URL it calls, and webhooks must not travel in clear")
    if "127.0.0.1" in base or "localhost" in base:
        problems.append("TIPLINE_PUBLIC_URL points at this machine: Twilio cannot reach it")
    if settings.twilio_api_base:
        problems.append("TIPLINE_TWILIO_API_BASE is set: API calls go to "
                        f"{settings.twilio_api_base}, not to Twilio (tests only)")
    return lines, problems


def register(main: click.Group) -> None:
    @main.group()
    def twilio() -> None:
        """Twilio SMS and voice set-up."""

    @twilio.command()
    def check() -> None:
        """Print the webhook URLs for the Twilio console and check the Twilio settings."""
        try:
            settings = load_settings()
        except SettingsError as exc:
            click.echo(f"tipline: error: {exc}", err=True)
            sys.exit(2)
        lines, problems = check_lines(settings)
        for line in lines:
            click.echo(line)
        click.echo("")
        if problems:
            for problem in problems:
                click.echo(f"problem: {problem}")
            sys.exit(1)
        click.echo("ok: credentials are set and the public URL is https.")
