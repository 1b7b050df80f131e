"""Template helpers for the reporter's pages, and keeping the chosen language across a POST."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime
from flask import request, session, url_for
from flask_babel import get_locale, refresh
from flask_babel import lazy_gettext as _l
from werkzeug.routing import BuildError

from tipline.web import services

# Each language's name in itself, so a reader finds theirs whatever the page's language.
LANGUAGE_NAMES = {"en": "English", "es": "Español", "bs": "Bosanski"}

STATUS_TEXT = {
    "new": _l("Your tip was received. The people who handle tips for the school have been "
              "alerted."),
    "acknowledged": _l("A staff member has seen your tip."),
    "in_progress": _l("Staff are working on your tip."),
    "referred": _l("Your tip was passed on to people who can help."),
    "closed": _l("This tip is closed. Thank you for speaking up."),
}

DETAIL_LABELS = (
    ("when", _l("When")),
    ("where", _l("Where")),
    ("who", _l("Who")),
    ("how_known", _l("How you know")),
)


def status_text(status: str) -> str:
    return str(STATUS_TEXT.get(status, STATUS_TEXT["new"]))


def reporter_time(value: datetime, tz: str = "UTC") -> str:
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    locale = get_locale() or "en"
    return format_datetime(value, "medium", tzinfo=zone, locale=locale)


def lang_url(code: str) -> str:
    """This page in another language, keeping its query (never a form's contents)."""
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k != "lang"}
    args["lang"] = code
    if request.endpoint and request.method == "GET" and request.url_rule is not None:
        with contextlib.suppress(BuildError):  # not rebuildable: fall back to the query only
            return url_for(request.endpoint, **(request.view_args or {}), **args)
    return "?lang=" + code


def template_helpers() -> dict[str, Any]:
    languages = services().settings.languages
    return {
        "language_names": [(c, LANGUAGE_NAMES.get(c, c)) for c in languages],
        "lang_url": lang_url,
        "status_text": status_text,
        "reporter_time": reporter_time,
        "detail_labels": DETAIL_LABELS,
    }


def keep_posted_language() -> None:
    """A form carries the page's language in ``ui_lang``; use it if the session lost it.

    (A ``lang`` field, from a language switch, wins: the app's locale selector reads it.)
    """
    if request.method != "POST" or "lang" in request.form:
        return
    chosen = request.form.get("ui_lang")
    if chosen not in services().settings.languages or session.get("lang") == chosen:
        return
    current = get_locale()
    if current is None or str(current.language) != chosen:
        # Only when it changes the page: an unchanged session is not written back as a cookie.
        session["lang"] = chosen
        refresh()



