"""The reporter's web pages: start, danger notice, tip form, receipt, follow-up, privacy.

Views parse, call the intake services and render. The receipt is shown only after the commit
succeeded; any failure (validation, a refused picture, an expired page, the database) renders
the form again with everything the reporter typed.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any, cast

from flask import (
    Blueprint,
    Flask,
    Request,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from tipline.crypto import CryptoError
from tipline.db import utcnow
from tipline.intake import followup as fu
from tipline.intake import handle
from tipline.intake.checkback import CheckBack, check_back, district_hours
from tipline.intake.directory_view import (
    SchoolCache,
    SchoolEntry,
    group_schools,
    hotline_lines,
    last_known_hotlines,
)
from tipline.intake.forms import (
    DANGER_UNANSWERED,
    NO_SCHOOL,
    SCHOOL_QUERY_MAX,
    CodeForm,
    ReplyForm,
    TipForm,
    danger_answer,
)
from tipline.intake.idempotency import (
    new_nonce,
    new_session_secret,
    submission_ids,
    valid_session_secret,
    verified_nonce,
)
from tipline.intake.services import (
    AttachmentIn,
    IntakeError,
    TipSubmission,
    begin_tip_write,
    create_tip,
    find_tip_by_external_id,
)
from tipline.intake.templating import (
    PageCache,
    ReceiptFacts,
    keep_posted_language,
    receipt_text,
    template_helpers,
    waiting_text,
)
from tipline.intake.triage import run_triage, triage_text
from tipline.intake.uploads import (
    MAX_FILES,
    ReporterRequest,
    UploadLimits,
    UploadRefused,
    chosen_files,
    read_images,
)
from tipline.routing.policy import PolicyError
from tipline.tips.models import Category, Channel, Severity
from tipline.web import db_session, services

log = logging.getLogger(__name__)

bp = Blueprint("intake", __name__)
bp.app_context_processor(template_helpers)
bp.before_request(keep_posted_language)

# Wrong codes only (successes are not counted): ten tries per ten minutes per salted address.
CODE_LIMIT = "10 per 10 minutes"
REPLY_LIMIT = "20 per 10 minutes"
SESSION_HANDLE = "fu"
# The session's secret for form nonces and receipt codes (see intake.idempotency).
SESSION_SUBMIT = "sub"
# A page sent again from the same session (double tap, reload, retry after a timeout) shows its
# receipt code again only this soon after the tip was stored: a page resubmitted later, say on
# a shared computer, says "received" without the code.
REPEAT_WINDOW = timedelta(minutes=10)

SEVERITY_BY_CATEGORY = {
    "weapon": Severity.HIGH,
    "threat": Severity.HIGH,
    "self_harm": Severity.HIGH,
    "abuse": Severity.HIGH,
    "bullying": Severity.MEDIUM,
    "substance": Severity.MEDIUM,
    "family_crisis": Severity.MEDIUM,
    "basic_needs": Severity.MEDIUM,
    "dating_violence": Severity.HIGH,
    "other": Severity.LOW,
}
DETAIL_FIELDS = ("when", "where", "who", "how_known")


# -- helpers ------------------------------------------------------------------------------

def _lang() -> str:
    loc = get_locale()
    return str(loc.language) if loc else "en"


def _limits() -> UploadLimits:
    return UploadLimits(max_bytes=services().settings.max_upload_bytes, max_files=MAX_FILES)


def _upload_context() -> dict[str, Any]:
    return {"max_mb": max(1, services().settings.max_upload_bytes // (1024 * 1024)),
            "max_files": MAX_FILES}


def _hotlines() -> list[tuple[str, str]]:
    try:
        return hotline_lines(db_session())
    except SQLAlchemyError:
        db_session().rollback()
        return last_known_hotlines()


def _unavailable(form: Any = None, reply: Any = None) -> tuple[str, int]:
    """The database is down: say so, give the other ways to get help, keep their words.

    The retry form's nonce is one this session was issued, never the one posted (an error
    page copies no hidden field from an untrusted request).
    """
    with contextlib.suppress(SQLAlchemyError):
        db_session().rollback()
    if isinstance(form, TipForm):
        _form_nonce(form)
    return (
        render_template("intake/unavailable.html", form=form, reply=reply,
                        hotlines=last_known_hotlines()),
        503,
    )


def _is_lang_switch() -> bool:
    """A language chosen on a form page posts the form with ``lang``: the tip form's language
    buttons (``name="lang"``, with or without JavaScript), or a language link re-posted by
    JavaScript (``lang`` + ``lang_switch``).

    The app's locale selector reads ``lang`` from the form; the page is shown again in the new
    language with everything typed still in it, and nothing is validated or sent.
    """
    return request.method == "POST" and ("lang_switch" in request.form
                                         or "lang" in request.form)


def _schools() -> list[SchoolEntry]:
    cache: SchoolCache = current_app.extensions["tipline_schools"]  # made in ``_wire``
    return cache.get(db_session())


# The school question's choices per locale, with the school list they were made from.
_SCHOOL_CHOICES: dict[str, tuple[list[SchoolEntry], list[SelectChoice]]] = {}


def _set_choices(form: TipForm, entries: list[SchoolEntry]) -> None:
    """The schools the form accepts. They are the same for every request in a language while
    ``SchoolCache`` keeps the same school list, so they are made once per locale and list
    (a reloaded list, a new object, makes them again); each form gets its own list."""
    locale = str(get_locale())
    made = _SCHOOL_CHOICES.get(locale)
    if made is None or made[0] is not entries:
        made = _SCHOOL_CHOICES[locale] = (entries, [
            SelectChoice("", _("Choose a school")),
            SelectChoice(NO_SCHOOL, _("I don't know / not about a school")),
            *(SelectChoice(e.code, e.name) for e in entries),
        ])
    form.school.choices = list(made[1])


def _submission_secret() -> str:
    """This session's secret for form nonces, made (and put in the session) if it has none."""
    secret = valid_session_secret(session.get(SESSION_SUBMIT))
    if secret is None:
        secret = session[SESSION_SUBMIT] = new_session_secret()
    return secret


