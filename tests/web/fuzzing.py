"""Property-based fuzzing of every route, shared by ``tests/web/test_fuzz.py`` (a bounded run in
CI) and ``bench/fuzz.py`` (a long campaign that prints counts by status).

Routes come from ``app.url_map``, so a new route is fuzzed without anyone listing it. Each
request is drawn by Hypothesis: who sends it (nobody, a reporter with or without a follow-up
session, or a signed-in account of every role), a method, hostile path parameters, a query
string, a content type and body (forms scraped from the real pages and then mutated, multipart
with files, JSON, XML, garbage), headers, a valid, foreign or missing CSRF token and, for the
Twilio webhooks, a valid, wrong or missing signature.

Each answer is checked: no 5xx; nothing logged at ERROR; and a refused request (a 4xx, a
state-changing method without a valid CSRF token, a webhook without a valid signature) changed
nothing in the database, compared table by table (``Snapshot``).
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Flask
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from tests.staffsupport import csrf_from, make_staff, sign_in
from tests.twilio_support import PUBLIC_BASE, TEST_AUTH_TOKEN, sign
from tipline.accounts.models import Role, StaffUser
from tipline.crypto import Vault
from tipline.db import Base
from tipline.jobs import JobQueue

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
UNSAFE = {"POST", "PUT", "DELETE", "PATCH"}
WEBHOOK_PREFIX = "/twilio/"

HOSTILE_INTS = [0, 1, 2, 7, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30, 10**300]
HOSTILE_TEXT = [
    "", " ", "0", "-1", "1.5", "1e309", "NaN", "null", "true", "[]", "{}", "..", "../../etc/passwd",
    "..%2f..%2fetc", "%00", "\x00", "\r\nSet-Cookie: x=1", "<script>alert(1)</script>",
    "' OR 1=1 --", "{{7*7}}", "${jndi:ldap://x}", "é", "İ", "\u202e", "🙂" * 40, "a" * 5000,
    "9999-12-31", "0001-01-01", "0000-00-00", "2024-02-30", "99999-01-01", "-5000-01-01",
    "2024-01-01T25:61", "+13145550100", "+1" + "9" * 30, "AAAA-BBBB-CCCC-DDDD", "1,2,3",
    "? !!python/object:os.system", "{a: [b, c]}: 1", "? [a, b]\n: c", "*anchor", "&a [*a, *a]",
    "--- \n...", "\t", "١٢٣", "0x10", str(2**63), str(10**30), "-" + str(2**63),
]
HEADER_VALUES = [
    "", "127.0.0.1", "10.0.0.1, 203.0.113.9", "::1", "[::1]", "unknown", "999.999.999.999",
    "a" * 300, "evil.example.com", "localhost:99999999", "tips.example.org:443", "é.example",
    "*", "en;q=abc", "xx-YY-zz;q=2, *;q=-1", "zh-Hant-TW, es;q=0.9, bs", ";;;,,,",
]
CONTENT_TYPES = [
    "application/x-www-form-urlencoded", "multipart/form-data", "application/json",
    "application/xml", "text/xml", "text/plain", "application/octet-stream", "image/png",
    "multipart/form-data; boundary=", "multipart/form-data; boundary=zzz",
    "application/x-www-form-urlencoded; charset=utf-7", "application/json; charset=latin-1",
    "garbage", "text/html; charset=\x7f", "", None,
]
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
FILE_NAMES = ["photo.png", "../../x.png", "", "a" * 300 + ".jpg", "évidence.jpeg", "x.php"]
FILE_BODIES = [PNG, b"", b"GIF89a" + b"\x00" * 20, b"\xff\xd8\xff" + b"\x00" * 50,
               b"%PDF-1.4 not an image", secrets.token_bytes(64)]


# -- what the app offers ------------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    rule: str
    endpoint: str
    methods: tuple[str, ...]
    args: tuple[tuple[str, str], ...]  # (name, converter class name)

    @property
    def webhook(self) -> bool:
        return self.rule.startswith(WEBHOOK_PREFIX)


def routes(app: Flask) -> list[Route]:
    """Every rule in the app's URL map (a new blueprint is fuzzed without being listed)."""
    found = []
    for rule in app.url_map.iter_rules():
        found.append(Route(rule.rule, rule.endpoint, tuple(sorted(rule.methods or ())),
                           tuple((name, type(conv).__name__)
                                 for name, conv in rule._converters.items())))
    return sorted(found, key=lambda r: r.rule)


