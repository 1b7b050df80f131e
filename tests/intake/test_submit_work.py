"""Work a stored web tip no longer does (issue 15), and the behaviour each change keeps.

Each test counts a call that used to run on every submit and fails if it comes back; the
page-level tests beside it show the protection or the output is what it was.
"""

from __future__ import annotations

from typing import Any

import flask_wtf.csrf
import pytest
from sqlalchemy import func, select

from tests.intake.helpers import csrf_from, nonce_from, open_form, post_tip, tip_fields
from tipline.tips.models import Tip


@pytest.fixture
def csrf_signatures(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the CSRF tokens Flask-WTF signs (``generate_csrf`` runs past its ``g`` cache)."""
    signed: list[int] = []
    real = flask_wtf.csrf.generate_csrf

    def counting(*args: Any, **kwargs: Any) -> Any:
        signed.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(flask_wtf.csrf, "generate_csrf", counting)
    return signed


def test_a_stored_tip_signs_no_csrf_token(client, demo_directory, csrf_signatures) -> None:
    """The receipt shows no form: the token WTForms used to sign as the form was built
    was thrown away on every stored tip."""
    token, html = open_form(client)
    assert csrf_signatures, "the form page must carry a signed token"
    csrf_signatures.clear()
    resp = client.post("/report", data=tip_fields(token, submission=nonce_from(html)),
                       content_type="application/x-www-form-urlencoded")
    assert "Your tip was received" in resp.get_data(as_text=True)
    assert csrf_signatures == []


def test_a_form_shown_again_carries_a_token_that_is_accepted(client, demo_directory,
                                                              csrf_signatures) -> None:
    """A page shown again (a missing answer) still has a token, and sending with it works."""
    resp = post_tip(client, category="")
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert csrf_signatures
    again = tip_fields(csrf_from(html), submission=nonce_from(html))
    sent = client.post("/report", data=again, content_type="multipart/form-data")
    assert "Your tip was received" in sent.get_data(as_text=True)


@pytest.mark.parametrize("token", ["", "not-a-token", None])
def test_a_tip_without_a_good_token_is_still_refused(client, db_session, demo_directory,
                                                     token: str | None) -> None:
    open_form(client)
    data = tip_fields(token or "")
    if token is None:
        del data["csrf_token"]
    resp = client.post("/report", data=data, content_type="multipart/form-data")
    assert "Your tip was received" not in resp.get_data(as_text=True)
    assert db_session.execute(select(func.count()).select_from(Tip)).scalar_one() == 0


def test_the_tip_form_skips_the_rate_limiter_and_the_follow_up_limit_still_counts(
        client, demo_directory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tip form has no rate limit by design (docs/reporter.md): Flask-Limiter is told so
    and does not resolve the limits of each submit; the follow-up code's limit is resolved
    and applied as before."""
    from flask_limiter._manager import LimitManager

    resolved: list[str | None] = []
    real = LimitManager.resolve_limits

    def counting(self: Any, app: Any, endpoint: str | None, *args: Any, **kwargs: Any) -> Any:
        resolved.append(endpoint)
        return real(self, app, endpoint, *args, **kwargs)

    monkeypatch.setattr(LimitManager, "resolve_limits", counting)
    token, html = open_form(client)
    resp = client.post("/report", data=tip_fields(token, submission=nonce_from(html)),
                       content_type="application/x-www-form-urlencoded")
    assert "Your tip was received" in resp.get_data(as_text=True)
    assert "intake.report" not in resolved
    for _ in range(11):
        last = client.post("/followup", data={"csrf_token": token, "code": "WRONG-CODE-0"})
    assert "intake.followup" in resolved
    assert last.status_code == 429
