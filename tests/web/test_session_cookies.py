"""The session cookie's serializer, built once per key list (issue 15): the same cookies as
Flask's own session interface, and a key change still takes effect."""

from __future__ import annotations

from typing import Any

import pytest
from flask.sessions import SecureCookieSessionInterface

from tipline.web.security import SessionCookies


def test_the_app_reads_and_writes_the_cookies_flask_does(app: Any) -> None:
    assert isinstance(app.session_interface, SessionCookies)
    ours = app.session_interface.get_signing_serializer(app)
    flasks = SecureCookieSessionInterface().get_signing_serializer(app)
    data = {"lang": "es", "sub": "x" * 32}
    assert ours.loads(flasks.dumps(data)) == data
    assert flasks.loads(ours.dumps(data)) == data


def test_a_session_survives_requests_with_one_serializer(
        app: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []
    real = SecureCookieSessionInterface.get_signing_serializer

    def counting(self: Any, flask_app: Any) -> Any:
        built.append(1)
        return real(self, flask_app)

    monkeypatch.setattr(SecureCookieSessionInterface, "get_signing_serializer", counting)
    app.session_interface = SessionCookies()
    client.get("/report?lang=es")  # the language choice is kept in the session
    for _ in range(3):
        assert '<html lang="es">' in client.get("/report").get_data(as_text=True)
    assert built == [1]


def test_a_new_secret_key_gets_a_new_serializer_and_the_old_one_can_be_a_fallback(
        app: Any) -> None:
    interface = SessionCookies()
    old = interface.get_signing_serializer(app).dumps({"lang": "es"})
    first = interface.get_signing_serializer(app)
    previous = app.secret_key
    try:
        app.secret_key = "k" * 48
        rotated = interface.get_signing_serializer(app)
        assert rotated is not first
        with pytest.raises(Exception, match="Signature"):
            rotated.loads(old)
        app.config["SECRET_KEY_FALLBACKS"] = [previous]
        assert interface.get_signing_serializer(app).loads(old) == {"lang": "es"}
    finally:
        app.secret_key = previous
        app.config["SECRET_KEY_FALLBACKS"] = []


def test_the_signing_key_is_derived_once_and_every_cookie_is_still_checked(
        app: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The signer and its derived key are made once; a cookie with a wrong signature, or one
    signed with another key, still opens an empty session."""
    from itsdangerous import Signer

    derived: list[int] = []
    real = Signer.derive_key

    def counting(self: Any, secret_key: Any = None) -> bytes:
        if self.salt == b"cookie-session":  # not the CSRF tokens' signer
            derived.append(1)
        return real(self, secret_key)

    monkeypatch.setattr(Signer, "derive_key", counting)
    app.session_interface = SessionCookies()
    client.get("/report?lang=es")
    for _ in range(3):
        assert '<html lang="es">' in client.get("/report").get_data(as_text=True)
    assert derived == [1]

    name = app.config["SESSION_COOKIE_NAME"]
    good = client.get_cookie(name).value
    flasks = SecureCookieSessionInterface().get_signing_serializer(app)
    assert flasks.loads(good)["lang"] == "es"  # the same key and signature as Flask's
    body, sig = good.rsplit(".", 1)
    forged = [body + "." + ("A" if sig[0] != "A" else "B") + sig[1:],
              type(flasks)("k" * 48, salt=flasks.salt, serializer=flasks.serializer,
                           signer_kwargs=flasks.signer_kwargs).dumps({"lang": "es"})]
    for cookie in forged:
        client.set_cookie(name, cookie)
        assert '<html lang="en">' in client.get("/report").get_data(as_text=True)