class _Forms(HTMLParser):
    """The forms of a page: action, then each field's name and value (select: its options)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, list[str]]]] = []
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append((a.get("method", "get").upper() + " " + a.get("action", ""), {}))
            return
        if not self.forms:
            return
        fields = self.forms[-1][1]
        name = a.get("name")
        if tag == "input" and name:
            fields.setdefault(name, []).append(a.get("value", "on"))
        elif tag == "textarea" and name:
            self._textarea = name
            fields.setdefault(name, [])
        elif tag == "select" and name:
            self._select = name
            fields.setdefault(name, [])
        elif tag == "option" and self._select:
            fields[self._select].append(a.get("value", ""))
        elif tag == "button" and name:
            fields.setdefault(name, []).append(a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._textarea and self.forms:
            self.forms[-1][1][self._textarea].append(data)


# -- who sends the requests ---------------------------------------------------------------------

@dataclass
class Actor:
    """A browser: its session cookie and CSRF token, as left by signing in (restored before
    every request, so one request never changes who the next one is)."""

    name: str
    cookie: str | None = None
    csrf: str | None = None
    user_id: int | None = None
    session_version: int | None = None


@dataclass
class World:
    actors: list[Actor]
    routes: list[Route]
    forms: dict[str, list[dict[str, list[str]]]] = field(default_factory=dict)
    field_names: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # real ids and uids: a path can reach a row

    def __repr__(self) -> str:  # Hypothesis prints the fixtures of a failing example
        return (f"World({len(self.actors)} actors, {len(self.routes)} routes, "
                f"{sum(map(len, self.forms.values()))} forms)")


ROLE_SCOPE: dict[str, dict[str, Any]] = {
    "district_admin": {"district": "slps"},
    "school_staff": {"schools": ["slps-roosevelt"]},
    "police_liaison": {"contact": "stlco-liaison"},
}


def seed(session: Session, vault: Vault, queue: JobQueue) -> dict[str, Any]:
    """One account per role (``Role``: a new role is fuzzed too) and a few tips, one of them
    routed to the liaison; commits. Needs the demo directory."""
    from sqlalchemy import select

    from tests.factories import make_tip
    from tipline.directory.models import Contact
    from tipline.intake.services import AttachmentIn
    from tipline.routing.models import Dispatch
    from tipline.tips.models import Category, Channel, Severity

    accounts: dict[str, tuple[StaffUser, str, str]] = {}
    for role in Role:
        accounts[role.value] = make_staff(session, vault, role.value,
                                          **ROLE_SCOPE.get(role.value, {}))
    receipts = [
        make_tip(session, vault, queue, school_code="slps-roosevelt", body="fuzz: a fight"),
        make_tip(session, vault, queue, school_code="cty-northview", body="fuzz: a knife",
                 category=Category.WEAPON, severity=Severity.HIGH),
        make_tip(session, vault, queue, school_code="slps-roosevelt", body="fuzz: a picture",
                 attachments=[AttachmentIn("image", "image/png", PNG)]),
        make_tip(session, vault, queue, school_code="slps-roosevelt", body="fuzz: by text",
                 channel=Channel.SMS, phone="+13145559876", receipt_kind="digits"),
    ]
    liaison = session.execute(select(Contact.id).where(Contact.key == "stlco-liaison")
                              ).scalar_one()
    session.add(Dispatch(job_id=receipts[1].job_id, tip_id=receipts[1].tip_id,
                         contact_id=liaison, rule="fuzz", channels=["sms"], status="active"))
    _group(session, [receipts[0].tip_id, receipts[2].tip_id])
    session.commit()
    return {"accounts": accounts, "receipts": receipts}


def _group(session: Session, tip_ids: list[int]) -> None:
    """A surge group (tipline.surge) of these tips, so the group routes reach a real one."""
    from sqlalchemy import update

    from tipline.surge.models import TipGroup, TipSignature
    from tipline.tips.models import Tip

    first = session.get(Tip, tip_ids[0])
    assert first is not None
    group = TipGroup(school_id=first.school_id, district_id=first.district_id,
                     lead_tip_id=first.id, tip_count=len(tip_ids),
                     alerted_severity=first.severity, alerted_signals=[], unnoticed=0)
    session.add(group)
    session.flush()
    session.execute(update(TipSignature).where(TipSignature.tip_id.in_(tip_ids))
                    .values(group_id=group.id))


def prepare(app: Flask, session: Session, seeded: dict[str, Any]) -> World:
    """Sign every actor in the real way, scrape the forms each can see, collect real ids."""
    from sqlalchemy import select

    from tipline.directory.models import Contact, School
    from tipline.routing.models import AlertDelivery
    from tipline.tips.models import Attachment, Tip

    app.config["STAFF_IDLE_SECONDS"] = 10**9  # a long campaign outlasts the idle sign-out
    limiter = app.extensions.get("tipline_limiter")
    if limiter is not None:
        limiter.enabled = False  # the limits have their own tests; here they hide the views
    world = World(actors=[Actor("nobody")], routes=routes(app))
    ids: set[str] = set()
    from tipline.surge.models import TipGroup

    for column in (Tip.uid, Attachment.uid, School.id, Contact.id, StaffUser.id,
                   AlertDelivery.id, TipGroup.uid):
        ids |= {str(v) for v in session.execute(select(column).limit(20)).scalars()}
    world.ids = sorted(ids)

    anon = app.test_client()
    world.actors.append(_browser(app, anon, "anonymous", world, "/report"))
    reporter = app.test_client()
    token = csrf_from(reporter.get("/followup").get_data(as_text=True))
    resp = reporter.post("/followup", data={"csrf_token": token,
                                            "code": seeded["receipts"][0].receipt_code})
    assert resp.status_code == 303, f"follow-up sign-in refused ({resp.status_code})"
    world.actors.append(_browser(app, reporter, "reporter", world, "/followup/tip"))
    for role, (user, password, secret) in seeded["accounts"].items():
        client = app.test_client()
        sign_in(client, user.email, password, secret)
        actor = _browser(app, client, role, world, "/staff/account/password")
        session.refresh(user)
        actor.user_id, actor.session_version = user.id, user.session_version
        world.actors.append(actor)
    world.field_names = sorted({n for fs in world.forms.values() for f in fs for n in f}
                               | _webhook_field_names())
    world.values = sorted({v for fs in world.forms.values() for f in fs for vs in f.values()
                           for v in vs if len(v) < 200} | set(world.ids))
    return world


def _browser(app: Flask, client: Any, name: str, world: World, form_page: str) -> Actor:
    """Crawl what this browser can GET (forms, their fields), then keep its cookie and token."""
    for route in world.routes:
        if "GET" not in route.methods or route.webhook or route.endpoint == "static":
            continue
        paths = [route.rule] if not route.args else [
            _fill(route.rule, {n: v for n, _c in route.args}) for v in world.ids
            if v.isdigit() == (route.args[-1][1] == "IntegerConverter")]
        for path in paths:
            try:
                resp = client.get(path)
            except Exception:  # noqa: S112 - the fuzzing itself reports it, with the request
                continue
            if resp.status_code != 200 or resp.mimetype != "text/html":
                continue
            parser = _Forms()
            parser.feed(resp.get_data(as_text=True))
            for target, fields in parser.forms:
                method, _, action = target.partition(" ")
                endpoint = _endpoint_of(app, action or path, method)
                if endpoint and fields:
                    world.forms.setdefault(endpoint, []).append(fields)
    page = client.get(form_page).get_data(as_text=True)
    cookie = client.get_cookie("tl")
    return Actor(name, cookie.value if cookie else None, csrf_from(page))


def _endpoint_of(app: Flask, action: str, method: str) -> str | None:
    adapter = app.url_map.bind("localhost")
    try:
        endpoint, _args = adapter.match(urlsplit(action).path, method=method)
    except Exception:
        return None
    return str(endpoint)


def _webhook_field_names() -> set[str]:
    from tests.twilio_support import webhook_example, webhook_fields

    names: set[str] = set()
    for kind in ("sms_inbound", "sms_status_callback", "voice_inbound", "voice_gather_action",
                 "voice_record_action", "voice_recording_status_callback",
                 "voice_transcription_callback", "voice_status_callback"):
        names |= set(webhook_example(kind))
        for key in ("always", "sometimes", "adds_to_standard"):
            names |= set(webhook_fields(kind).get(key) or [])
    return {n for n in names if isinstance(n, str)}


def _fill(rule: str, values: dict[str, str]) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values.get(m.group(1), "x"), rule)


def restore_actor(conn: Connection, actor: Actor) -> None:
    """Undo what a previous request did to this actor's account (signed out everywhere,
    deactivated, told to change its password), so its saved cookie signs it in again."""
    if actor.user_id is None:
        return
    values = {"session_version": actor.session_version, "active": True, "locked_until": None,
              "failed_logins": 0}
    for optional in ("must_change_password", "password_expires_at"):
        if hasattr(StaffUser, optional):
            values[optional] = None if optional.endswith("_at") else False
    sets = ", ".join(f"{k} = :{k}" for k in values)
    conn.execute(text(f"UPDATE staff_users SET {sets} WHERE id = :id"),
                 {**values, "id": actor.user_id})


# -- the requests -------------------------------------------------------------------------------

@dataclass
class FuzzRequest:
    actor: str
    method: str
    path: str
    endpoint: str
    query: str
    headers: dict[str, str]
    content_type: str | None
    body: Any  # bytes, or a dict for a form the test client encodes
    csrf: str  # valid | foreign | missing
    signature: str  # valid | wrong | missing (webhooks)

    def describe(self) -> str:
        body = self.body if isinstance(self.body, dict) else repr(self.body[:200])
        return (f"{self.actor} {self.method} {self.path}?{self.query[:200]} "
                f"[{self.content_type!r}] csrf={self.csrf} sig={self.signature} body={body!s:.400}")


def _text() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(HOSTILE_TEXT), st.sampled_from(HOSTILE_INTS).map(str),
                     st.text(st.characters(codec="utf-8"), max_size=40))


def _path_value(world: World, converter: str) -> st.SearchStrategy[str]:
    numbers = st.one_of(st.sampled_from(HOSTILE_INTS), st.integers(min_value=0, max_value=10**40))
    options = [numbers.map(str), st.sampled_from(world.ids or ["1"]),
               _text().map(lambda s: quote(s, safe=""))]
    if converter != "IntegerConverter":
        options.append(_text().map(lambda s: quote(s, safe="/")))
    return st.one_of(*options)


@st.composite
def _fields(draw: st.DrawFn, world: World, endpoint: str, extra: int) -> dict[str, list[str]]:
    """A form scraped from a page that posts to this endpoint, some values kept and some made
    hostile, plus random fields; or random fields only."""
    fields: dict[str, list[str]] = {}
    value = st.one_of(st.sampled_from(world.values or ["x"]), _text())
    scraped = world.forms.get(endpoint, [])
    if scraped and draw(st.integers(0, 3)):
        form = draw(st.sampled_from(scraped))
        for name, options in form.items():
            keep = draw(st.integers(0, 5))
            if options and keep > 1:  # most fields keep a real value
                fields[name] = [draw(st.sampled_from(options))]
            elif keep == 1:
                fields[name] = [draw(value)]
    names = st.one_of(st.sampled_from(world.field_names or ["x"]), _text())
    for name, v in draw(st.lists(st.tuples(names, value), max_size=extra)):
        fields.setdefault(name, []).append(v)
    return fields


@st.composite
def fuzz_requests(draw: st.DrawFn, world: World) -> FuzzRequest:
    actor = draw(st.sampled_from(world.actors))
    if draw(st.integers(0, 19)) == 0:  # now and then, a path no rule matches exactly
        route = Route(draw(st.sampled_from(
            ["/staff/..", "//staff", "/staff/admin/../admin/users", "/static/../tipline/app.py",
             "/twilio", "/report/", "/%ff", "/staff/tips/", "/nonexistent"])), "", (), ())
    else:
        route = draw(st.sampled_from(world.routes))
    path = _fill(route.rule, {name: draw(_path_value(world, conv)) for name, conv in route.args})
    allowed = [m for m in route.methods if m in METHODS] or ["GET"]
    method = draw(st.sampled_from(allowed) if draw(st.integers(0, 4)) else st.sampled_from(METHODS))

    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}"
                     for k, vs in draw(_fields(world, route.endpoint, 3)).items() for v in vs)
    fields = draw(_fields(world, route.endpoint, 6))

    csrf = draw(st.sampled_from(["valid", "valid", "valid", "valid", "foreign", "missing"]))
    fields.pop("csrf_token", None)
    if csrf == "valid" and actor.csrf:
        fields["csrf_token"] = [actor.csrf]
    elif csrf == "foreign":
        fields["csrf_token"] = [draw(st.sampled_from(
            [a.csrf for a in world.actors if a.csrf and a.csrf != actor.csrf] or ["x"]))]
    if csrf == "valid" and not actor.csrf:
        csrf = "missing"

    content_type = draw(st.sampled_from(CONTENT_TYPES))
    body: Any
    kind = draw(st.sampled_from(["form", "form", "form", "multipart", "json", "raw"]))
    if kind == "form":
        content_type = "application/x-www-form-urlencoded"
        body = fields
    elif kind == "multipart":
        content_type = "multipart/form-data"
        body = dict(fields)
        for _ in range(draw(st.integers(0, 3))):
            body.setdefault(draw(st.sampled_from(["attachments", "file", "MediaUrl0"])), []).append(
                (io.BytesIO(draw(st.sampled_from(FILE_BODIES))), draw(st.sampled_from(FILE_NAMES)),
                 draw(st.sampled_from(["image/png", "image/jpeg", "text/plain", ""]))))
    elif kind == "json":
        body = json.dumps(draw(st.sampled_from(
            [{k: v[0] for k, v in fields.items()}, [], None, "x", 10**30]))).encode()
    else:
        body = draw(st.one_of(st.binary(max_size=300),
                              st.sampled_from([b"<?xml version='1.0'?><a>&x;</a>", b"{",
                                               b"a=1&a=2&%zz=%", b"--zzz\r\n\r\n--zzz--"])))

    headers: dict[str, str] = {}
    for name in draw(st.lists(st.sampled_from(
            ["X-Forwarded-For", "X-Forwarded-Proto", "Host", "Accept-Language", "Accept",
             "X-Tipline-Poll", "Referer", "Origin", "User-Agent", "X-Requested-With",
             "Cookie"]), max_size=4, unique=True)):
        headers[name] = draw(st.one_of(st.sampled_from(
            [*HEADER_VALUES, "application/json", "text/html", "1", "https"]), _text()))
    headers = {k: v.replace("\r", "").replace("\n", "") for k, v in headers.items()}
    cookie_junk = headers.pop("Cookie", "")
    cookie = f"tl={actor.cookie}" if actor.cookie else ""
    if cookie_junk:
        cookie = f"{cookie}; {cookie_junk}" if cookie and draw(st.booleans()) else cookie_junk
    if cookie:
        headers["Cookie"] = cookie

    signature = "missing"
    if route.webhook:
        signature = draw(st.sampled_from(["valid", "valid", "wrong", "missing"]))
        if signature == "valid" and kind == "form":
            url = PUBLIC_BASE + path + (f"?{query}" if query else "")
            params = MultiDict([(k, v) for k, vs in fields.items() for v in vs])
            headers["X-Twilio-Signature"] = RequestValidator(TEST_AUTH_TOKEN).compute_signature(
                url, params)
        elif signature == "wrong":
            headers["X-Twilio-Signature"] = draw(st.sampled_from(
                ["", "x", "a" * 28 + "=", sign(PUBLIC_BASE + "/other", {}, TEST_AUTH_TOKEN)]))
        else:
            signature = "missing"
    return FuzzRequest(actor.name, method, path, route.endpoint, query, headers, content_type,
                       body, csrf, signature)


# -- sending and checking -----------------------------------------------------------------------

class ErrorLog(logging.Handler):
    """Every record at ERROR or above, from any logger."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def capture_errors() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


