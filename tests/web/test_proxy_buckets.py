"""Rate-limit buckets behind the reverse proxy: one per reporter, never one for everybody.

Every request below comes from the same peer, the proxy at 10.0.0.2, as it would in the
deployment the README describes. ``TIPLINE_TRUSTED_PROXY_HOPS`` says how many proxies append
to ``X-Forwarded-For``; with 0 the header is ignored, so a client cannot pick its own bucket.
"""

from __future__ import annotations

from typing import Any

from tests.staffsupport import csrf_token
from tests.web.limits import build_app, client_at, wrong_code
from tipline.accounts.web import ADDRESS_LIMIT
from tipline.intake.views import CODE_LIMIT

__all__ = ["build_app"]  # the fixture

PROXY = "10.0.0.2"


def _allowed(limit: str) -> int:
    return int(limit.split()[0])


class Reporter:
    """A browser behind the proxy; ``forwarded`` is the X-Forwarded-For the app receives."""

    def __init__(self, app: Any, forwarded: str | None) -> None:
        self.client = client_at(app, PROXY)
        self.headers = {"X-Forwarded-For": forwarded} if forwarded else {}

    def wrong_code(self) -> int:
        return wrong_code(self.client, self.headers)

    def wrong_password(self, i: int) -> int:
        token = csrf_token(self.client)
        return int(self.client.post("/staff/login", headers=self.headers, data={
            "email": f"nobody{i}@staff.example.org", "password": "wrong password here",
            "csrf_token": token}).status_code)


def _exhaust_codes(reporter: Reporter) -> None:
    for _ in range(_allowed(CODE_LIMIT)):
        assert reporter.wrong_code() == 400
    assert reporter.wrong_code() == 429


def _exhaust_sign_in(reporter: Reporter) -> None:
    for i in range(_allowed(ADDRESS_LIMIT)):
        assert reporter.wrong_password(i) == 401
    assert reporter.wrong_password(999) == 429


def test_behind_one_proxy_each_reporter_has_their_own_follow_up_bucket(build_app) -> None:
    app = build_app(trusted_proxy_hops=1)
    _exhaust_codes(Reporter(app, "198.51.100.7"))
    # Another student behind the same proxy is not locked out by the first one.
    assert Reporter(app, "198.51.100.8").wrong_code() == 400


def test_behind_one_proxy_each_browser_has_its_own_sign_in_bucket(build_app) -> None:
    app = build_app(trusted_proxy_hops=1)
    _exhaust_sign_in(Reporter(app, "198.51.100.7"))
    assert Reporter(app, "198.51.100.8").wrong_password(0) == 401


def test_behind_one_proxy_a_forged_forwarded_address_does_not_choose_the_bucket(
        build_app) -> None:
    """The proxy appends the real address; only the last (trusted) entry counts."""
    app = build_app(trusted_proxy_hops=1)
    _exhaust_codes(Reporter(app, "198.51.100.7"))
    assert Reporter(app, "203.0.113.50, 198.51.100.7").wrong_code() == 429
    # ...and a client who names a victim's address fills only their own bucket.
    _exhaust_codes(Reporter(app, "198.51.100.9, 203.0.113.66"))
    assert Reporter(app, "198.51.100.9").wrong_code() == 400


def test_with_no_trusted_proxy_the_forwarded_header_is_ignored(build_app) -> None:
    app = build_app(trusted_proxy_hops=0)
    _exhaust_codes(Reporter(app, "198.51.100.7"))
    for forged in ("198.51.100.8", "203.0.113.50, 198.51.100.8", None):
        assert Reporter(app, forged).wrong_code() == 429, forged
    _exhaust_sign_in(Reporter(app, "198.51.100.7"))
    assert Reporter(app, "198.51.100.8").wrong_password(0) == 429


def test_forms_work_through_a_tls_proxy(build_app, demo_directory) -> None:
    """Browsers send no Referer (Referrer-Policy: no-referrer); trusting the forwarded scheme
    would turn on Flask-WTF's HTTPS Referer check and refuse every form behind the proxy."""
    from tests.intake.helpers import post_tip

    client = client_at(build_app(trusted_proxy_hops=1), PROXY)
    client.environ_base.update({"HTTP_X_FORWARDED_FOR": "198.51.100.7",
                                "HTTP_X_FORWARDED_PROTO": "https"})
    resp = post_tip(client)
    assert resp.status_code == 200 and 'id="receipt-code"' in resp.get_data(as_text=True)


def test_other_forwarding_headers_never_choose_the_bucket(build_app) -> None:
    """Only the trusted proxies' X-Forwarded-For entries count: Forwarded, X-Real-IP and the
    like are a client's own words, with or without a trusted proxy, for reporters and staff."""
    forged = ({"Forwarded": "for=198.51.100.8"}, {"Forwarded": 'for="[2001:db8::8]"'},
              {"X-Real-IP": "198.51.100.8"}, {"X-Client-IP": "198.51.100.8"},
              {"True-Client-IP": "198.51.100.8"}, {"CF-Connecting-IP": "198.51.100.8"},
              {"X-Forwarded": "for=198.51.100.8"}, {"X-Cluster-Client-IP": "198.51.100.8"})
    for hops, real in ((0, None), (1, "198.51.100.7")):
        app = build_app(trusted_proxy_hops=hops)
        victim = Reporter(app, real)
        _exhaust_codes(victim)
        _exhaust_sign_in(victim)
        for headers in forged:
            other = Reporter(app, real)
            other.headers.update(headers)
            assert other.wrong_code() == 429, (hops, headers)
            assert other.wrong_password(0) == 429, (hops, headers)
