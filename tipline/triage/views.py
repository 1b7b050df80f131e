"""The dashboard pages: queue, tip detail and the actions on a tip.

Views parse the request, call ``tipline.triage.services`` and render. An out-of-scope tip and
a role that may not act are both answered with 404.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, TextAreaField
from wtforms.validators import Length, Optional

from tipline.accounts.web import PASSIVE_ENDPOINTS, current_staff, init_auth, staff_required
from tipline.crypto import CryptoError, KeyUnavailable
from tipline.db import utcnow
from tipline.directory import zones
from tipline.tips.labels import CATEGORY_LABELS, CHANNEL_LABELS, SEVERITY_LABELS
from tipline.tips.models import Channel
from tipline.triage import services as triage
from tipline.triage.conversation import unread_count
from tipline.triage.scope import (
    CASE_ROLES,
    READ_ROLES,
    WRITE_ROLES,
    TipNotFound,
    scope_condition,
)
from tipline.typed import typed_number
from tipline.web import db_session, services
from tipline.web.inputs import FIRST_DATE, LAST_DATE

bp = Blueprint("triage", __name__, url_prefix="/staff")

FILTER_ARGS = ("school", "category", "status", "channel", "from", "to")
ATTACHMENT_CSP = "default-src 'none'; img-src 'self'; media-src 'self'; sandbox"


class ActionForm(FlaskForm):
    """Every tip action posts through this form (it carries the CSRF token)."""

    body = TextAreaField("Text", validators=[Optional(), Length(max=triage.MAX_TEXT)])
    status = SelectField("New status", choices=list(triage.STATUS_LABELS.items()),
                         validate_choice=False)
    reason = TextAreaField("Reason", validators=[Optional(), Length(max=triage.MAX_REASON)])
    outcome = SelectField("Outcome (when closing)",
                          choices=[("", "—"), *triage.OUTCOMES.items()], validate_choice=False)
    assignee = SelectField("Assign to", choices=[], validate_choice=False)
    category = SelectField("Category", choices=list(CATEGORY_LABELS.items()),
                           validate_choice=False)
    severity = SelectField("Severity", choices=[(str(k), v) for k, v in SEVERITY_LABELS.items()],
                           validate_choice=False)
    confirm = HiddenField()


def register(app: Flask) -> None:
    """Sign-in first (the dashboard needs it), then the dashboard itself."""
    init_auth(app)
    from tipline.triage import page_views

    app.register_blueprint(bp)
    PASSIVE_ENDPOINTS.update({"triage.state", "triage.banner"})
    page_views.register(app)


@bp.app_context_processor
def _dashboard_helpers() -> dict[str, Any]:
    return {
        "staff_banner": _banner_for_page,
        "severity_label": lambda s: SEVERITY_LABELS.get(int(s), str(s)),
        "category_label": lambda c: CATEGORY_LABELS.get(c, c),
        "status_label": lambda s: triage.STATUS_LABELS.get(s, s),
        "channel_label": lambda c: CHANNEL_LABELS.get(c, c),
        "outcome_label": lambda o: triage.OUTCOMES.get(o, o),
        "fmt_time": _fmt_time,
        "staff_zone": staff_zone,
    }


def _fmt_time(value: Any, seconds: bool = False) -> str:
    """A stored UTC time in the reader's district time, zone named (``directory.zones``)."""
    return zones.local_text(value, staff_zone(), seconds=seconds)


def staff_zone() -> Any:
    """The signed-in account's zone, looked up once per request."""
    if "staff_zone" not in g:
        from flask_login import current_user

        user = current_user if getattr(current_user, "is_authenticated", False) else None
        g.staff_zone = zones.staff_zone(db_session(), user)
    return g.staff_zone


def _banner_for_page() -> triage.Banner | None:
    from flask_login import current_user

    if not current_user.is_authenticated or current_user.role not in WRITE_ROLES:
        return None
    return triage.lifesafety_banner(db_session(), current_staff())


# -- queue -------------------------------------------------------------------------------

def _date_arg(name: str) -> date | None:
    """A queue filter's date; one that is not a date, or is outside the years the queue's
    date arithmetic can reach (as the statistics'), filters nothing."""
    raw = request.args.get(name) or ""
    try:
        value = date.fromisoformat(raw) if raw else None
    except ValueError:
        return None
    return value if value is None or FIRST_DATE <= value <= LAST_DATE else None


