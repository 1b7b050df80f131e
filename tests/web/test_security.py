from __future__ import annotations

import logging

import pytest

from tipline.logconfig import Redact
from tipline.web.security import CSP


def test_security_headers_on_every_response(client) -> None:
    for path in ("/", "/report", "/privacy", "/healthz", "/no-such-page"):
        resp = client.get(path)
        h = resp.headers
        assert h["Content-Security-Policy"] == CSP, path
        assert "unsafe-inline" not in h["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
        assert h["Referrer-Policy"] == "no-referrer"
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["X-Frame-Options"] == "DENY"
        assert h["Cache-Control"] == "no-store"


def test_hsts_only_over_https(client, app) -> None:
    # The test settings use an https public URL.
    assert "max-age=" in client.get("/").headers["Strict-Transport-Security"]


def test_no_hsts_over_plain_http(settings, pg_engine, connection, queue, vault) -> None:
    from tests.conftest import BoundDatabase
    from tipline.app import create_app

    app = create_app(settings.with_overrides(public_url="http://127.0.0.1:8080"),
                     db=BoundDatabase(pg_engine, connection), queue=queue)
    assert "Strict-Transport-Security" not in app.test_client().get("/").headers


def test_session_cookie_is_strict_and_http_only(client) -> None:
    resp = client.get("/report")
    cookie = resp.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie


def test_pages_load_nothing_from_elsewhere(client, demo_directory) -> None:
    for path in ("/", "/report", "/danger", "/privacy", "/followup"):
        html = client.get(path).get_data(as_text=True)
        assert "http://" not in html.replace("http://localhost", "")
        assert "https://" not in html
        assert "911" in html and "988" in html, path


def test_log_filter_removes_a_leading_client_address() -> None:
    f = Redact()
    for addr in ("203.0.113.9", "2001:db8::1", "[2001:db8::1]"):
        rec = logging.LogRecord("werkzeug", logging.INFO, __file__, 1,
                                '%s - - [22/Nov/2026 10:00:00] "GET / HTTP/1.1" 200 -', (addr,),
                                None)
        f.filter(rec)
        assert addr not in rec.getMessage()


def test_health_reports_database(client) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.get_json()["database"] == "ok"


def _headers_one_by_one(h, https: bool, static: bool) -> None:
    """The security headers as they were set before (setdefault and h[name] one by one)."""
    h.setdefault("Content-Security-Policy", CSP)
    h["X-Frame-Options"] = "DENY"
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "no-referrer"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    h["Cross-Origin-Resource-Policy"] = "same-origin"
    h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), interest-cohort=()"
    if https:
        h["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    if not static:
        h.setdefault("Cache-Control", "no-store")


VIEW_HEADERS = [
    [],
    [("Content-Type", "text/html")],
    [("Content-Security-Policy", "default-src 'none'"), ("Cache-Control", "max-age=60")],
    [("content-security-policy", "sandbox"), ("CACHE-CONTROL", "private")],
    [("X-Frame-Options", "SAMEORIGIN"), ("Vary", "Cookie"), ("x-frame-options", "ALLOW")],
    [("Referrer-Policy", "origin"), ("Content-Type", "text/plain"),
     ("Strict-Transport-Security", "max-age=1"), ("Permissions-Policy", "camera=*")],
    [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Cross-Origin-Opener-Policy", "unsafe-none"),
     ("Cross-Origin-Resource-Policy", "cross-origin"), ("X-Content-Type-Options", "x")],
]


@pytest.mark.parametrize("https", [True, False])
@pytest.mark.parametrize("static", [True, False])
@pytest.mark.parametrize("preset", VIEW_HEADERS)
def test_security_headers_as_set_one_by_one(https, static, preset) -> None:
    from flask import Flask, Response

    from tipline.web.security import install_security_headers

    app = Flask("headers")
    install_security_headers(app, https)
    hook = app.after_request_funcs[None][0]
    path = "/static/x.css" if static else "/page"
    app.add_url_rule("/page", "page", lambda: "")
    with app.test_request_context(path) as ctx:
        assert ctx.request.endpoint == ("static" if static else "page")
        resp = Response("x")
        resp.headers.clear()
        resp.headers.extend(preset)
        expected = resp.headers.copy()
        _headers_one_by_one(expected, https, static)
        got = hook(resp).headers
        assert list(got.items()) == list(expected.items())
def _limited_app(limiter_class, meta: str | None = None, failing_filter: bool = False):
    from flask import Flask, request

    app = Flask("limits")
    if meta:
        app.config["RATELIMIT_META"] = meta
    limiter = limiter_class(key_func=lambda: "k", app=app, storage_uri="memory://",
                            default_limits=["3 per minute"], in_memory_fallback_enabled=True,
                            swallow_errors=True)

    @limiter.request_filter
    def _free() -> bool:
        if failing_filter and request.path == "/boom":
            raise RuntimeError("filter failed")
        return request.path == "/free"

    for path in ("/free", "/limited", "/boom"):
        app.add_url_rule(path, path.strip("/"), lambda: "ok")
    return app


@pytest.mark.parametrize("meta", [None, "1 per minute"])
def test_filtered_limiter_limits_as_flask_limiter_does(meta, monkeypatch) -> None:
    """Same statuses as Flask-Limiter for filtered, limited and failing-filter requests; a
    filtered request is not evaluated (unless meta limits are configured)."""
    from flask_limiter import Limiter
    from flask_limiter._manager import LimitManager

    from tipline.web.security import FilteredLimiter

    evaluated: list[str | None] = []
    real = LimitManager.exemption_scope

    def counting(self, app, endpoint, blueprint):
        evaluated.append(endpoint)
        return real(self, app, endpoint, blueprint)

    monkeypatch.setattr(LimitManager, "exemption_scope", counting)
    paths = ["/free"] * 6 + ["/limited"] * 5 + ["/boom"] * 5 + ["/free"] * 2
    statuses = {}
    for cls in (Limiter, FilteredLimiter):
        client = _limited_app(cls, meta, failing_filter=True).test_client()
        evaluated.clear()
        statuses[cls] = [client.get(p).status_code for p in paths]
        if cls is FilteredLimiter:
            assert ("free" in evaluated) == bool(meta)
            assert "limited" in evaluated
    assert statuses[FilteredLimiter] == statuses[Limiter]
    assert 429 in statuses[Limiter]
    if not meta:
        assert statuses[Limiter][:11] == [200] * 9 + [429] * 2


def test_the_app_limiter_is_the_filtered_one(app) -> None:
    from tipline.web.security import FilteredLimiter

    assert isinstance(app.extensions["tipline_limiter"], FilteredLimiter)
