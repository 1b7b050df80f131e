"""The group page and the actions on a group, on the dashboard (``/staff/groups``).

Thin views over ``tipline.surge.staff``. A group with no tip in the account's scope, and a
role that may not act, are both answered with 404, as for a tip.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, url_for

from tipline.accounts.web import current_staff, staff_required
from tipline.db import utcnow
from tipline.surge import staff as groups
from tipline.triage import services as triage
from tipline.triage.scope import CASE_ROLES, READ_ROLES, WRITE_ROLES, TipNotFound
from tipline.triage.views import ActionForm
from tipline.typed import typed_number
from tipline.web import db_session, services

bp = Blueprint("surge", __name__, url_prefix="/staff/groups")


@bp.get("/<uid>")
@staff_required(*READ_ROLES)
def group(uid: str) -> Any:
    sess = db_session()
    try:
        view = groups.read_group(sess, current_staff(), uid, utcnow())
    except TipNotFound:
        abort(404)
    sess.commit()  # the audit events of these reads
    form = ActionForm()
    form.assignee.choices = [("", "Nobody")] + [(str(i), n) for i, n in view.assignees]
    return render_template("dashboard/group.html", g_=view, form=form,
                           statuses=triage.STATUS_LABELS, outcomes=triage.OUTCOMES)


def _act(uid: str, action: Callable[[Any, ActionForm], groups.GroupResult | str]) -> Any:
    """Form (CSRF), scope, the action on each tip, commit, and a message saying what happened."""
    sess = db_session()
    form = ActionForm()
    if not form.validate_on_submit():
        flash("The form could not be read. Please try again.", "error")
        return redirect(url_for("surge.group", uid=uid), 303)
    try:
        result = action(current_staff(), form)
    except (TipNotFound, triage.NotPermitted):
        sess.rollback()
        abort(404)
    except triage.ActionRefused as exc:
        sess.rollback()
        flash(str(exc), "error")
        return redirect(url_for("surge.group", uid=uid), 303)
    sess.commit()
    if isinstance(result, str):
        flash(result, "ok")
        return redirect(url_for("surge.group", uid=uid), 303)
    n = result.done
    flash(f"Done for {n} tip{'s' if n != 1 else ''} of the group.", "ok" if n else "error")
    for line in result.skipped[:10]:
        flash(f"Not changed: {line}", "error")
    return redirect(url_for("surge.group", uid=uid), 303)


def _post(rule: str, roles: tuple[str, ...]) -> Callable[[Callable[..., Any]], Any]:
    def deco(fn: Callable[..., Any]) -> Any:
        return bp.post(rule, endpoint=fn.__name__)(staff_required(*roles)(fn))
    return deco


@_post("/<uid>/acknowledge", WRITE_ROLES)
def group_acknowledge(uid: str) -> Any:
    return _act(uid, lambda user, _f: groups.acknowledge(db_session(), user, uid, utcnow()))


@_post("/<uid>/status", CASE_ROLES)
def group_status(uid: str) -> Any:
    return _act(uid, lambda user, f: groups.change_status(
        db_session(), user, uid, f.status.data or "", reason=f.reason.data or "",
        outcome=f.outcome.data or None, now=utcnow()))


@_post("/<uid>/assign", CASE_ROLES)
def group_assign(uid: str) -> Any:
    def run(user: Any, f: ActionForm) -> groups.GroupResult:
        raw = f.assignee.data or ""
        assignee = typed_number(raw) if raw else None
        if raw and assignee is None:
            raise triage.ActionRefused("Choose a person from the list.")
        return groups.assign(db_session(), user, uid, assignee, utcnow())
    return _act(uid, run)


@_post("/<uid>/reply", CASE_ROLES)
def group_reply(uid: str) -> Any:
    return _act(uid, lambda user, f: groups.reply_all(
        db_session(), services().queue, user, uid, f.body.data or "", utcnow()))


@_post("/<uid>/split/<tip_uid>", CASE_ROLES)
def group_split(uid: str, tip_uid: str) -> Any:
    def run(user: Any, _f: ActionForm) -> str:
        tip = groups.split(db_session(), services().queue, user, uid, tip_uid, utcnow())
        return f"{tip.reference} is no longer in this group."
    return _act(uid, run)