def _form_nonce(form: TipForm) -> str:
    """The form's nonce if this session was issued it; otherwise a new one, put in the form."""
    vault, secret = services().vault, _submission_secret()
    nonce = verified_nonce(vault, secret, form.submission.data) or new_nonce(vault, secret)
    form.submission.data = nonce
    return nonce


def _render_report(form: TipForm, entries: list[SchoolEntry], status: int = 200,
                   **extra: Any) -> tuple[str, int]:
    query = extra.pop("search", "")
    groups = group_schools(entries, query, keep=form.school.data or "")
    _form_nonce(form)
    has_errors = any(f.errors for f in form)
    return (
        render_template("intake/report.html", form=form, groups=groups, search=query,
                        lang_form="tipform", lang_post=True, has_errors=has_errors,
                        **_upload_context(), **extra),
        status,
    )


# -- pages --------------------------------------------------------------------------------

@bp.get("/")
def start() -> Any:
    return render_template("intake/start.html")


@bp.get("/danger")
def danger() -> Any:
    return render_template("intake/danger.html", hotlines=_hotlines())


@bp.get("/privacy")
def privacy() -> Any:
    return render_template("intake/privacy.html")


@bp.route("/report", methods=["GET", "POST"])
def report() -> Any:
    form = TipForm()
    if request.method == "GET":
        if request.args.get("danger") == "yes":
            form.danger_now.data = "yes"
        form.school_q.data = request.args.get("school_q") or ""
    form.school_q.data = (form.school_q.data or "")[:SCHOOL_QUERY_MAX]
    try:
        entries = _schools()
    except SQLAlchemyError:
        log.error("database unavailable while loading the tip form")
        return _unavailable(form if request.method == "POST" else None)
    _set_choices(form, entries)
    dropped = request.method == "POST" and bool(chosen_files(request.files.getlist("attachments")))

    query = (form.school_q.data or "").strip()
    if request.method == "GET":
        return _render_search(form, entries, query)
    if _is_lang_switch() or "all_schools" in request.form:
        return _render_report(form, entries, files_dropped=dropped)
    if "send" not in request.form and (query or "find_school" in request.form):
        # Find (or Enter in the search box): run the search, send nothing.
        return _render_search(form, entries, query, files_dropped=dropped)
    if query and not form.school.data:
        # Send with a search typed and no school chosen: the one school it matches is the one
        # they meant (as the JavaScript list does); otherwise the school question asks them.
        matches = _matches(entries, query, "")
        if len(matches) == 1:
            form.school.data = matches[0]
    else:
        query = ""  # a school is chosen: Send sends, whatever is left in the search box

    valid = form.validate_on_submit()
    if form.website.data:
        # Honeypot filled: a bot, or a browser's autofill. Store nothing, and show the box so
        # a person can empty it; a bot just gets the form back.
        form.website.errors = [_("Please leave this box empty, then press Send again.")]
        return _render_report(form, entries, 400, honeypot_visible=True, files_dropped=dropped)
    images: list[AttachmentIn] = []
    try:
        images = read_images(request.files.getlist("attachments"), _limits())
    except UploadRefused as exc:
        form.attachments.errors = [str(exc)]
        valid = False
    if not valid:
        return _render_search(form, entries, query, files_dropped=dropped, status=400)
    return _submit(form, entries, images)


