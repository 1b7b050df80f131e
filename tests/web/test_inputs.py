"""Hostile values in a URL or a form get a 4xx with a clear message, never a 500.

Each of these answered 500 before (found by the fuzzing in ``test_fuzz.py``): an id beyond
the database's integer range, a NUL character in a path segment, a date past year 9999 on the
statistics page and its CSV, and the 500 page itself failing on an aborted transaction.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import text

from tests.staffsupport import csrf_token, make_staff, sign_in
from tests.twilio_support import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM_NUMBER, signed_post
from tipline.web import db_session as db_session_for_request

HUGE = ["2147483648", "9223372036854775808", "1" + "0" * 30]
INT_ROUTES_STAFF = [
    ("GET", "/staff/admin/contacts/{}"), ("POST", "/staff/admin/contacts/{}"),
    ("POST", "/staff/admin/contacts/{}/active"), ("GET", "/staff/admin/schools/{}"),
    ("POST", "/staff/admin/schools/{}"), ("POST", "/staff/admin/schools/{}/active"),
    ("POST", "/staff/admin/users/{}/deactivate"), ("POST", "/staff/admin/users/{}/reset"),
]
INT_ROUTES_WEBHOOK = ["/twilio/alerts/call/{}", "/twilio/alerts/call/{}/gather",
                      "/twilio/alerts/call-status/{}", "/twilio/alerts/sms-status/{}"]


@pytest.fixture
def tw_app(settings, pg_engine, connection, queue, vault) -> Any:  # type: ignore[no-untyped-def]
    from tests.conftest import BoundDatabase
    from tipline.app import create_app

    app = create_app(settings.with_overrides(
        twilio_account_sid=TEST_ACCOUNT_SID, twilio_auth_token=TEST_AUTH_TOKEN,
        twilio_from_number=TEST_FROM_NUMBER), db=BoundDatabase(pg_engine, connection),
        queue=queue)
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def admin_client(tw_app, db_session, vault, demo_directory) -> Any:  # type: ignore[no-untyped-def]
    user, password, secret = make_staff(db_session, vault, "district_admin", district="slps")
    db_session.commit()
    client = tw_app.test_client()
    sign_in(client, user.email, password, secret)
    return client


@pytest.mark.parametrize("value", HUGE)
def test_an_id_beyond_the_database_range_is_404(admin_client, value) -> None:
    token = csrf_token(admin_client, "/staff/account/password")
    for method, pattern in INT_ROUTES_STAFF:
        resp = admin_client.open(pattern.format(value), method=method,
                                 data={"csrf_token": token})
        assert resp.status_code == 404, (method, pattern)
    assert admin_client.get("/staff/admin/contacts/2147483647").status_code == 404


@pytest.mark.parametrize("value", HUGE)
def test_a_signed_webhook_with_an_id_beyond_the_range_is_404(tw_app, value) -> None:
    client = tw_app.test_client()
    for pattern in INT_ROUTES_WEBHOOK:
        resp = signed_post(client, pattern.format(value), {"CallStatus": "completed",
                                                           "MessageStatus": "delivered"})
        assert resp.status_code == 404, pattern


@pytest.mark.parametrize("segment", ["%00", "abc%00def", "%00%00"])
def test_a_nul_character_in_a_path_segment_is_404(admin_client, segment) -> None:
    token = csrf_token(admin_client, "/staff/account/password")
    assert admin_client.get(f"/staff/tips/{segment}").status_code == 404
    assert admin_client.get(f"/staff/tips/{segment}/attachments/x").status_code == 404
    assert admin_client.post(f"/staff/tips/{segment}/note",
                             data={"csrf_token": token, "body": "x"}).status_code == 404
    assert admin_client.get(f"/static/{segment}").status_code == 404


def test_the_500_page_survives_an_aborted_transaction(tw_app, db_session, vault,
                                                      demo_directory) -> None:
    """A view that fails inside the database leaves its transaction aborted; the error page
    (whose staff navigation loads the signed-in account) must still render."""

    def broken() -> Any:
        db_session_ = db_session_for_request()
        db_session_.execute(text("SELECT 1 / 0"))
        return "unreachable"

    tw_app.add_url_rule("/broken-for-test", "broken_for_test", broken)
    tw_app.config["PROPAGATE_EXCEPTIONS"] = False
    user, password, secret = make_staff(db_session, vault, "district_admin", district="slps")
    db_session.commit()
    client = tw_app.test_client()
    sign_in(client, user.email, password, secret)
    resp = client.get("/broken-for-test")
    assert resp.status_code == 500
    assert "988" in resp.get_data(as_text=True)


@pytest.mark.parametrize(("start", "end"), [("", "9999-12-31"), ("0001-01-01", ""),
                                            ("2024-01-01", "3000-01-01"), ("", "31/12/2024")])
def test_statistics_refuse_a_date_out_of_range_with_a_message(admin_client, start, end) -> None:
    resp = admin_client.get("/staff/admin/stats", query_string={"start": start, "end": end})
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert re.search(r'id="date-error">[^<]*(between 2000-01-01 and 2999-12-31|is not a date)',
                     page), page[:2000]
    token = csrf_token(admin_client, "/staff/admin/stats")
    resp = admin_client.post("/staff/admin/stats.csv",
                             data={"csrf_token": token, "start": start, "end": end})
    assert resp.status_code == 400
    assert 'id="date-error"' in resp.get_data(as_text=True)


def test_statistics_accept_the_last_date_in_range(admin_client) -> None:
    resp = admin_client.get("/staff/admin/stats", query_string={"end": "2999-12-31"})
    assert resp.status_code == 200
    assert 'id="date-error"' not in resp.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/staff/tips/x/note", "/report", "/followup",
                                  "/staff/login", "/staff/admin/policy"])
def test_a_multipart_field_without_a_name_is_dropped_not_crashed(admin_client, path) -> None:
    """A part whose name ends in a backslash: Werkzeug's parser read it as a field named None,
    which Flask-WTF's CSRF check crashed on (500); the app's parser (tipline/web/formparser.py)
    reads the name as written. The request is judged on the rest (here, no CSRF token: 400)."""
    import io

    resp = admin_client.post(path, content_type="multipart/form-data", data={
        "a\\": "x", "body": "hi", "attachments": (io.BytesIO(b"z"), "f.png")})
    assert resp.status_code == 400, resp.status_code
