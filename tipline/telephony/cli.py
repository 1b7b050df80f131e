"""``tipline twilio check``: what to paste into the Twilio console, and whether it can work."""

from __future__ import annotations

import sys
from typing import Any

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
    for var, number in (("TIPLINE_TWILIO_FROM_NUMBER", settings.twilio_from_number),
                        ("TIPLINE_TWILIO_VOICE_FROM_NUMBER", settings.twilio_voice_from_number)):
        if number and not (number.startswith("+") and number[1:].isdigit()):
            problems.append(f"{var} must be E.164, e.g. +13145550100")
    if not base.startswith("https://"):
        problems.append("TIPLINE_PUBLIC_URL is not https://: Twilio's signature covers the "
                        "exact URL it calls, and webhooks must not travel in clear")
    if "127.0.0.1" in base or "localhost" in base:
        problems.append("TIPLINE_PUBLIC_URL points at this machine: Twilio cannot reach it")
    if settings.twilio_api_base:
        problems.append("TIPLINE_TWILIO_API_BASE is set: API calls go to "
                        f"{settings.twilio_api_base}, not to Twilio (tests only)")
    lines += ["", *rate_lines(settings)]
    return lines, problems


def rate_lines(settings: Settings) -> list[str]:
    """What tipline will hand Twilio per second, and what waits (``routing.pacing``)."""
    total = settings.twilio_sender_mps * settings.twilio_senders
    via = (f"Messaging Service {settings.twilio_messaging_service_sid}"
           if settings.twilio_messaging_service_sid
           else f"the number {settings.twilio_from_number}")
    return [f"Texts go through {via}: {settings.twilio_senders} sender(s) x "
            f"{settings.twilio_sender_mps:g} segment(s)/s = {total:g} alert texts per second "
            f"(TIPLINE_TWILIO_SENDERS, TIPLINE_TWILIO_SENDER_MPS).",
            f"Life-safety texts go first; an ordinary alert text not handed over within "
            f"{settings.alert_sms_validity_seconds} s, a life-safety one within "
            f"{settings.urgent_sms_validity_seconds} s, fails and the contact's next channel "
            f"opens.",
            f"Alert calls are placed from "
            f"{settings.twilio_voice_from_number or settings.twilio_from_number}."]


def registration(settings: Settings, client: Any = None) -> tuple[list[str], list[str]]:
    """Ask Twilio whether the senders are registered for US A2P texts; a failure to ask is
    a problem too (the check cannot say the texts will arrive)."""
    from tipline.telephony.registration import check_registration, messaging_client

    try:
        if client is None:
            client = messaging_client(settings, settings.twilio_api_base)
        got = check_registration(settings, client)
    except Exception as exc:  # network, credentials: say so, do not crash the check
        return [], [f"could not read the A2P registration from Twilio ({type(exc).__name__}"
                    f"{': HTTP ' + str(exc.status) if hasattr(exc, 'status') else ''})"]
    return got.lines, got.problems


def register(main: click.Group) -> None:
    @main.group()
    def twilio() -> None:
        """Twilio SMS and voice set-up."""

    @twilio.command()
    @click.option("--offline", is_flag=True,
                  help="Do not ask Twilio about A2P registration (settings only).")
    def check(offline: bool) -> None:
        """Print the webhook URLs for the Twilio console, check the Twilio settings, the
        senders' rate and (through Twilio's API) the numbers' A2P registration."""
        try:
            settings = load_settings()
        except SettingsError as exc:
            click.echo(f"tipline: error: {exc}", err=True)
            sys.exit(2)
        lines, problems = check_lines(settings)
        if settings.twilio_account_sid and settings.twilio_auth_token and not offline:
            more, found = registration(settings)
            lines += ["", "US A2P registration (read from Twilio's Messaging API):", *more]
            problems += found
        for line in lines:
            click.echo(line)
        click.echo("")
        if problems:
            for problem in problems:
                click.echo(f"problem: {problem}")
            sys.exit(1)
        click.echo("ok: credentials are set, the public URL is https, and the senders are "
                   "registered.")
