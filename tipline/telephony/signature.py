"""Checking that a webhook really comes from Twilio.

Twilio signs the URL it called plus the POST parameters with the account's auth token. Behind
a TLS-terminating proxy ``request.url`` is not that URL, so it is rebuilt from the configured
``TIPLINE_PUBLIC_URL`` and the request's path and query.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import abort, request
from twilio.request_validator import RequestValidator

from tipline.web import services


def public_url_for_request(public_base: str) -> str:
    url = public_base.rstrip("/") + request.path
    if request.query_string:
        url += "?" + request.query_string.decode("latin-1")
    return url


def is_valid_twilio_request(public_base: str, auth_token: str) -> bool:
    if not auth_token:
        return False
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return False
    validator = RequestValidator(auth_token)
    # The form as a MultiDict: the validator signs every value of a repeated parameter (a dict
    # holding a list would make it fail with a TypeError).
    params: Any = request.form if request.method == "POST" else {}
    return bool(validator.validate(public_url_for_request(public_base), params, signature))


def twilio_signed(view: Callable[..., Any]) -> Callable[..., Any]:
    """Reject (403, nothing stored) any request whose Twilio signature does not verify."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        settings = services().settings
        if not is_valid_twilio_request(settings.public_url, settings.twilio_auth_token):
            abort(403)
        return view(*args, **kwargs)

    return wrapper
