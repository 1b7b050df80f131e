"""Hostile values in a URL or a form get a 4xx with a clear message, never a 500.

Each of these answered 500 before (found by the fuzzing in ``test_fuzz.py``): an id beyond
the database's integer range, a NUL character in a path segment, a date past year 9999 on the
statistics page and its CSV, and the 500 page itself failing on an aborted transaction.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select, text

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


# -- found by a review of the staff pages and webhooks (2026-12-05) ------------------------

NUL_MESSAGE = "contained a NUL character"


def test_a_nul_in_the_sign_in_form_is_400_for_anyone(tw_app) -> None:
    """The email went to PostgreSQL (the rate limiter's key, then the sign-in), which cannot
    hold NUL: a 500 that anyone could cause, signed in or not."""
    client = tw_app.test_client()
    token = csrf_token(client, "/staff/login")
    body = f"email=a%00b%40example.org&password=x&csrf_token={token}"
    resp = client.post("/staff/login", data=body,
                       content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 400
    assert NUL_MESSAGE in resp.get_data(as_text=True)
    resp = client.post("/staff/login", data={"email": "a\x00b@example.org", "password": "x",
                                             "csrf_token": token})
    assert resp.status_code == 400


@pytest.mark.parametrize("url", ["/staff/?school=%00", "/staff/queue/state?school=a%00",
                                 "/staff/admin/audit?action=tip%00", "/staff/?x%00=1"])
def test_a_nul_in_a_staff_page_s_query_is_400(admin_client, url) -> None:
    resp = admin_client.get(url)
    assert resp.status_code == 400, url
    assert NUL_MESSAGE in resp.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/staff/admin/schools/new", "/staff/admin/rotas/new",
                                  "/staff/replies"])
def test_a_nul_in_a_staff_form_is_400(admin_client, path) -> None:
    token = csrf_token(admin_client, "/staff/account/password")
    resp = admin_client.post(path, data={"csrf_token": token, "name": "East\x00High",
                                         "body": "a\x00b"})
    assert resp.status_code == 400, path
    assert NUL_MESSAGE in resp.get_data(as_text=True)


def test_a_nul_in_a_body_where_no_page_is_found_is_400_not_500(tw_app) -> None:
    """Found by the fuzzing when the check ran on the form's first reading: a GET to a staff
    path that is no page, with a form body holding NUL, was first read by the 404 page's
    language selector, inside the error handler (a 500). The check runs before anything."""
    resp = tw_app.test_client().open("/staff/..", method="GET", data="%00=",
                                     content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 400


def test_a_reporter_page_keeps_a_nul(tw_app, demo_directory) -> None:
    """Only staff pages refuse NUL: the reporter's text is sealed, and a NUL costs no tip."""
    resp = tw_app.test_client().get("/report", query_string={"school_q": "roose\x00velt"})
    assert resp.status_code == 200


@pytest.mark.parametrize("query", [{"to": "9999-12-31"}, {"from": "0001-01-01"},
                                   {"from": "2024-01-01", "to": "3000-01-01"}])
def test_the_queue_ignores_a_date_out_of_range(admin_client, query) -> None:
    """The queue's date arithmetic overflowed past year 9999 (a 500); like a date that is not
    a date, it now filters nothing."""
    assert admin_client.get("/staff/", query_string=query).status_code == 200
    assert admin_client.get("/staff/queue/state", query_string=query).status_code == 200


@pytest.fixture
def slps_tip(db_session, vault, queue) -> str:  # type: ignore[no-untyped-def]
    from tests.factories import make_tip
    from tipline.tips.models import Tip

    receipt = make_tip(db_session, vault, queue, school_code="slps-roosevelt")
    db_session.commit()
    tip = db_session.get(Tip, receipt.tip_id)
    assert tip is not None
    return str(tip.uid)


@pytest.mark.parametrize("value", ["\u00b2", "9" * 5000, "99999999999"])
def test_a_tip_page_s_numbers_that_are_not_numbers_are_refused(admin_client, slps_tip,
                                                                db_session, value) -> None:
    """``?use=`` (a reply template) and an assignee: a superscript passed str.isdigit() and
    int() refused it; 5,000 digits int() refuses; 11 digits reached the database beyond its
    integer range. Each was a 500."""
    from tipline.tips.models import Tip

    assert admin_client.get(f"/staff/tips/{slps_tip}", query_string={"use": value}
                            ).status_code == 200
    token = csrf_token(admin_client, f"/staff/tips/{slps_tip}")
    resp = admin_client.post(f"/staff/tips/{slps_tip}/assign",
                             data={"csrf_token": token, "assignee": value})
    assert resp.status_code in (303, 400), resp.status_code
    db_session.expire_all()
    tip = db_session.execute(select(Tip).where(Tip.uid == slps_tip)).scalar_one()
    assert tip.assigned_to_id is None


@pytest.mark.parametrize("at", ["9999-12-31T23:59", "0001-01-01T00:30"])
def test_the_policy_dry_run_refuses_a_time_out_of_range(admin_client, db_session, at) -> None:
    """Both overflowed: the first converting to UTC, the second in a rota's day before its
    handover (a reviewer's reading)."""
    import html

    from tests.conftest import REPO
    from tipline.routing.policy import load_policy

    load_policy(db_session, (REPO / "config" / "policy.demo.yaml").read_text(),
                "policy.demo.yaml", "cli")
    db_session.commit()
    page = admin_client.get("/staff/admin/policy").get_data(as_text=True)
    found = re.search(r'<textarea[^>]*name="text"[^>]*>(.*?)</textarea>', page, re.S)
    assert found is not None
    resp = admin_client.post("/staff/admin/policy", data={
        "csrf_token": csrf_token(admin_client, "/staff/admin/policy"), "action": "dryrun",
        "text": html.unescape(found.group(1)), "district": "slps", "school": "slps-roosevelt",
        "category": "threat", "severity": "3", "at": at, "language": "en"})
    assert resp.status_code in (200, 400), resp.status_code
    assert "the date must be between 2000-01-01 and 2999-12-31" in resp.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/twilio/sms", "/twilio/alerts/sms-status/1",
                                  "/twilio/alerts/call/1"])
def test_every_webhook_refuses_a_body_over_its_limit_before_parsing_it(tw_app, path) -> None:
    """The 256 KiB limit was the ``/twilio`` blueprint's only: the alert callbacks parsed a
    forged body of megabytes before refusing its signature."""
    from tipline.telephony.views import MAX_WEBHOOK_BYTES

    resp = tw_app.test_client().post(
        path, data=b"Body=" + b"a" * MAX_WEBHOOK_BYTES,
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": "forged"})
    assert resp.status_code == 413, path


def test_a_posted_school_search_is_cut_to_the_box_s_length(tw_app, demo_directory) -> None:
    """A posted search ran on every word it held (the box's 80 characters were checked only
    on a send): 245,000 words cost seconds of CPU against a large directory, and came back
    in the page."""
    from tipline.intake.forms import SCHOOL_QUERY_MAX

    client = tw_app.test_client()
    page = client.get("/report").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token is not None
    long_query = "roosevelt " + "zq " * 100_000
    resp = client.post("/report", data={"csrf_token": token.group(1), "school_q": long_query,
                                        "find_school": "1"})
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert "zq zq zq" in body  # the search as cut is shown ...
    assert "zq " * (SCHOOL_QUERY_MAX // 3 + 1) not in body  # ... and no more of it
    assert len(body) < 200_000
