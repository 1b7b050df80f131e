"""The per-render gettext callables give exactly what Flask-Babel's global ones give."""

from __future__ import annotations

import pytest
from flask import render_template, render_template_string

from tipline.intake import templating

PAGES = [
    ("intake/receipt.html", {"code": "7K2M-9QXD-3HFA-W8RT", "reference": "T-4821"}),
    ("intake/start.html", {}),
    ("intake/privacy.html", {}),
    ("intake/danger.html", {"hotlines": [("SLPS", "314-555-0100")]}),
]

SNIPPET = (
    '{{ _("Send a tip") }}|{{ _("No school matches “%(q)s”. Try fewer letters, or choose '
    '“I don\'t know”.", q=q) }}|{{ ngettext("%(num)d school matches “%(q)s”.", '
    '"%(num)d schools match “%(q)s”.", n, q=q) }}|{{ pgettext("ctx", "Find") }}|'
    '{{ npgettext("ctx", "%(num)d picture", "%(num)d pictures", n) }}'
)


def _render_both(app, monkeypatch, lang: str, render) -> tuple[str, str]:
    with app.test_request_context(f"/report?lang={lang}"):
        bound = render()
    with monkeypatch.context() as m:
        m.setattr(templating, "bound_gettext", lambda _t: {})
        with app.test_request_context(f"/report?lang={lang}"):
            plain = render()
    return bound, plain


@pytest.mark.parametrize("lang", ["en", "es", "bs"])
def test_pages_are_identical_with_the_bound_callables(app, monkeypatch, lang) -> None:
    for template, context in PAGES:
        bound, plain = _render_both(app, monkeypatch, lang,
                                    lambda t=template, c=context: render_template(t, **c))
        assert bound == plain, (template, lang)
        assert f'lang="{lang}"' in bound


@pytest.mark.parametrize("lang", ["en", "es", "bs"])
def test_formatting_and_escaping_match(app, monkeypatch, lang) -> None:
    for n in (1, 3):
        bound, plain = _render_both(
            app, monkeypatch, lang,
            lambda n=n: render_template_string(SNIPPET, q="<b>Roo</b>", n=n))
        assert bound == plain
        assert "&lt;b&gt;Roo&lt;/b&gt;" in bound and "<b>" not in bound


def test_spanish_text_comes_from_the_catalog(app) -> None:
    with app.test_request_context("/report?lang=es"):
        page = render_template("intake/receipt.html", code="X", reference="T-1")
    with app.test_request_context("/report?lang=en"):
        english = render_template("intake/receipt.html", code="X", reference="T-1")
    assert "Your tip was received" in english
    assert "Your tip was received" not in page and "988" in page
