"""Template helpers for the reporter's pages, and keeping the chosen language across a POST."""

from __future__ import annotations

import contextlib
import functools
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date, format_datetime, format_time
from babel.support import NullTranslations
from flask import render_template, request, session, url_for
from flask_babel import get_locale, get_translations, refresh
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape
from werkzeug.routing import BuildError

from tipline.intake.checkback import CheckBack
from tipline.intake.directory_view import phone_links
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
# A tip that names no school goes to every district's fallback contacts (the safety team).
NEW_NO_SCHOOL = _l("Your tip was received. The tip line's safety team has been alerted.")

DETAIL_LABELS = (
    ("when", _l("When")),
    ("where", _l("Where")),
    ("who", _l("Who")),
    ("how_known", _l("How you know")),
)


@dataclass(frozen=True)
class ReceiptFacts:
    """What the receipt's wording depends on, from the stored tip."""

    severity: int
    district_id: int | None
    school_name: str | None  # None: no school named
    danger_unanswered: bool = False


def _check_back_sentence(when: CheckBack) -> str:
    locale = get_locale() or "en"
    if when.kind == "hour":
        return _("Staff are being alerted now. Check back in about an hour.")
    if when.kind == "today":
        return _("Staff read tips like this during school hours. Check back later today.")
    if when.kind == "next_window" and when.at is not None:
        time = format_time(when.at, "short", locale=locale)
        if when.days_ahead == 0:
            return _("Staff read tips like this during school hours. Check back today after "
                     "%(time)s.", time=time)
        if when.days_ahead == 1:
            return _("Staff read tips like this during school hours. Check back tomorrow "
                     "after %(time)s.", time=time)
        day = format_date(when.at, "EEEE", locale=locale)
        return _("Staff read tips like this during school hours. Check back on %(day)s after "
                 "%(time)s.", day=day, time=time)
    return _("Check back in a few hours, and again tomorrow.")


def receipt_text(facts: ReceiptFacts, when: CheckBack) -> dict[str, str]:
    """The receipt's sentences that depend on the tip: where it went, when to come back, and
    (only if they skipped it) that an unanswered danger question counts as "not sure".

    They depend on nothing else but the page's language, and most tips get the same few
    sentences, so the most recent are kept per language (``_receipt_sentences``).
    """
    return dict(_receipt_sentences(str(get_locale() or "en"), facts, when))


@functools.lru_cache(maxsize=512)
def _receipt_sentences(locale: str, facts: ReceiptFacts,
                       when: CheckBack) -> tuple[tuple[str, str], ...]:
    """``receipt_text`` for the request's language, which ``locale`` names (the cache key)."""
    if facts.school_name:
        sent_to = _("Your tip went to the people who handle tips for %(school)s. They may ask "
                    "you questions here.", school=facts.school_name)
    else:
        sent_to = _("You did not name a school, so your tip went to the tip line's safety "
                    "team. They pass it to the right people and may ask you questions here.")
    text = {"sent_to": sent_to, "next_step": _check_back_sentence(when)}
    if facts.danger_unanswered:
        text["danger_note"] = _("You did not say whether someone is in danger right now, so we "
                                "treat your tip as possibly urgent.")
    return tuple(text.items())


def status_text(status: str, school_named: bool = True) -> str:
    if status not in STATUS_TEXT or status == "new":
        return str(STATUS_TEXT["new"] if school_named else NEW_NO_SCHOOL)
    return str(STATUS_TEXT[status])


def waiting_text(when: CheckBack) -> str:
    """The follow-up page before staff have written: when to look again, as on the receipt."""
    if when.kind == "hour":
        return _("No questions from staff yet. Please check again in about an hour.")
    return _("No questions from staff yet.") + " " + _check_back_sentence(when)


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


def _format(ctx: Context, text: str, variables: dict[str, Any]) -> str:
    """As Jinja's newstyle gettext: the catalog's text is trusted markup when autoescaping (so
    the %-formatting escapes the variables), and it is always %-formatted."""
    if ctx.eval_ctx.autoescape:
        return Markup(text) % variables  # noqa: S704  (catalog text, not user input)
    return text % variables


