"""Work a submit's request handling no longer repeats (issue 15), and what each change keeps.

The reporter forms copy fields bound once instead of binding every declared field again; the
school question's choices are made once per language and school list; the receipt's
sentences are kept per language. Each test fails if the output or a check changes, and the
counting tests fail if the repeated work comes back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select
from wtforms import SelectChoice, StringField
from wtforms.fields.core import UnboundField

from tests.intake.helpers import post_tip, tip_fields
from tipline.directory.models import District, School
from tipline.intake import forms, templating, views
from tipline.intake.checkback import CheckBack
from tipline.intake.forms import CodeForm, ReplyForm, ReporterForm, TipForm
from tipline.intake.templating import ReceiptFacts

BAD_TIP = {  # every field that validates something, wrong
    "csrf_token": "x", "school": "no-such-school", "category": "maybe", "danger_now": "perhaps",
    "body": "b" * 10001, "school_q": "q" * 81, "when": "w" * 301, "where": "w" * 301,
    "who": "w" * 501, "how_known": "w" * 501, "website": "filled",
}
POSTS: dict[type[ReporterForm], dict[str, str]] = {
    TipForm: BAD_TIP,
    CodeForm: {"csrf_token": "x", "code": "c" * 65},
    ReplyForm: {"csrf_token": "x", "body": "r" * 5001},
}

CHECKED = {
    TipForm: {"school", "category", "danger_now", "body", "school_q", "when", "where", "who",
              "how_known"},
    CodeForm: {"code"},
    ReplyForm: {"body"},
}


def _state(field: Any) -> dict[str, Any]:
    """What a bound field holds, apart from the form it belongs to."""
    state = {k: v for k, v in vars(field).items()
             if k not in ("_form", "meta", "flags", "label", "csrf_impl")}
    state["flags"] = vars(field.flags)
    state["label"] = (field.label.field_id, str(field.label.text))
    state["html"] = str(field) if field.type != "_TokenWhenShown" else ""
    return state


def _wtforms_binds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every field bound by WTForms itself, as before the copies."""
    monkeypatch.setattr(forms._BOUND_FIELDS, "bind", lambda *_args: None)


def _both(app: Any, monkeypatch: pytest.MonkeyPatch, form_class: type[ReporterForm],
          data: dict[str, str], lang: str = "en") -> tuple[ReporterForm, ReporterForm]:
    """The same post as a form of copied fields and as one WTForms bound field by field."""
    with app.test_request_context(f"/report?lang={lang}", method="POST", data=data):
        form_class()  # the first form makes the copies' originals
        copied = form_class()
        with monkeypatch.context() as m:
            _wtforms_binds(m)
            bound = form_class()
        for form in (copied, bound):
            if isinstance(form, TipForm):
                form.school.choices = [SelectChoice("", "-"),
                                       SelectChoice("slps-roosevelt", "Roosevelt")]
            assert not form.validate()
        return copied, bound


@pytest.mark.parametrize("form_class", list(POSTS))
@pytest.mark.parametrize("lang", ["en", "es"])
def test_a_form_of_copied_fields_is_the_form_wtforms_binds(app, monkeypatch, form_class,
                                                           lang) -> None:
    copied, bound = _both(app, monkeypatch, form_class, POSTS[form_class], lang)
    assert [f.name for f in copied] == [f.name for f in bound]
    for mine, theirs in zip(copied, bound, strict=True):
        assert type(mine) is type(theirs)
        assert mine._form is copied and mine.meta is copied.meta
        assert _state(mine) == _state(theirs), mine.name
    # Validated field by field: the same errors, on every field that checks something
    # (the form's own CSRF check included: no CSRFProtect ran before it here).
    assert copied.errors == bound.errors
    assert set(copied.errors) == CHECKED[form_class] | {"csrf_token"}


def test_each_form_has_fields_of_its_own(app) -> None:
    with app.test_request_context("/report", method="POST", data=tip_fields("x")):
        first = TipForm()
        first.category.choices.append(SelectChoice("made-up", "made up"))
        first.body.flags.required = False
        first.body.label.text = "changed"
        first.where.render_kw = {"class": "x"}
        first.school.choices = [SelectChoice("a", "A")]
        second = TipForm()
    assert [c.value for c in second.category.choices] == [
        c.value for c in forms.CATEGORY_CHOICES]
    assert second.body.flags.required is True
    assert str(second.body.label.text) == "Tell us what happened"
    assert second.where.render_kw is None and second.school.choices is None
    assert second.body is not first.body and second.body.flags is not first.body.flags
    assert second.body.data == first.body.data == tip_fields("x")["body"]


