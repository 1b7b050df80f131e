"""The request's locale (tipline.app): the kept Accept-Language match and the kept Locale
objects choose exactly what Werkzeug's match and Flask-Babel's parse would."""

from __future__ import annotations

import pytest
from babel import Locale
from flask import session
from flask_babel import get_locale

from tipline.app import best_language, select_locale

HEADERS = [
    None, "", "*", "en", "es", "bs", "fr", "de-DE,de;q=0.9", "en-US,en;q=0.9,es;q=0.8",
    "es-MX,es;q=0.9,en;q=0.5", "bs-BA,hr;q=0.8", "sr, bs;q=0.3, en;q=0.2", "fr;q=0, es;q=0.1",
    "es;q=0.5, en;q=0.5", "en;q=0.5, es;q=0.5", "EN-gb", "es-419", "zh-Hant-TW, *;q=0.1",
    "en;q=bogus, es", ",,,;;;q=", "es;q=1.5, bs", "x" * 500, "bs;q=0.9,es;q=0.9,en;q=0.1",
]


@pytest.mark.parametrize("header", HEADERS)
def test_best_language_is_werkzeugs_match(app, header) -> None:
    languages = app.extensions["tipline"].settings.languages
    environ = {} if header is None else {"HTTP_ACCEPT_LANGUAGE": header}
    with app.test_request_context("/report", environ_base=environ) as ctx:
        expected = ctx.request.accept_languages.best_match(languages)
        assert best_language(header, languages) == expected
        assert best_language(header, languages) == expected  # again, from the cache


CASES = [
    # (query, form, session lang, Accept-Language)
    ("", {}, None, None),
    ("", {}, None, "es-MX,es;q=0.9"),
    ("", {}, "bs", "es"),
    ("", {}, "xx", "bs"),
    ("?lang=es", {}, "bs", "en"),
    ("?lang=xx", {}, "bs", "en"),
    ("", {"lang": "bs"}, "es", "en"),
    ("", {"lang": "xx"}, None, "fr, es;q=0.2"),
    ("?lang=", {"lang": "es"}, None, None),
]


@pytest.mark.parametrize(("query", "form", "stored", "header"), CASES)
def test_the_locale_is_the_selected_language_parsed(app, query, form, stored, header) -> None:
    settings = app.extensions["tipline"].settings
    environ = {} if header is None else {"HTTP_ACCEPT_LANGUAGE": header}
    method = "POST" if form else "GET"
    with app.test_request_context("/report" + query, method=method, data=form or None,
                                  environ_base=environ):
        if stored is not None:
            session["lang"] = stored
        code = select_locale(settings)
        locale = get_locale()
        assert locale == Locale.parse(code)
        assert str(locale) == code
        # As before: Werkzeug's own match when nothing else decides.
        chosen = [c for c in (query.partition("=")[2], form.get("lang"), stored)
                  if c in settings.languages]
        from flask import request

        expected = chosen[0] if chosen else (
            request.accept_languages.best_match(settings.languages) or settings.default_language)
        assert code == expected


def test_each_language_is_parsed_once(app) -> None:
    seen = {}
    for _ in range(2):
        for lang in ("en", "es", "bs"):
            with app.test_request_context(f"/report?lang={lang}"):
                locale = get_locale()
                assert locale == Locale.parse(lang)
                assert seen.setdefault(lang, locale) is locale
