"""Staff sign-in for the dashboard: password, then TOTP (enrolled at first sign-in).

``init_auth(app)`` installs Flask-Login and the sign-in pages; other packages protect their
staff views with ``@staff_required(...)`` and read the signed-in account with
``current_staff()``. A session id carries the account's ``session_version``, so "sign out
everywhere" (a version bump) ends every other session at its next request. A session idle
for longer than ``STAFF_IDLE_SECONDS`` is signed out. An account whose password someone else
chose (``must_change_password``) sees only the change-password page until it has its own.

Keys (docs/crypto.md): the password step unwraps the personal key and stores it under a random
session key that only the session cookie carries (``KEYS_KEY``); each signed-in request builds
its ``Keychain`` from it and runs inside it, so sealed tip content opens only there. Sign-out
and idle expiry delete the server-side half.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from itsdangerous import BadData, URLSafeTimedSerializer
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from tipline.accounts import keys, notices, totp
from tipline.accounts import services as accounts
from tipline.accounts.models import StaffUser
from tipline.audit.services import record
from tipline.crypto import keychain as keychains
from tipline.db import utcnow
from tipline.web import db_session, services
from tipline.web.inputs import is_staff_path

F = TypeVar("F", bound=Callable[..., Any])

IDLE_SECONDS = 30 * 60
# The password step is good for this long before the code must follow.
PENDING_SECONDS = 5 * 60
# Failed attempts only: per salted network key, and per account (email or pending account).
ADDRESS_LIMIT = "30 per 15 minutes"
ACCOUNT_LIMIT = "10 per 15 minutes"
SEEN_KEY = "staff_seen"
# A browser that completed a sign-in keeps a signed cookie naming the account (id and session
# version; no address, no user agent). On that browser the account's pause and the per-account
# and per-network limits do not apply (it has its own per-device limit), so nobody can lock a
# counselor out of their own laptop by typing wrong passwords for their email.
DEVICE_COOKIE = "tl_dev"
DEVICE_DAYS = 90
_DEVICE_SALT = "tipline-staff-device"
PENDING_KEY = "staff_pending"
# The session's key handle: the id of its ``key_sessions`` row and the key that opens it.
KEYS_KEY = "staff_keys"
# Requests made by the page itself (polling), not by a person: they do not keep a session alive.
# An endpoint is passive when listed here, or when the request carries PASSIVE_HEADER (the
# dashboard script sets it on the queue table it re-fetches, which is an ordinary page too).
PASSIVE_ENDPOINTS: set[str] = set()
PASSIVE_HEADER = "X-Tipline-Poll"

login_manager = LoginManager()
login_manager.login_view = "accounts.login"
login_manager.session_protection = None  # no address or user-agent hash in the cookie
# Flask-Login would still write a hash of the client address and user agent into the session
# ("_id"); with protection off nothing reads it, so a random value takes its place.
login_manager._session_identifier_generator = lambda: secrets.token_hex(16)
login_manager.login_message = "Please sign in."
login_manager.login_message_category = "info"

bp = Blueprint("accounts", __name__, url_prefix="/staff")


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: str
    roles: tuple[str, ...]


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1000)])


class CodeForm(FlaskForm):
    code = StringField("6-digit code from your authenticator app",
                       validators=[DataRequired(), Length(max=12)])


class ConfirmForm(FlaskForm):
    """A form with only the CSRF token (sign-out buttons)."""


class PasswordForm(FlaskForm):
    current = PasswordField("Current password",
                            validators=[DataRequired(), Length(max=accounts.MAX_PASSWORD)])
    new = PasswordField(f"New password (at least {accounts.MIN_PASSWORD} characters)",
                        validators=[DataRequired()])
    confirm = PasswordField("New password again", validators=[
        DataRequired(), EqualTo("new", message="The two new passwords do not match.")])


# -- the contract ------------------------------------------------------------------------

def init_auth(app: Flask) -> None:
    """Install Flask-Login, the idle-expiry hook and the sign-in pages (once per app)."""
    if app.extensions.get("tipline_auth"):
        return
    app.extensions["tipline_auth"] = True
    app.extensions.setdefault("tipline_staff_nav", [])
    app.config.setdefault("STAFF_IDLE_SECONDS", IDLE_SECONDS)
    login_manager.init_app(app)
    app.before_request(_html_forms_only)
    app.before_request(_expire_idle_session)
    app.before_request(_require_own_password)
    app.before_request(_open_keychain)
    app.teardown_request(_close_keychain)
    app.register_blueprint(bp)
    register_nav(app, "accounts.access", "Access to tips", GRANTING_ROLES)


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _html_forms_only() -> None:
    """Staff pages take an HTML form of text fields and nothing else (415 otherwise).

    Flask-WTF reads a JSON body as form data when there is no form: a list, a number or a
    string raises inside it, and a value that is not a string (a number, an object, or an
    uploaded file under a text field's name) raises in the validators; each was a 500, past a
    valid CSRF header. No staff page takes a file or JSON, so such a request is refused before
    any view or form reads it, for every staff page present and to come.
    """
    if request.method in ("GET", "HEAD", "OPTIONS") or not is_staff_path(request.path):
        return
    mimetype = request.mimetype
    if mimetype and mimetype not in FORM_TYPES:
        abort(415, description="This page takes the form on the page only. Reload the page "
                               "and send the form from it.")
    if mimetype == "multipart/form-data" and request.files:
        abort(415, description="Staff pages take no file upload. Reload the page and send the "
                               "form from it.")


def current_staff() -> StaffUser:
    """The signed-in staff account; aborts with 401 if there is none."""
    user = current_user
    obj = user._get_current_object() if hasattr(user, "_get_current_object") else user
    if not getattr(obj, "is_authenticated", False) or not isinstance(obj, StaffUser):
        abort(401)
    return obj


def staff_required(*roles: str) -> Callable[[F], F]:
    """Signed in (password + TOTP), session current, account active; wrong role -> 404."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                if _wants_json():
                    return jsonify({"signed_in": False}), 401
                return redirect(url_for("accounts.login", next=_safe_next(request.full_path)))
            user = current_staff()
            if not user.totp_confirmed:
                logout_user()
                return redirect(url_for("accounts.login"))
            forced = _password_change_response(user)
            if forced is not None:
                return forced
            if roles and user.role not in roles:
                abort(404)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def register_nav(app: Flask, endpoint: str, label: str, roles: tuple[str, ...] = ()) -> None:
    """Add a link to the staff navigation (shown to the roles given; all if empty)."""
    items: list[NavItem] = app.extensions.setdefault("tipline_staff_nav", [])
    if not any(i.endpoint == endpoint for i in items):
        items.append(NavItem(endpoint, label, roles))


def nav_items() -> list[NavItem]:
    """The navigation links the signed-in account may follow."""
    user = current_user
    if not user.is_authenticated:
        return []
    items: list[NavItem] = current_app.extensions.get("tipline_staff_nav", [])
    return [i for i in items if not i.roles or user.role in i.roles]


# -- Flask-Login wiring ------------------------------------------------------------------

@login_manager.user_loader
def _load_user(user_id: str) -> StaffUser | None:
    try:
        raw_id, raw_version = user_id.split(":", 1)
        uid, version = int(raw_id), int(raw_version)
    except ValueError:
        return None
    user = db_session().get(StaffUser, uid)
    if user is None or not user.active or user.session_version != version:
        return None
    return user


def _expire_idle_session() -> None:
    if "_user_id" not in session:
        return
    now = time.time()
    seen = float(session.get(SEEN_KEY, 0))
    if now - seen > float(current_app.config["STAFF_IDLE_SECONDS"]):
        _end_keys()
        logout_user()
        session.pop(SEEN_KEY, None)
        session["staff_expired"] = True
        return
    if not _passive():
        session[SEEN_KEY] = now


# -- the session's keys ------------------------------------------------------------------

def _idle() -> timedelta:
    return timedelta(seconds=float(current_app.config["STAFF_IDLE_SECONDS"]))


def _handle() -> keys.SessionKeys | None:
    return keys.SessionKeys.from_cookie(session.get(KEYS_KEY))


def _end_keys() -> None:
    """Delete this session's server-side key half (sign-out, idle expiry, a new sign-in)."""
    handle = _handle()
    session.pop(KEYS_KEY, None)
    if handle is not None:
        sess = db_session()
        keys.end_key_session(sess, handle.sid)
        sess.commit()


def _open_keychain() -> None:
    """A signed-in request runs inside its keychain (personal key -> grants -> read keys)."""
    handle = _handle()
    if handle is None or "_user_id" not in session:
        return
    user = current_user
    if not user.is_authenticated:
        return
    sess = db_session()
    now = utcnow()
    personal = keys.session_personal_key(sess, handle, user.id, now,
                                         extend=None if _passive() else _idle())
    if personal is None:
        return
    chain = keys.keychain_for(sess, user.id, personal)
    if sess.dirty:
        sess.commit()  # the key session's expiry moved on
    g.staff_keychain = chain
    g.staff_keychain_token = keychains.enter(chain)


def _close_keychain(_exc: BaseException | None = None) -> None:
    token = g.pop("staff_keychain_token", None)
    chain = g.pop("staff_keychain", None)
    if token is not None:
        keychains.leave(token)
    if chain is not None:
        chain.forget()


def request_keychain() -> keychains.Keychain:
    """The signed-in session's keychain (empty when the session holds no keys)."""
    chain = g.get("staff_keychain")
    return chain if chain is not None else keychains.Keychain()


# What an account that must choose its own password may still reach.
PASSWORD_CHANGE_ENDPOINTS = {"accounts.password", "accounts.logout", "static"}


def _password_change_response(user: StaffUser) -> Any:
    """A redirect to the change-password page while the account must choose a password."""
    if not user.must_change_password or request.endpoint in PASSWORD_CHANGE_ENDPOINTS:
        return None
    if _wants_json():
        return jsonify({"signed_in": True, "password_change_required": True}), 403
    return redirect(url_for("accounts.password"), 303)


def _require_own_password() -> Any:
    """Every staff page, not only those behind ``staff_required`` (even a 404)."""
    if "_user_id" not in session or not request.path.startswith(bp.url_prefix or "/staff"):
        return None
    user = current_user
    if not user.is_authenticated or not isinstance(
            user._get_current_object() if hasattr(user, "_get_current_object") else user,
            StaffUser):
        return None
    return _password_change_response(cast(StaffUser, user))


def _passive() -> bool:
    return request.endpoint in PASSIVE_ENDPOINTS or request.headers.get(PASSIVE_HEADER) == "1"


def _wants_json() -> bool:
    return _passive() or request.accept_mimetypes.best == "application/json"


def _safe_next(target: str | None) -> str | None:
    """Only a path inside the staff area (never another host) is a place to return to."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/staff"):
        return None
    if parts.path.startswith("/staff/login"):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _after_sign_in_url() -> str:
    nxt = _safe_next(session.pop("staff_next", None))
    if nxt:
        return nxt
    user = current_user
    if "triage.queue" in current_app.view_functions and \
            user.role not in ("auditor", "installation_admin"):  # they read no tips
        return url_for("triage.queue")
    for item in nav_items():  # e.g. the audit log for an auditor, when that page exists
        if item.endpoint in current_app.view_functions:
            return url_for(item.endpoint)
    return url_for("accounts.account")


# -- pages -------------------------------------------------------------------------------

GENERIC_REFUSAL = ("That did not work. Check your email, password and code. After several "
                   "failed attempts an account is paused for 15 minutes.")
SPENT_REFUSAL = ("This one-time password has expired or has already been used. Ask your "
                 "district administrator to reset your account.")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if current_user.is_authenticated:
        return redirect(_after_sign_in_url())
    form = LoginForm()
    expired = bool(session.pop("staff_expired", False))
    if request.method == "GET":
        nxt = _safe_next(request.args.get("next"))
        if nxt:
            session["staff_next"] = nxt
        return render_template("staff/login.html", form=form, expired=expired)
    if not form.validate_on_submit():
        return render_template("staff/login.html", form=form), 400
    sess = db_session()
    now = utcnow()
    try:
        user = accounts.check_password(sess, form.email.data or "", form.password.data or "", now,
                                       trusted=_trusted_device(_account_of_request()))
    except accounts.SignInRefused as exc:
        sess.commit()  # the failure count is kept
        said = SPENT_REFUSAL if isinstance(exc, accounts.OneTimePasswordSpent) \
            else GENERIC_REFUSAL
        return render_template("staff/login.html", form=form, refused=said), 401
    personal = keys.unlock_or_create(sess, user, form.password.data or "")
    keys.first_reader_setup(sess, user, personal)
    handle = keys.open_key_session(sess, user, personal, timedelta(seconds=PENDING_SECONDS),
                                   now)
    sess.commit()
    _end_keys()  # an earlier, unfinished sign-in in this browser
    nxt = session.get("staff_next")
    session.clear()  # nothing from before the sign-in survives into the signed-in session
    if nxt:
        session["staff_next"] = nxt
    session[PENDING_KEY] = {"id": user.id, "v": user.session_version, "t": time.time()}
    session[KEYS_KEY] = handle.to_cookie()
    return redirect(url_for("accounts.code"), 303)


def _pending_user() -> StaffUser | None:
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict):
        return None
    if time.time() - float(pending.get("t", 0)) > PENDING_SECONDS:
        session.pop(PENDING_KEY, None)
        return None
    user = db_session().get(StaffUser, int(pending.get("id", 0)))
    if user is None or user.session_version != pending.get("v") or not user.active:
        return None
    return user


@bp.route("/login/code", methods=["GET", "POST"])
def code() -> Any:
    """Second step: the TOTP code, or enrolment (QR code) when the account has none yet."""
    user = _pending_user()
    if user is None:
        session["staff_expired"] = PENDING_KEY in session
        session.pop(PENDING_KEY, None)
        return redirect(url_for("accounts.login"), 303)
    form = CodeForm()
    sess = db_session()
    svc = services()
    enrolling = not user.totp_confirmed
    secret = None
    if enrolling:
        secret = accounts.start_enrolment(sess, svc.vault, user)
        sess.commit()
    status = 200
    refused = None
    if request.method == "POST":
        if form.validate_on_submit():
            now = utcnow()
            try:
                accounts.check_code(user, form.code.data or "", now,
                                    trusted=_trusted_device(user))
            except accounts.SignInRefused:
                sess.commit()
                refused = GENERIC_REFUSAL
                status = 401
            else:
                record(sess, "staff.enrol_totp" if enrolling else "staff.sign_in",
                       actor=f"user:{user.id}", actor_user_id=user.id,
                       object_type="staff_user", object_id=user.id)
                handle = _handle()
                if handle is not None:
                    keys.activate_key_session(sess, handle, user.id, _idle(), now)
                sess.commit()
                session.pop(PENDING_KEY, None)
                login_user(user)
                session[SEEN_KEY] = time.time()
                resp = redirect(_after_sign_in_url(), 303)
                _remember_device(resp, user)
                return resp
        else:
            status = 400
        form.code.data = ""
    context: dict[str, Any] = {"form": form, "refused": refused, "enrolling": enrolling}
    if enrolling and secret is not None:
        uri = totp.provisioning_uri(secret, user.email)
        context.update(qr=totp.qr_data_uri(uri), secret=_grouped(secret))
    return render_template("staff/code.html", **context), status


def _grouped(secret: str) -> str:
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


@bp.get("/account")
@staff_required()
def account() -> Any:
    return render_template("staff/account.html", user=current_staff(), form=ConfirmForm())


@bp.route("/account/password", methods=["GET", "POST"])
@staff_required()
def password() -> Any:
    """Change one's own password; the only page of an account that must choose one."""
    user = current_staff()
    forced = user.must_change_password
    form = PasswordForm()
    error = None
    if form.validate_on_submit():
        sess = db_session()
        now = utcnow()
        try:
            accounts.change_password(sess, user, form.current.data or "", form.new.data or "",
                                     now=now)
        except accounts.AccountError as exc:
            sess.commit()  # a wrong current password counts towards the pause
            error = str(exc)
        else:
            notice = None if forced else notices.password_changed(
                user, notices.district_admins(sess, user), now)
            # Other sessions' keys go; this one keeps its keys under a fresh session key (a
            # first password replaces the personal key pair itself).
            personal = keys.unlock_personal_key(sess, user, form.new.data or "")
            keys.end_other_key_sessions(sess, user.id, keep=None)
            session.pop(KEYS_KEY, None)
            if personal is not None:
                handle = keys.open_key_session(sess, user, personal, _idle(), now)
                keys.activate_key_session(sess, handle, user.id, _idle(), now)
                session[KEYS_KEY] = handle.to_cookie()
            sess.commit()
            # The change ended every session (version bump); this one goes on.
            login_user(user)
            session[SEEN_KEY] = time.time()
            if notice is not None:
                notices.deliver(sess, services().senders()["email"], notice)
                sess.commit()
            flash("Your password is changed. Every other session of your account has ended.",
                  "ok")
            resp = redirect(_after_sign_in_url() if forced else url_for("accounts.account"), 303)
            _remember_device(resp, user)
            return resp
    elif request.method == "POST":
        error = " ".join(e for errs in form.errors.values() for e in errs
                         if isinstance(e, str)) or "Please fill in every field."
    for field in (form.current, form.new, form.confirm):
        field.data = ""  # a password is never sent back in a page
    status = 400 if request.method == "POST" else 200
    return render_template("staff/password.html", form=form, forced=forced,
                           error=error), status


@bp.post("/logout")
def logout() -> Any:
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    if current_user.is_authenticated:
        user = current_staff()
        record(db_session(), "staff.sign_out", actor=f"user:{user.id}", actor_user_id=user.id,
               object_type="staff_user", object_id=user.id)
        db_session().commit()
    _end_keys()
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("accounts.login"), 303)


