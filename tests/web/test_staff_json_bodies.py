"""A JSON body (or any body that is not an HTML form) on a staff form gets a 4xx, never a 500.

Flask-WTF reads a JSON body as form data when there is no form body, and a list, a number, a
string or a value that is not a string in a field raises inside WTForms. The staff pages take
HTML forms only (``tipline.web.forms.HtmlForm``). Each body is sent with a valid CSRF token in
the ``X-CSRFToken`` header, so it gets past the CSRF check to the form, signed in as each role
that can reach the route.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from sqlalchemy import select

from tests.factories import make_tip
from tests.staffsupport import csrf_token, make_staff, sign_in
from tipline.directory.models import Contact, School

# Every field name of every staff form, each given a value that is not a string.
FIELDS = ("csrf_token", "email", "password", "code", "new_password", "confirm", "current",
          "body", "reason", "status", "outcome", "assignee", "category", "severity", "name",
          "aliases", "key", "role", "sms", "voice", "on_call", "priority", "agency", "schools",
          "display_name", "district", "contact", "policy", "source", "text", "templates",
          "confirm_text", "section", "from", "to", "school", "value")
ODD_VALUES: list[Any] = [5, 1.5, {"a": 1}, [[1], {"b": 2}], None, True, ["x", 3]]


def _bodies(token: str) -> list[tuple[str, bytes | str]]:
    out: list[tuple[str, bytes | str]] = [
        ("application/json", "[1, 2]"), ("application/json", "5"),
        ("application/json", '"text"'), ("application/json", "{not json"),
        ("application/json", "null"), ("application/json", "true"),
        ("application/json", b"\xff\xfe"), ("text/plain", "body=x"),
        ("application/xml", "<a/>"),
    ]
    for value in ODD_VALUES:
        obj = dict.fromkeys(FIELDS, value) | {"csrf_token": token}
        out.append(("application/json", json.dumps(obj)))
    out.append(("application/json", json.dumps({"csrf_token": token})))
    out.append(("multipart/form-data", b""))
    return out


def _post(client: Any, path: str, ctype: str, body: bytes | str, token: str) -> int:
    if ctype == "multipart/form-data":  # a file where a form takes text
        data: dict[str, Any] = {"csrf_token": token}
        data |= {f: (io.BytesIO(b"x"), "x.txt") for f in FIELDS if f != "csrf_token"}
        return int(client.post(path, data=data, content_type=ctype,
                               headers={"X-CSRFToken": token}).status_code)
    return int(client.post(path, data=body, content_type=ctype,
                           headers={"X-CSRFToken": token}).status_code)


def _post_routes(app: Any) -> list[Any]:
    return sorted((r for r in app.url_map.iter_rules()
                   if "POST" in (r.methods or ()) and r.rule.startswith("/staff")),
                  key=lambda r: r.rule)


def _fill(rule: Any, ids: dict[str, Any]) -> str:
    from flask import url_for
    from werkzeug.routing import IntegerConverter

    def default(arg: str) -> Any:  # a number for <int:...> parts (e.g. a rota's id), else text
        return 1 if isinstance(rule._converters.get(arg), IntegerConverter) else "x"

    values = {a: ids[a] if a in ids else default(a)
              for a in rule.arguments if a not in (rule.defaults or {})}
    return url_for(rule.endpoint, **values)


@pytest.mark.parametrize("role", ["district_admin", "installation_admin", "school_staff",
                                  "police_liaison", None])
def test_no_body_of_any_shape_gets_a_500_from_a_staff_form(app, client, db_session, vault,
                                                           queue, demo_directory, role):
    receipt = make_tip(db_session, vault, queue, school_code="slps-roosevelt")
    kw: dict[str, Any] = {"district_admin": {"district": "slps"},
                          "school_staff": {"schools": ["slps-roosevelt"]},
                          "police_liaison": {"contact": "slpd-liaison"}}.get(role or "", {})
    if role is not None:
        user, password, secret = make_staff(db_session, vault, role, **kw)
        db_session.commit()
        sign_in(client, user.email, password, secret)
    from tipline.tips.models import Tip

    tip = db_session.get(Tip, receipt.tip_id)
    ids = {
        "uid": tip.uid, "school_id": db_session.execute(
            select(School.id).where(School.code == "slps-roosevelt")).scalar_one(),
        "contact_id": db_session.execute(
            select(Contact.id).where(Contact.key == "slps-oncall")).scalar_one(),
        "user_id": make_staff(db_session, vault, "school_staff",
                              schools=["slps-roosevelt"])[0].id,
        "action": "reset",
    }
    db_session.commit()
    token = csrf_token(client, "/staff/login" if role is None else "/staff/account/password")
    failures = []
    with app.test_request_context():
        routes = [(r.rule, _fill(r, ids)) for r in _post_routes(app)]
    for rule, path in routes:
        for ctype, body in _bodies(token):
            try:
                status = _post(client, path, ctype, body, token)
            except Exception as exc:  # the test app lets a view's error through
                status = f"{type(exc).__name__}: {exc}"[:80]
            if not isinstance(status, int) or status >= 500:
                failures.append((rule, ctype, body[:40], status))
                db_session.rollback()
    assert failures == [], "\n".join(map(str, failures))