def bound_gettext(translations: NullTranslations) -> dict[str, Any]:
    """The template's ``gettext``/``ngettext``/``pgettext``/``npgettext``, bound to one catalog.

    They behave exactly like the newstyle callables Flask-Babel installs (the text is marked
    safe when autoescaping, then always %-formatted with the keyword arguments), but the
    request's catalog is looked up once per render instead of through Flask-Babel's context
    lookups on every one of the ~30-90 strings a page translates. Jinja resolves ``_`` to
    whatever ``gettext`` the template's context holds, so these take over for the page and the
    layout it extends; macros imported without context keep the global callables.
    """

    @pass_context
    def gettext(ctx: Context, __string: str, **variables: Any) -> str:
        rv = translations.ugettext(__string)
        return _format(ctx, rv, variables)

    @pass_context
    def ngettext(ctx: Context, __singular: str, __plural: str, __num: int,
                 **variables: Any) -> str:
        variables.setdefault("num", __num)
        rv = translations.ungettext(__singular, __plural, __num)
        return _format(ctx, rv, variables)

    @pass_context
    def pgettext(ctx: Context, __string_ctx: str, __string: str, **variables: Any) -> str:
        variables.setdefault("context", __string_ctx)
        rv = translations.upgettext(__string_ctx, __string)
        return _format(ctx, rv, variables)

    @pass_context
    def npgettext(ctx: Context, __string_ctx: str, __singular: str, __plural: str, __num: int,
                  **variables: Any) -> str:
        variables.setdefault("context", __string_ctx)
        variables.setdefault("num", __num)
        rv = translations.unpgettext(__string_ctx, __singular, __plural, __num)
        return _format(ctx, rv, variables)

    return {"gettext": gettext, "ngettext": ngettext, "pgettext": pgettext,
            "npgettext": npgettext}


def template_helpers() -> dict[str, Any]:
    languages = services().settings.languages
    return {
        **bound_gettext(get_translations()),
        "language_names": [(c, LANGUAGE_NAMES.get(c, c)) for c in languages],
        "lang_url": lang_url,
        "status_text": status_text,
        "reporter_time": reporter_time,
        "detail_labels": DETAIL_LABELS,
        "phone_links": phone_links,
    }


class PageCache:
    """Pages that differ per request only in a few values, rendered once per language.

    The receipt is the same page for every tip in a language except for the code and the
    reference. The first time, it is rendered with a unique marker in place of each value
    and kept as the text between the markers; afterwards each value is escaped as the
    template would escape it and put back in. Only requests without a query string are
    cached (so the cache stays one entry per template and language); anything else, or a
    value that is empty, is rendered by the template as usual.
    """

    def __init__(self) -> None:
        self._pages: dict[tuple[str, ...], list[str]] = {}
        self._marker = f"\ue000{secrets.token_hex(8)}"

    def render(self, template: str, **values: str) -> str:
        if request.args or not all(values.values()):
            return render_template(template, **values)
        key = (template, str(get_locale()), request.method, request.script_root,
               request.endpoint or "", *sorted(values))
        pieces = self._pages.get(key)
        if pieces is None:
            names = sorted(values)
            marked = render_template(
                template, **{n: f"{self._marker}{i}\ue001" for i, n in enumerate(names)})
            pieces = re.split(f"{self._marker}(\\d+)\ue001", marked)
            # Odd positions hold the index of the value that goes there.
            pieces[1::2] = [names[int(i)] for i in pieces[1::2]]
            if (set(pieces[1::2]) != set(names)
                    or any(self._marker[1:] in p for p in pieces[0::2])):
                # A value the template does more with than print: no copy of this page.
                return render_template(template, **values)
            self._pages[key] = pieces
        escaped = {n: str(escape(v)) for n, v in values.items()}
        return "".join(p if i % 2 == 0 else escaped[p] for i, p in enumerate(pieces))

    def clear(self) -> None:
        self._pages.clear()


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