def _filters() -> triage.QueueFilters:
    def pick(name: str, allowed: Callable[[str], bool]) -> str | None:
        value = (request.args.get(name) or "").strip()
        return value if value and allowed(value) else None

    status = request.args.get("status", "open")
    if status not in {"open", "all", *triage.STATUS_LABELS}:
        status = "open"
    try:
        page = int(request.args.get("page", "1"))
    except ValueError:
        page = 1
    return triage.QueueFilters(
        school=pick("school", lambda v: len(v) <= 40),
        category=pick("category", lambda v: v in CATEGORY_LABELS),
        status=status,
        channel=pick("channel", lambda v: v in CHANNEL_LABELS),
        date_from=_date_arg("from"),
        date_to=_date_arg("to"),
        page=page,
    )


@bp.get("/")
@staff_required(*READ_ROLES)
def queue() -> Any:
    user = current_staff()
    filters = _filters()
    sess = db_session()
    page = triage.list_queue(sess, user, filters)
    # Only the filters go back into the pager and polling links: any other query key would
    # become an argument of url_for itself (_external, _scheme, _anchor).
    args = {k: v for k, v in request.args.items() if k in FILTER_ARGS and v}
    partial = request.args.get("partial") == "1"
    template = "dashboard/_queue_table.html" if partial else "dashboard/queue.html"
    return render_template(
        template, page=page, filters=filters, args=args,
        schools=triage.school_choices(sess, user), categories=CATEGORY_LABELS,
        statuses=triage.STATUS_LABELS, channels=CHANNEL_LABELS,
        state_url=url_for("triage.state", **args),  # type: ignore[arg-type]
        # The polling script also compares this: a reporter's answer adds no tip, but must
        # mark its row (and sort it up) without a reload.
        unread=unread_count(sess, scope_condition(sess, user), user.id)
        if not partial and user.role in WRITE_ROLES else 0,
    )


@bp.get("/queue/state")
@staff_required(*READ_ROLES)
def state() -> Any:
    """What the polling script compares: newest tip id, open count and the banner."""
    user = current_staff()
    sess = db_session()
    banner = triage.lifesafety_banner(sess, user)
    latest, total = triage.queue_state(sess, user, _filters())
    return jsonify({
        "latest": latest,
        "total": total,
        "lifesafety": banner.count,
        "unread": banner.unread,
        "banner_html": render_template("staff/_banner.html", banner=banner)
        if banner.shown else "",
    })


@bp.get("/banner")
@staff_required()
def banner() -> Any:
    """The life-safety banner alone (every staff page refreshes it)."""
    user = current_staff()
    if user.role not in WRITE_ROLES:
        return jsonify({"lifesafety": 0, "banner_html": ""})
    b = triage.lifesafety_banner(db_session(), user)
    return jsonify({"lifesafety": b.count,
                    "banner_html": render_template("staff/_banner.html", banner=b)
                    if b.shown else ""})


# -- tip page ----------------------------------------------------------------------------

@bp.errorhandler(CryptoError)
def _cannot_open(exc: CryptoError) -> Any:
    """A tip whose key this staff member's session cannot open: say what to do, not a 500."""
    db_session().rollback()
    return render_template("dashboard/no_access.html",
                           shredded=not isinstance(exc, KeyUnavailable)
                           or "destroyed" in str(exc)), 403


def _load(uid: str) -> triage.TipDetail:
    try:
        detail = triage.read_tip(db_session(), current_staff(), uid, utcnow())
    except TipNotFound:
        abort(404)
    db_session().commit()  # the audit event of this read
    return detail


@bp.get("/tips/<uid>")
@staff_required(*READ_ROLES)
def tip(uid: str) -> Any:
    detail = _load(uid)
    form = ActionForm()
    form.assignee.choices = [("", "Nobody")] + [(str(i), n) for i, n in detail.assignees]
    form.assignee.data = str(detail.tip.assigned_to_id or "")
    form.category.data = detail.tip.category
    form.severity.data = str(detail.tip.severity)
    from tipline.triage import page_views

    return render_template(
        "dashboard/tip.html", d=detail, tip=detail.tip, form=form,
        statuses=triage.STATUS_LABELS, outcomes=triage.OUTCOMES,
        hotline=triage.CHILD_ABUSE_HOTLINE, categories=CATEGORY_LABELS,
        me=current_staff(), **page_views.tip_page_parts(detail),
    )


def _act(uid: str, action: Callable[[Any, Any, ActionForm], str]) -> Any:
    """Shared shape of every POST on a tip: form (CSRF), scope, action, audit, commit."""
    user = current_staff()
    sess = db_session()
    form = ActionForm()
    if not form.validate_on_submit():
        flash("The form could not be read. Please try again.", "error")
        return _back(uid)
    try:
        tip_row = triage.get_tip_for(sess, user, uid)
    except TipNotFound:
        abort(404)
    try:
        message = action(user, tip_row, form)
    except triage.NotPermitted:
        sess.rollback()
        abort(404)
    except triage.ActionRefused as exc:
        sess.rollback()
        flash(str(exc), "error")
        return _back(uid)
    sess.commit()
    flash(message, "ok")
    return _back(uid)


