"""Nothing identifies the reporter: no address or browser stored or logged, one cookie, no
third-party resources."""

from __future__ import annotations

import io
import logging
import re
from typing import Any

from sqlalchemy import text

from tests.intake.helpers import csrf_from, jpeg_with_gps, nonce_from, open_form, tip_fields

ADDR = "203.0.113.77"
AGENT = "SecretBrowser/9.9 (DeviceModel-XYZ123)"
REPORTER_PAGES = ("/", "/danger", "/report", "/report?school_q=roos", "/privacy", "/followup",
                  "/no-such-page")


def _client(app: Any) -> Any:
    client = app.test_client()
    client.environ_base.update({"REMOTE_ADDR": ADDR, "HTTP_USER_AGENT": AGENT,
                                "HTTP_X_FORWARDED_FOR": "198.51.100.9"})
    return client


def test_no_address_or_browser_is_stored_or_logged(app, db_session, demo_directory,
                                                   caplog) -> None:
    caplog.set_level(logging.DEBUG)
    client = _client(app)
    token, html = open_form(client)
    resp = client.post("/report", data=tip_fields(
        token, submission=nonce_from(html),
        attachments=[(io.BytesIO(jpeg_with_gps()), "IMG_1.jpg", "image/jpeg")],
    ), content_type="multipart/form-data")
    assert resp.status_code == 200
    found = re.search(r'id="receipt-code"[^>]*><code>([^<]+)<', resp.get_data(as_text=True))
    assert found
    code = found.group(1)
    for _ in range(3):
        client.post("/followup", data={"csrf_token": token, "code": "WRONG-CODE-0000-0000"})
    client.post("/followup", data={"csrf_token": token, "code": code})
    client.post("/followup/tip", data={"csrf_token": token, "body": "a reply"})

    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (ADDR, "198.51.100.9", "SecretBrowser", "DeviceModel-XYZ123", code):
        assert secret not in logged
    tables = db_session.execute(text(
        "SELECT tablename FROM pg_tables WHERE schemaname='public'")).scalars().all()
    for table in tables:
        dump = db_session.execute(text(f'SELECT row_to_json(t)::text FROM "{table}" t')).scalars()
        blob = "\n".join(dump)
        for secret in (ADDR, "198.51.100.9", "SecretBrowser", "DeviceModel", code,
                       code.replace("-", "")):
            assert secret not in blob, (table, secret)


def test_only_the_session_cookie_is_ever_set(app, demo_directory) -> None:
    client = _client(app)
    seen: set[str] = set()
    for url in (*REPORTER_PAGES, "/report?lang=es", "/report?lang=bs"):
        for header in client.get(url).headers.getlist("Set-Cookie"):
            seen.add(header.split("=", 1)[0])
            assert "HttpOnly" in header and "SameSite=Strict" in header and "Secure" in header
            assert "Expires" not in header and "Max-Age" not in header
    token = csrf_from(client.get("/followup").get_data(as_text=True))
    for header in client.post("/followup", data={"csrf_token": token, "code": "x"}
                              ).headers.getlist("Set-Cookie"):
        seen.add(header.split("=", 1)[0])
    assert seen == {"tl"}


def test_pages_load_nothing_from_elsewhere_and_carry_the_emergency_numbers(
    client, demo_directory
) -> None:
    for url in REPORTER_PAGES:
        resp = client.get(url)
        html = resp.get_data(as_text=True)
        assert "911" in html and "988" in html, url
        for attr in re.findall(r'(?:src|href|action|srcset)="([^"]*)"', html):
            assert not re.match(r"^(https?:)?//", attr), (url, attr)
        assert "style=" not in html and "onclick" not in html and "<script>" not in html, url
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert "no-store" in resp.headers["Cache-Control"]


def test_bosnian_pages(client, demo_directory) -> None:
    html = client.get("/report?lang=bs").get_data(as_text=True)
    assert '<html lang="bs">' in html and "Pošalji moju dojavu" in html
    assert "Ako je neko upravo sada u opasnosti, nazovi 911." in html
