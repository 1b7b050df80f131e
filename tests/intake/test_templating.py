"""The per-render gettext callables give exactly what Flask-Babel's global ones give."""

from __future__ import annotations

import pytest
from flask import render_template, render_template_string

from tipline.intake import templating

PAGES = [
    ("intake/receipt.html", {"code": "7K2M-9QXD-3HFA-W8RT", "sent_to": "S", "next_step": "N"}),
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
        page = render_template("intake/receipt.html", code="X", sent_to="S", next_step="N")
    with app.test_request_context("/report?lang=en"):
        english = render_template("intake/receipt.html", code="X", sent_to="S", next_step="N")
    assert "Your tip was received" in english
    assert "Your tip was received" not in page and "988" in page


@pytest.mark.parametrize("lang", ["en", "es", "bs"])
def test_the_kept_receipt_is_the_rendered_receipt(app, lang) -> None:
    pages = templating.PageCache()
    for code, sent_to in (("7K2M-9QXD-3HFA-W8RT", "Roosevelt"), ("A&B<C>", "T-\"9'")):
        values = {"code": code, "sent_to": sent_to, "next_step": "Check back."}
        with app.test_request_context("/report", method="POST", data={"lang": lang}):
            kept = pages.render("intake/receipt.html", **values)
            rendered = render_template("intake/receipt.html", **values)
        assert kept == rendered
    assert "A&amp;B&lt;C&gt;" in kept and "<C>" not in kept
    assert "T-&#34;9&#39;" in kept
    assert len(pages._pages) == 1  # one copy for the language, reused


def test_the_kept_page_is_per_language_and_skips_queries(app) -> None:
    pages = templating.PageCache()
    seen = {}
    for lang in ("en", "es", "bs"):
        with app.test_request_context("/report", method="POST", data={"lang": lang}):
            seen[lang] = pages.render("intake/receipt.html", code="C-1", sent_to="S", next_step="N")
    assert len(set(seen.values())) == 3 and len(pages._pages) == 3
    with app.test_request_context("/report?lang=es", method="GET"):
        page = pages.render("intake/receipt.html", code="C-1", sent_to="S", next_step="N")
        assert page == render_template("intake/receipt.html", code="C-1", sent_to="S",
                                       next_step="N")
    assert len(pages._pages) == 3  # a request with a query string is not kept


def test_a_value_the_template_transforms_is_not_kept(app, monkeypatch) -> None:
    pages = templating.PageCache()
    monkeypatch.setattr(templating, "render_template",
                        lambda _t, **v: "<p>" + "|".join(x.upper() for x in v.values()))
    with app.test_request_context("/report", method="POST"):
        assert pages.render("any.html", code="ab", reference="cd") == "<p>AB|CD"
    assert pages._pages == {}