@bp.post("/logout/everywhere")
@staff_required()
def logout_everywhere() -> Any:
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    user = current_staff()
    accounts.sign_out_everywhere(user)
    keys.end_other_key_sessions(db_session(), user.id, keep=None)
    session.pop(KEYS_KEY, None)
    record(db_session(), "staff.sign_out_everywhere", actor=f"user:{user.id}",
           actor_user_id=user.id, object_type="staff_user", object_id=user.id)
    db_session().commit()
    logout_user()
    session.clear()
    flash("You are signed out on every device.", "info")
    return redirect(url_for("accounts.login"), 303)


# -- granting access to tips ---------------------------------------------------------------

GRANTING_ROLES = ("district_admin", "school_staff", "police_liaison")


def _grantable(user: StaffUser) -> list[StaffUser]:
    """Accounts of ``user``'s district (a liaison: of their agency) waiting for a key this
    session holds."""
    chain = request_keychain()
    sess = db_session()
    return [u for u in keys.waiting_for(sess, user)
            if any(k.rid in chain for k in keys.read_keys_for(sess, u))]


@bp.get("/access")
@staff_required(*GRANTING_ROLES)
def access() -> Any:
    user = current_staff()
    return render_template("staff/access.html", waiting=_grantable(user), form=ConfirmForm(),
                           own_access=keys.has_access(db_session(), user))


