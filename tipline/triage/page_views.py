"""The tip page's conversation parts, the reporter status line, and a district's reply wording.

Thin views over ``triage.conversation`` and ``triage.replies``, on the dashboard blueprint.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import Optional

from tipline.accounts.models import Role
from tipline.accounts.web import current_staff, register_nav, staff_required
from tipline.db import utcnow
from tipline.triage import conversation, replies
from tipline.triage import services as triage
from tipline.triage.scope import CASE_ROLES
from tipline.triage.views import _act, bp
from tipline.typed import typed_number
from tipline.web import db_session


def register(app: Flask) -> None:
    register_nav(app, "triage.reply_templates", "Reply wording",
                 roles=(Role.DISTRICT_ADMIN.value,))


def tip_page_parts(detail: triage.TipDetail) -> dict[str, Any]:
    """The story of the tip (records this visit and commits it) and the reply wording."""
    sess = db_session()
    story = conversation.tip_story(sess, current_staff(), detail, utcnow())
    sess.commit()
    lang = story.language_code
    templates = replies.templates_for(sess, detail.tip.district_id, lang) \
        if detail.can_manage else []
    prefill = ""
    index = typed_number(request.args.get("use", ""))
    if index is not None and index < len(templates):
        prefill = templates[index]
    return {"story": story, "reply_templates": templates, "reply_prefill": prefill,
            "status_presets": replies.status_presets(lang),
            "contact_label": conversation.contact_label,
            "template_language": lang if lang in replies.TEMPLATE_LANGUAGES else "en"}


@bp.post("/tips/<uid>/reporter-status", endpoint="reporter_status")
@staff_required(*CASE_ROLES)
def reporter_status(uid: str) -> Any:
    def run(user: Any, t: Any, _f: Any) -> str:
        if user.role not in CASE_ROLES:
            raise triage.NotPermitted(user.role)
        own = (request.form.get("status_line") or "").strip()
        text = own or (request.form.get("preset") or "").strip()
        if request.form.get("clear") == "1":
            text = ""
        elif not text:
            raise triage.ActionRefused("Choose a status line or write one.")
        try:
            value = conversation.set_reporter_status(db_session(), user, t, text, utcnow())
        except conversation.StatusRefused as exc:
            raise triage.ActionRefused(str(exc)) from None
        return "The reporter now sees: " + value if value else \
            "Status line cleared: the reporter sees the tip's status."
    return _act(uid, run)


class TemplatesForm(FlaskForm):
    en = TextAreaField("English", validators=[Optional()])
    es = TextAreaField("Spanish (español)", validators=[Optional()])
    bs = TextAreaField("Bosnian (bosanski)", validators=[Optional()])


@bp.route("/replies", methods=["GET", "POST"], endpoint="reply_templates")
@staff_required(Role.DISTRICT_ADMIN.value)
def reply_templates() -> Any:
    """A district admin's short replies per language, one per line."""
    user = current_staff()
    if user.district_id is None:
        abort(404)
    sess = db_session()
    form = TemplatesForm()
    if form.validate_on_submit():
        try:
            parsed = {lang: replies.parse_lines(getattr(form, lang).data or "")
                      for lang in replies.TEMPLATE_LANGUAGES}
        except replies.TemplatesRefused as exc:
            flash(str(exc), "error")
        else:
            for lang, lines in parsed.items():
                replies.save_templates(sess, user, user.district_id, lang, lines, utcnow())
            sess.commit()
            flash("Reply wording saved.", "ok")
            return redirect(url_for("triage.reply_templates"), 303)
    elif request.method == "GET":
        for lang in replies.TEMPLATE_LANGUAGES:
            getattr(form, lang).data = "\n".join(
                replies.templates_for(sess, user.district_id, lang))
    return render_template("dashboard/replies.html", form=form,
                           max_templates=replies.MAX_TEMPLATES,
                           max_chars=replies.MAX_TEMPLATE_CHARS)
