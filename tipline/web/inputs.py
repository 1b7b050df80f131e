"""What a request may carry into a view: ids the database can hold, text without NUL
characters in a path, form fields with names.

A path like ``/staff/admin/contacts/10000000000000000000`` or ``/staff/tips/%00`` used to reach
PostgreSQL and fail there (integer out of range; NUL in a text parameter), answering 500.
These converters make such a path match no route, so it gets the ordinary 404.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Flask, Request, request
from werkzeug.datastructures import ImmutableDict
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter, Map, PathConverter, UnicodeConverter

from tipline.typed import DB_INT_MAX
from tipline.web.formparser import PushFormDataParser

# Dates a staff page accepts in a filter (past year 9999 the date arithmetic overflows).
FIRST_DATE, LAST_DATE = date(2000, 1, 1), date(2999, 12, 31)
NUL_REFUSED = ("The form or address contained a NUL character (\\0), which cannot be stored. "
               "Remove it and send the page again.")


class DbIntConverter(IntegerConverter):
    """``<int:...>``: at most DB_INT_MAX unless the rule says otherwise."""

    def __init__(self, map: Any, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = None, signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, DB_INT_MAX if max is None else max, signed)


class TextConverter(UnicodeConverter):
    """``<name>`` / ``<string:name>``: one path segment without NUL characters."""

    def __init__(self, map: Any, minlength: int = 1, maxlength: int | None = None,
                 length: int | None = None) -> None:
        super().__init__(map, minlength, maxlength, length)
        self.regex = self.regex.replace("[^/]", "[^/\\x00]")


class TextPathConverter(PathConverter):
    """``<path:name>``: like Werkzeug's, without NUL characters."""

    regex = "[^/\\x00][^\\x00]*?"


class TiplineMap(Map):
    """Werkzeug's URL map with the converters above under the usual names."""

    default_converters = ImmutableDict({
        **Map.default_converters, "int": DbIntConverter, "default": TextConverter,
        "string": TextConverter, "path": TextPathConverter,
    })


class TiplineRequest(Request):
    """Multipart bodies are read by ``PushFormDataParser`` (``tipline.web.formparser``: the
    ``multipart`` library, about ten times Werkzeug's speed on a tip form).

    Every field has a name that is a string: Werkzeug's parser gave a field named None for a
    part whose name it could not read (one ending in a backslash), which Flask-WTF's CSRF
    check and the Twilio signature check crashed on; the app's parser reads such a name as
    written, and a part without one as a field named "" (``tests/web/test_formparser.py``)."""

    form_data_parser_class = PushFormDataParser


def refuse_nul_on_staff_pages(app: Flask) -> None:
    """Refuse a staff page's query or form holding a NUL character, with a 400.

    Staff pages store or look up what they are sent in PostgreSQL text columns, which cannot
    hold NUL: such a value reached the database and failed there, a 500 (on the sign-in page,
    for anyone). The reporter's pages seal their text and keep NUL; Twilio's webhooks are left
    as sent (their signature covers every character). The check is the app's first
    before-request function, so nothing (the rate limiter's key, CSRF, a view, an error page's
    language) reads such a value first."""
    app.before_request_funcs.setdefault(None, []).insert(0, _refuse_nul)


def is_staff_path(path: str) -> bool:
    """``/staff`` or a path under it: the staff pages (``/staffing`` is not one)."""
    return (path + "/").startswith("/staff/")


def _refuse_nul() -> None:
    if not is_staff_path(request.path):
        return
    for data in (request.args, request.form):
        for key, values in data.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                raise BadRequest(NUL_REFUSED)


class TiplineFlask(Flask):
    """Flask with ``TiplineMap`` (in effect for every rule, the static route included) and
    ``TiplineRequest``."""

    url_map_class = TiplineMap
    request_class = TiplineRequest