# What a refused request may still write, and why:
#   staff_users.failed_logins / locked_until: a wrong password or code is counted, which is
#   the point of the lockout; audit_events: a refused sign-in is audited. Both only on the
#   sign-in pages.
REFUSED_MAY_WRITE: dict[str, set[str]] = {
    "accounts.login": {"staff_users", "audit_events"},
    "accounts.code": {"staff_users", "audit_events"},
}
# Columns left out of the comparison everywhere: a sign-in (of the fuzzing harness itself, as
# each actor is restored) and the idle clock.
IGNORED_COLUMNS = {"staff_users": {"last_login_at"}}


class Snapshot:
    """A digest of every table's rows (PostgreSQL), to tell whether a request wrote anything."""

    def __init__(self) -> None:
        parts = []
        for table in Base.metadata.sorted_tables:
            cols = [c.name for c in table.columns
                    if c.name not in IGNORED_COLUMNS.get(table.name, set())]
            row = "ROW(" + ", ".join(f't."{c}"' for c in cols) + ")::text"
            parts.append(f"SELECT '{table.name}' AS name, md5(coalesce(string_agg({row}, '|' "
                         f"ORDER BY {row}), '')) AS digest FROM \"{table.name}\" t")
        self.sql = text(" UNION ALL ".join(parts))

    def take(self, conn: Connection) -> dict[str, str]:
        return {name: digest for name, digest in conn.execute(self.sql)}