@bp.post("/access/<int:user_id>/grant")
@staff_required(*GRANTING_ROLES)
def grant(user_id: int) -> Any:
    """Seal the read key(s) this session holds to a waiting account of the same district."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    user = current_staff()
    target = next((u for u in _grantable(user) if u.id == user_id), None)
    if target is None:
        abort(404)
    sess = db_session()
    try:
        made = keys.grant_access(sess, request_keychain(), user, target)
    except keys.KeyAccessError as exc:
        sess.rollback()
        flash(str(exc), "error")
        return redirect(url_for("accounts.access"), 303)
    record(sess, "staff.access.grant", actor=f"user:{user.id}", actor_user_id=user.id,
           object_type="staff_user", object_id=target.id,
           detail={"keys": sorted(k.read_key.rid for k in made)})
    sess.commit()
    flash(f"{target.email} can now read tips.", "ok")
    return redirect(url_for("accounts.access"), 303)


# -- trusted devices ---------------------------------------------------------------------

def _device_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt=_DEVICE_SALT)


def _remember_device(resp: Any, user: StaffUser) -> None:
    token = _device_serializer().dumps({"u": user.id, "v": user.session_version})
    resp.set_cookie(DEVICE_COOKIE, token, max_age=DEVICE_DAYS * 86400, path="/staff",
                    secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
                    httponly=True, samesite="Strict")


def _trusted_device(user: StaffUser | None) -> bool:
    """This browser completed a sign-in on ``user`` (since its last "sign out everywhere")."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if user is None or not raw:
        return False
    try:
        data = _device_serializer().loads(raw, max_age=DEVICE_DAYS * 86400)
    except BadData:
        return False
    return isinstance(data, dict) and data.get("u") == user.id \
        and data.get("v") == user.session_version


