"""TOTP for staff: new secrets, verification that refuses a replayed code, and the QR code.

A code is accepted for the current 30-second step or one step either side (clock drift), and
only if its step is later than the last step this account used: a code seen over a shoulder
or in a proxy log cannot be used a second time.
"""

from __future__ import annotations

import hmac
import string
from datetime import datetime

import pyotp
import segno

from tipline.typed import ascii_digits

ISSUER = "tipline"
STEP_SECONDS = 30
DRIFT_STEPS = 1


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str, issuer: str = ISSUER) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def qr_data_uri(uri: str) -> str:
    """The enrolment QR as an SVG data URI, drawn on the server (no script, CSP allows data:)."""
    qr = segno.make(uri, error="m")
    return str(qr.svg_data_uri(scale=5, border=4, dark="#000", light="#fff"))


def current_step(now: datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def code_for_step(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).at(step * STEP_SECONDS)


def matching_step(secret: str, code: str, now: datetime, last_step: int | None) -> int | None:
    """The step ``code`` belongs to, if it is valid now and newer than ``last_step``."""
    # Any script's decimal digits, as ASCII (an Arabic keyboard types "١٢٣"); superscripts and
    # the like are not digits of a code. hmac.compare_digest refuses non-ASCII strings.
    code = "".join(ch for ch in ascii_digits(code) if ch in string.digits)
    if len(code) != 6:
        return None
    here = current_step(now)
    for step in range(here - DRIFT_STEPS, here + DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(code_for_step(secret, step), code):
            return step
    return None