@dataclass
class Outcome:
    request: FuzzRequest
    status: int
    errors: list[str]
    changed: list[str]
    refused: bool

    def problems(self) -> list[str]:
        found = []
        if self.status >= 500:
            found.append(f"status {self.status}")
        if self.errors:
            found.append("logged at ERROR: " + " | ".join(self.errors)[:2000])
        allowed = REFUSED_MAY_WRITE.get(self.request.endpoint, set())
        wrote = [t for t in self.changed if t not in allowed]
        if self.refused and wrote:
            found.append(f"refused ({self.status}) yet changed {wrote}")
        return found


def send(app: Flask, client: Any, world: World, req: FuzzRequest,
         conn: Connection, snapshot: Snapshot, errors: ErrorLog) -> Outcome:
    """Restore the actor, send the request, and say what it did."""
    actor = next(a for a in world.actors if a.name == req.actor)
    restore_actor(conn, actor)
    before = snapshot.take(conn)
    errors.records.clear()
    kwargs: dict[str, Any] = {"method": req.method, "query_string": req.query,
                              "headers": req.headers}
    body = req.body
    if isinstance(body, dict):
        # Files are read once: give each attempt fresh streams (Hypothesis replays examples).
        body = {k: [(io.BytesIO(v[0].getvalue()), *v[1:]) if isinstance(v, tuple) else v
                    for v in vs] for k, vs in body.items()}
        kwargs["data"] = body
        kwargs["content_type"] = req.content_type
    else:
        kwargs["data"] = body
        if req.content_type is not None:
            kwargs["content_type"] = req.content_type
    try:
        resp = client.open(req.path, **kwargs)
        status = resp.status_code
        resp.close()
    except Exception as exc:  # a view that raised: the server would have answered 500
        logging.getLogger("tests.fuzz").error("raised %r", exc, exc_info=True)
        status = 500
    after = snapshot.take(conn)
    changed = sorted(t for t in before if before[t] != after.get(t))
    refused = (status >= 400
               or (req.method in UNSAFE and not req.path.startswith(WEBHOOK_PREFIX)
                   and req.csrf != "valid")
               or (req.path.startswith(WEBHOOK_PREFIX) and req.signature != "valid"))
    messages = [_describe_record(r) for r in errors.records]
    return Outcome(req, status, messages, changed, refused)


def _describe_record(record: logging.LogRecord) -> str:
    message = f"{record.name}: {record.getMessage()}"
    if record.exc_info:
        import traceback

        exc = record.exc_info[1]
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        frames = [f"{f.filename.rsplit('/tipline/', 1)[-1]}:{f.lineno} {f.name}"
                  for f in traceback.extract_tb(record.exc_info[2]) if "/tipline/" in f.filename]
        message += f" [{type(exc).__name__}: {first}] at " + " < ".join(reversed(frames[-4:]))
    return message


def fuzz_client(app: Flask) -> Any:
    """A client without a cookie jar: each request carries exactly the cookies drawn for it."""
    return app.test_client(use_cookies=False)