def _account_of_request() -> StaffUser | None:
    """The account a sign-in POST is about: the email typed, or the pending account."""
    if "staff_account" not in g:
        if request.endpoint == "accounts.code":
            g.staff_account = _pending_user()
        else:
            email = (request.form.get("email") or "")[:254]
            g.staff_account = accounts.find_user(db_session(), email) if email else None
    return cast(StaffUser | None, g.staff_account)


# -- rate limits -------------------------------------------------------------------------

def _digest(purpose: str, value: str) -> str:
    secret = services().vault.derive_secret("ratelimit-account")
    return hmac.new(secret, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


def _device_key() -> str | None:
    if _trusted_device(_account_of_request()):
        return "dev-" + _digest("device", request.cookies.get(DEVICE_COOKIE, ""))
    return None


def _email_key() -> str:
    return _device_key() or "acct-" + _digest(
        "email", (request.form.get("email") or "").strip().lower())


def _pending_key() -> str:
    pending = session.get(PENDING_KEY)
    uid = pending.get("id") if isinstance(pending, dict) else None
    return _device_key() or "acct-" + _digest("user", str(uid))


def _on_trusted_device() -> bool:
    return _device_key() is not None


def _failed_attempt(resp: Any) -> bool:
    return int(resp.status_code) >= 400


def _wire(state: BlueprintSetupState) -> None:
    app = cast(Flask, state.app)
    limiter = app.extensions.get("tipline_limiter")
    if limiter is None:
        return
    for endpoint, account_key in (("accounts.login", _email_key),
                                  ("accounts.code", _pending_key)):
        view = app.view_functions[endpoint]
        view = limiter.limit(ACCOUNT_LIMIT, key_func=account_key, methods=["POST"],
                             deduct_when=_failed_attempt)(view)
        view = limiter.limit(ADDRESS_LIMIT, methods=["POST"], deduct_when=_failed_attempt,
                             exempt_when=_on_trusted_device)(view)
        app.view_functions[endpoint] = view


bp.record_once(_wire)


@bp.app_context_processor
def _staff_helpers() -> dict[str, Any]:
    return {"staff_nav": nav_items, "staff_endpoints": _endpoints}


def _endpoints() -> set[str]:
    return set(current_app.view_functions)