def _count_binding(monkeypatch: Any) -> list[str]:
    """The names of the fields WTForms binds from now on, in order."""
    bound: list[str] = []
    real = UnboundField.bind

    def counting(self: UnboundField, *args: Any, **kwargs: Any) -> Any:
        bound.append(kwargs["name"])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(UnboundField, "bind", counting)
    return bound


def test_a_form_binds_only_its_csrf_field(app, monkeypatch) -> None:
    """Fails if WTForms binds every declared field again for each form."""
    bound = _count_binding(monkeypatch)
    with app.test_request_context("/report", method="POST", data=tip_fields("x")):
        TipForm()
        bound.clear()
        form = TipForm()
    assert bound == ["csrf_token"]
    assert form.csrf_token.csrf_impl is form._csrf  # the field checks this form's token


def test_an_unlabelled_field_is_bound_by_wtforms_each_time(app, monkeypatch) -> None:
    """Its label is translated as it is bound, in the request's language: never copied."""

    class Unlabelled(ReporterForm):
        nickname = StringField()

    bound = _count_binding(monkeypatch)
    with app.test_request_context("/report", method="POST", data={"nickname": "n"}):
        for _ in range(3):
            assert Unlabelled().nickname.data == "n"
    assert bound.count("nickname") == 3


def test_the_school_choices_are_the_ones_made_for_each_request(app, demo_directory) -> None:
    for lang in ("en", "es", "en"):
        with app.test_request_context(f"/report?lang={lang}", method="POST"):
            entries = views._schools()
            kept, fresh = TipForm(), TipForm()
            views._set_choices(kept, entries)
            fresh.school.choices = [
                SelectChoice("", views._("Choose a school")),
                SelectChoice(forms.NO_SCHOOL, views._("I don't know / not about a school")),
                *(SelectChoice(e.code, e.name) for e in entries),
            ]
            assert ([(c.value, c.label) for c in kept.school.choices]
                    == [(c.value, c.label) for c in fresh.school.choices])
            assert kept.school.choices is not views._SCHOOL_CHOICES[lang][1]
    assert views._SCHOOL_CHOICES["es"][1][0].label != views._SCHOOL_CHOICES["en"][1][0].label


def test_a_school_added_to_the_directory_is_accepted_once_the_list_is_read_again(
        app, client, db_session, demo_directory) -> None:
    assert post_tip(client, school="stl-new-school").status_code == 400
    district = db_session.execute(select(District).limit(1)).scalar_one()
    db_session.add(School(district_id=district.id, code="stl-new-school", name="New School"))
    db_session.commit()
    app.extensions["tipline_schools"].clear()  # as when its ttl runs out
    resp = post_tip(client, school="stl-new-school")
    assert "Your tip was received" in resp.get_data(as_text=True)
    assert post_tip(client, school="no-such-school").status_code == 400


@pytest.mark.parametrize("lang", ["en", "es", "bs"])
@pytest.mark.parametrize("facts", [
    ReceiptFacts(3, 1, "Roosevelt High", False),
    ReceiptFacts(2, None, None, True),
    ReceiptFacts(1, 1, "<b>Roosevelt</b> & Co", True),
])
@pytest.mark.parametrize("when", [
    CheckBack("hour"), CheckBack("today"), CheckBack("unknown"),
    CheckBack("next_window", datetime(2026, 12, 7, 8, 30), 2),
])
def test_the_kept_receipt_sentences_are_the_ones_made_anew(app, lang, facts, when) -> None:
    with app.test_request_context(f"/report?lang={lang}"):
        made = dict(templating._receipt_sentences.__wrapped__(lang, facts, when))
        assert templating.receipt_text(facts, when) == made
        assert templating.receipt_text(facts, when) == made  # and again, from the cache


def test_the_receipt_sentences_follow_the_language(app) -> None:
    facts, when = ReceiptFacts(3, 1, "Roosevelt High", False), CheckBack("hour")
    texts = {}
    for lang in ("en", "es", "en"):
        with app.test_request_context(f"/report?lang={lang}"):
            texts[lang] = templating.receipt_text(facts, when)
    assert texts["en"]["next_step"] == "Staff are being alerted now. Check back in about an hour."
    assert texts["es"]["next_step"] != texts["en"]["next_step"]