# The part of the tip page each form sits in: after an action the page opens there again.
BACK_ANCHORS = frozenset({"summary", "conversation", "reply-form", "note-form",
                          "reporter-status-form", "status-form", "assign-form",
                          "retriage-form", "mandated"})


def _back(uid: str) -> Any:
    anchor = request.form.get("back", "")
    return redirect(url_for("triage.tip", uid=uid,
                            _anchor=anchor if anchor in BACK_ANCHORS else None), 303)


def _writer_post(rule: str, roles: tuple[str, ...] = WRITE_ROLES
                 ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        return bp.post(rule, endpoint=fn.__name__)(staff_required(*roles)(fn))
    return deco


@_writer_post("/tips/<uid>/acknowledge")
def acknowledge(uid: str) -> Any:
    def run(user: Any, t: Any, _f: ActionForm) -> str:
        n = triage.acknowledge(db_session(), user, t, utcnow())
        return "Acknowledged." + (f" {n} alert{'s' if n != 1 else ''} stopped." if n else "")
    return _act(uid, run)


@_writer_post("/tips/<uid>/reply", CASE_ROLES)
def reply(uid: str) -> Any:
    def run(user: Any, t: Any, f: ActionForm) -> str:
        msg = triage.add_reply(db_session(), services().queue, user, t, f.body.data or "",
                               utcnow())
        return "Reply queued for SMS." if msg.channel == Channel.SMS.value else \
            "Reply saved: the reporter sees it when they check back with their code."
    return _act(uid, run)


@_writer_post("/tips/<uid>/note")
def note(uid: str) -> Any:
    def run(user: Any, t: Any, f: ActionForm) -> str:
        triage.add_note(db_session(), user, t, f.body.data or "", utcnow())
        return "Note added."
    return _act(uid, run)


@_writer_post("/tips/<uid>/status", CASE_ROLES)
def status(uid: str) -> Any:
    def run(user: Any, t: Any, f: ActionForm) -> str:
        triage.change_status(db_session(), user, t, f.status.data or "",
                             reason=f.reason.data or "", outcome=f.outcome.data or None,
                             now=utcnow())
        return f"Status changed to {triage.STATUS_LABELS[t.status].lower()}."
    return _act(uid, run)


@_writer_post("/tips/<uid>/assign", CASE_ROLES)
def assign(uid: str) -> Any:
    def run(user: Any, t: Any, f: ActionForm) -> str:
        raw = f.assignee.data or ""
        assignee = typed_number(raw) if raw else None
        if raw and assignee is None:
            raise triage.ActionRefused("Choose a person from the list.")
        triage.assign(db_session(), user, t, assignee, utcnow())
        return "Assignment saved." if assignee else "Tip unassigned."
    return _act(uid, run)


@_writer_post("/tips/<uid>/retriage", CASE_ROLES)
def retriage(uid: str) -> Any:
    def run(user: Any, t: Any, f: ActionForm) -> str:
        try:
            severity = int(f.severity.data or "0")
        except ValueError:
            severity = 0
        triage.retriage(db_session(), services().queue, user, t, category=f.category.data or "",
                        severity=severity, reason=f.reason.data or "", now=utcnow())
        return "Re-triaged: the tip is being routed again."
    return _act(uid, run)


@_writer_post("/tips/<uid>/mandated-report")
def mandated_report(uid: str) -> Any:
    def run(user: Any, t: Any, f: ActionForm) -> str:
        if f.confirm.data != "yes":
            raise triage.ActionRefused("Tick the box to confirm you made the report yourself.")
        triage.record_mandated_report(db_session(), user, t, utcnow())
        return "Recorded: you reported this to Children's Division."
    return _act(uid, run)


@bp.get("/tips/<uid>/attachments/<att>")
@staff_required(*READ_ROLES)
def attachment(uid: str, att: str) -> Any:
    sess = db_session()
    try:
        row = triage.attachment_for(sess, current_staff(), uid, att)
    except TipNotFound:
        abort(404)
    data = row.data
    content_type, disposition = triage.attachment_delivery(row.content_type)
    sess.commit()
    resp = Response(data, content_type=content_type)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Content-Disposition"] = disposition
    # Opened on its own, the file is a sandboxed document that may load nothing.
    resp.headers["Content-Security-Policy"] = ATTACHMENT_CSP
    return resp