def _matches(entries: list[SchoolEntry], query: str, keep: str) -> list[str]:
    return [code for _d, schools in group_schools(entries, query, keep) for code, _n in schools]


def _render_search(form: TipForm, entries: list[SchoolEntry], query: str,
                   files_dropped: bool = False, status: int = 200) -> tuple[str, int]:
    """The no-JavaScript school search: narrow the list, keep everything else as typed."""
    if query:
        matches = _matches(entries, query, form.school.data or "")
        if len(matches) == 1 and not form.school.data:
            form.school.data = matches[0]
        # The search has run: the box is emptied (the results say what was searched for).
        form.school_q.data = ""
        return _render_report(form, entries, status, search=query, match_count=len(matches),
                              files_dropped=files_dropped)
    return _render_report(form, entries, status, files_dropped=files_dropped)


def _submit(form: TipForm, entries: list[SchoolEntry], images: list[AttachmentIn]) -> Any:
    svc = services()
    ids = submission_ids(svc.vault, _submission_secret(), _form_nonce(form))
    category = Category(form.category.data)
    details = {name: (getattr(form, name).data or "").strip() for name in DETAIL_FIELDS}
    body = (form.body.data or "").strip()
    language = _lang()
    # Triage reads the words before they are sealed; it may raise severity, never lower it.
    triage = run_triage(triage_text(body, details), language)
    if category is Category.OTHER and triage.category is not None:
        category = triage.category
    severity = SEVERITY_BY_CATEGORY[form.category.data]
    danger = danger_answer(form.danger_now.data)
    if danger in ("unsure", DANGER_UNANSWERED):
        # Not answered counts as "not sure": at least high, never as a "no".
        severity = max(severity, Severity.HIGH)
    submission = TipSubmission(
        channel=Channel.WEB,
        body=body,
        category=category,
        severity=severity,
        school_code=form.school.data if form.school.data != NO_SCHOOL else None,
        danger_now=danger == "yes",
        language=language,
        details=details,
        attachments=images,
        external_id=ids.external_id,
    )
    chosen = next((e for e in entries if e.code == submission.school_code), None)
    if chosen is not None:
        submission = replace(submission, school_ref=(chosen.school_id, chosen.district_id))
    sess = db_session()
    for attempt in (1, 2):
        try:
            if attempt == 1:  # one statement, no BEGIN/COMMIT, when it can be (not a retry)
                begin_tip_write(sess, submission)
            receipt = create_tip(sess, svc.vault, svc.queue, submission,
                                 severity_floor=triage.severity_floor,
                                 receipt_code=ids.receipt_code,
                                 # Only a triage that ran: a failed one's empty signals
                                 # must not tell surge grouping "no life-safety reason".
                                 fired=triage.signals if triage.classified else None)
            sess.commit()
        except IntakeError:
            sess.rollback()
            form.school.errors = [_("Please choose a school from the list.")]
            return _render_report(form, entries, 400)
        except IntegrityError:
            sess.rollback()
            try:
                existing = find_tip_by_external_id(sess, ids.external_id)
            except SQLAlchemyError:
                return _unavailable(form)
            if existing is not None:
                # This session sent this page before: one tip, and the same receipt if soon.
                recent = utcnow() - existing.created_at < REPEAT_WINDOW
                return _receipt(ids.receipt_code if recent else "", ReceiptFacts(
                    existing.severity, existing.district_id, _school_name(
                        entries, existing.school_id), danger == DANGER_UNANSWERED))
            if attempt == 2:
                log.error("could not store a web tip after a retry; reporter shown other ways")
                return _unavailable(form)
            continue  # a reference collision: try once more with a new one
        except SQLAlchemyError:
            log.error("database error while saving a web tip; the reporter was shown other ways")
            return _unavailable(form)
        return _receipt(receipt.receipt_code, ReceiptFacts(
            receipt.severity, submission.school_ref[1] if submission.school_ref else None,
            chosen.name if chosen else None, danger == DANGER_UNANSWERED))
    return _unavailable(form)  # pragma: no cover - the loop always returns


def _school_name(entries: list[SchoolEntry], school_id: int | None) -> str | None:
    return next((e.name for e in entries if school_id and e.school_id == school_id), None)


def _check_back(severity: int, district_id: int | None) -> CheckBack:
    """When to tell the reporter to look again (receipt and follow-up page alike). The tip is
    committed already: a database error here only makes the wording general."""
    hours = None
    if severity < Severity.HIGH and district_id is not None:
        try:
            hours = district_hours(db_session(), district_id)
        except (SQLAlchemyError, PolicyError):
            log.warning("could not read school hours for a reporter page; general wording used")
            with contextlib.suppress(SQLAlchemyError):
                db_session().rollback()
    return check_back(severity, hours, utcnow())


def _receipt(code: str, facts: ReceiptFacts) -> str:
    """The receipt page, from the per-language copy kept by ``PageCache``.

    Only the reporter's code is shown (the staff reference is not: one code to keep). Where
    the tip went and when to come back are worked out from the stored tip (``receipt_text``).
    The tip is committed already: a database error here only makes the wording general.
    """
    text = receipt_text(facts, _check_back(facts.severity, facts.district_id))
    pages: PageCache = current_app.extensions["tipline_pages"]  # made in ``_wire``
    return pages.render("intake/receipt.html", code=code, **text)


# -- follow-up ------------------------------------------------------------------------------

def _current_handle() -> handle.Handle | None:
    return handle.read(services().vault, session.get(SESSION_HANDLE), utcnow())


@bp.route("/followup", methods=["GET", "POST"])
def followup() -> Any:
    """Enter the receipt code (POST only: a code never goes in a URL)."""
    form = CodeForm()
    if request.method == "GET":
        if _current_handle() is not None:
            return redirect(url_for("intake.followup_tip"), 303)
        expired = request.args.get("expired") == "1"
        return render_template("intake/followup.html", form=form, expired=expired,
                               lang_form="codeform")
    if _is_lang_switch():
        form.code.data = ""  # the code is never echoed back into a page
        return render_template("intake/followup.html", form=form, lang_form="codeform")
    if not form.validate_on_submit():
        return render_template("intake/followup.html", form=form, lang_form="codeform"), 400
    svc = services()
    try:
        tip = fu.find_tip_by_code(db_session(), svc.vault, form.code.data or "")
    except SQLAlchemyError:
        return _unavailable()
    if tip is None:
        form.code.data = ""
        form.code.errors = [_("That code did not open a tip. Check it and try again.")]
        return render_template("intake/followup.html", form=form, lang_form="codeform"), 400
    session[SESSION_HANDLE] = handle.issue(
        svc.vault, tip.uid, utcnow(), code_key=handle.code_key(form.code.data or "", tip.uid))
    return redirect(url_for("intake.followup_tip"), 303)


@bp.route("/followup/tip", methods=["GET", "POST"])
def followup_tip() -> Any:
    """The conversation: status, staff questions, the reporter's messages, and a reply box."""
    current = _current_handle()
    if current is None:
        session.pop(SESSION_HANDLE, None)
        return redirect(url_for("intake.followup", expired="1"), 303)
    svc = services()
    sess = db_session()
    now = utcnow()
    form = ReplyForm()
    try:
        tip = fu.tip_by_uid(sess, current.tip_uid)
    except SQLAlchemyError:
        return _unavailable(reply=form if request.method == "POST" else None)
    if tip is None:
        session.pop(SESSION_HANDLE, None)
        return redirect(url_for("intake.followup", expired="1"), 303)
    # Sliding expiry: each page seen keeps the reporter in for another idle period.
    session[SESSION_HANDLE] = handle.issue(svc.vault, current.tip_uid, now, current.started,
                                           code_key=current.code_key)

    status = 200
    if request.method == "POST" and not _is_lang_switch():
        images: list[AttachmentIn] = []
        valid = form.validate_on_submit()
        try:
            images = read_images(request.files.getlist("attachments"), _limits())
        except UploadRefused as exc:
            form.attachments.errors = [str(exc)]
            valid = False
        if valid and not (form.body.data or "").strip() and not images:
            form.body.errors = [_("Please write an answer or add a picture.")]
            valid = False
        if valid:
            try:
                fu.add_reply(sess, svc.vault, tip, form.body.data or "", images, now,
                             queue=svc.queue, keys=current.keychain())
                sess.commit()
            except SQLAlchemyError:
                log.error("database error while saving a reporter reply")
                return _unavailable(reply=form)
            except (fu.FollowupError, CryptoError):
                sess.rollback()
                form.body.errors = [_("We could not add this answer. Please try again.")]
            else:
                return redirect(url_for("intake.followup_tip", sent="1"), 303)
        status = 400
    try:
        conversation = fu.read_conversation(sess, svc.vault, tip, now, current.keychain())
        sess.commit()  # staff messages now marked read
    except SQLAlchemyError:
        return _unavailable(reply=form if request.method == "POST" else None)
    except CryptoError:
        sess.rollback()
        session.pop(SESSION_HANDLE, None)
        return redirect(url_for("intake.followup", expired="1"), 303)
    files_dropped = request.method == "POST" and bool(
        chosen_files(request.files.getlist("attachments")))
    return render_template(
        "intake/conversation.html", conv=conversation, form=form,
        waiting=waiting_text(_check_back(conversation.severity, conversation.district_id)),
        sent=request.args.get("sent") == "1" and request.method == "GET",
        files_dropped=files_dropped, lang_form="replyform", **_upload_context(),
    ), status


@bp.post("/followup/leave")
def followup_leave() -> Response:
    session.pop(SESSION_HANDLE, None)
    session.pop(SESSION_SUBMIT, None)  # no page sent from here can show a receipt again
    return redirect(url_for("intake.start", left="1"), 303)


# -- expired pages --------------------------------------------------------------------------

def handle_csrf_error(exc: CSRFError) -> Any:
    """An expired or missing CSRF token: show the page again with the reporter's words.

    The request is untrusted (another site can make a browser send it), so only what the
    reporter can see and check is kept; hidden fields are never copied: the form gets a new
    nonce for this session and an empty honeypot.
    """
    keep_posted_language()
    notice = _("This page was open for a long time, so it was not sent yet. Everything you "
               "wrote is still here: please press the button again.")
    if request.endpoint == "intake.report":
        form = TipForm(meta={"csrf": True})
        form.process(request.form)
        form.website.data = ""
        form.submission.data = None
        _form_nonce(form)
        try:
            entries = _schools()
        except SQLAlchemyError:
            return _unavailable(form)
        _set_choices(form, entries)
        dropped = bool(chosen_files(request.files.getlist("attachments")))
        return _render_report(form, entries, 400, notice=notice, files_dropped=dropped)
    if request.endpoint == "intake.followup_tip":
        current = _current_handle()
        reply = ReplyForm(meta={"csrf": True})
        reply.process(request.form)
        if current is None:
            # The sign-in ran out too: show their answer so it can be copied, and the code box.
            return render_template("intake/followup.html", form=CodeForm(), expired=True,
                                   kept_reply=reply.body.data, lang_form="codeform"), 400
        try:
            tip = fu.tip_by_uid(db_session(), current.tip_uid)
            conv = fu.read_conversation(db_session(), services().vault, tip, utcnow(),
                                        current.keychain()) if tip is not None else None
            db_session().commit()
        except SQLAlchemyError:
            return _unavailable(reply=reply)
        if conv is None:
            return render_template("intake/followup.html", form=CodeForm(), expired=True,
                                   kept_reply=reply.body.data, lang_form="codeform"), 400
        return render_template("intake/conversation.html", conv=conv, form=reply,
                               notice=notice, lang_form="replyform",
                               waiting=waiting_text(_check_back(conv.severity, conv.district_id)),
                               files_dropped=bool(chosen_files(request.files.getlist(
                                   "attachments"))),
                               **_upload_context()), 400
    if request.endpoint == "intake.followup":
        return render_template("intake/followup.html", form=CodeForm(), notice=notice,
                               lang_form="codeform"), 400
    return render_template("errors/csrf.html"), 400


# -- wiring -----------------------------------------------------------------------------------

def is_tip_form() -> bool:
    """The request is for the tip form (``/report``), which no rate limit applies to."""
    return request.endpoint == "intake.report"


def _wire(state: BlueprintSetupState) -> None:
    """Bounded in-memory uploads, the app's school list and page caches, and the rate limits,
    on the app this blueprint joins."""
    app = cast(Flask, state.app)
    app.extensions["tipline_schools"] = SchoolCache()
    app.extensions["tipline_pages"] = PageCache()
    if not issubclass(app.request_class, ReporterRequest):
        base: type[Request] = app.request_class
        app.request_class = (
            ReporterRequest if base is Request
            else type("TiplineRequest", (ReporterRequest, base), {})
        )
    limiter = app.extensions.get("tipline_limiter")
    if limiter is None:
        return
    # The tip form is never rate limited (docs/reporter.md: a whole school behind one address
    # must be able to report at once). Said to Flask-Limiter, which then skips resolving the
    # limits of each submit only to find none there.
    limiter.request_filter(is_tip_form)
    app.view_functions["intake.followup"] = limiter.limit(
        CODE_LIMIT, methods=["POST"], deduct_when=lambda resp: resp.status_code == 400,
    )(app.view_functions["intake.followup"])
    app.view_functions["intake.followup_tip"] = limiter.limit(
        REPLY_LIMIT, methods=["POST"],
    )(app.view_functions["intake.followup_tip"])


# Registered last: the routes above must already be on the app when this runs.
bp.record_once(_wire)

