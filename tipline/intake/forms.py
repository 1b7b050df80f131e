"""The reporter's forms. Labels are in words a student uses, translated with Flask-Babel."""

from __future__ import annotations

from typing import Any, ClassVar

from babel import support
from flask import request
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.datastructures import CombinedMultiDict, MultiDict
from wtforms import (
    Field,
    HiddenField,
    MultipleFileField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.csrf.core import CSRFTokenField
from wtforms.i18n import messages_path
from wtforms.validators import DataRequired, Length, Optional

CATEGORY_CHOICES = [
    SelectChoice("weapon", _l("Someone has a weapon")),
    SelectChoice("self_harm", _l("Someone might hurt themselves")),
    SelectChoice("threat", _l("A threat of violence or a planned fight")),
    SelectChoice("bullying", _l("Bullying or harassment")),
    SelectChoice("abuse", _l("Abuse or neglect")),
    SelectChoice("substance", _l("Drugs or alcohol")),
    SelectChoice("family_crisis", _l("A family crisis")),
    SelectChoice("basic_needs",
                 _l("No safe place to sleep, not enough food, or losing a home")),
    SelectChoice("dating_violence",
                 _l("A boyfriend or girlfriend who hurts, scares or controls someone")),
    SelectChoice("other", _l("Something else")),
]

NO_SCHOOL = "none"


class _WTFormsTranslations:
    """WTForms' own messages in the page's language, each catalog loaded once per process.

    (Flask-WTF would read the catalog from disk on every request.)
    """

    _cache: ClassVar[dict[str, support.NullTranslations]] = {}

    def _catalog(self) -> support.NullTranslations:
        locale = str(get_locale() or "en")
        catalog = self._cache.get(locale)
        if catalog is None:
            catalog = support.Translations.load(messages_path(), [locale], domain="wtforms")
            self._cache[locale] = catalog
        return catalog

    def gettext(self, string: str) -> str:
        return str(self._catalog().ugettext(string))

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return str(self._catalog().ungettext(singular, plural, n))


_TRANSLATIONS = _WTFormsTranslations()


class _TokenWhenShown(CSRFTokenField):
    """The CSRF token field, signing this session's token only when a page shows it.

    WTForms signs a token (an itsdangerous ``dumps``) as each form is built, but a tip that
    is stored shows only the receipt, which has no form: the signature was thrown away on
    every submit. The posted token is checked as before (``CSRFProtect`` ahead of the view).
    """

    def process(self, *args: Any, **kwargs: Any) -> None:
        Field.process(self, *args, **kwargs)  # CSRFTokenField's own would sign a token here

    @property
    def current_token(self) -> str:
        return str(self.csrf_impl.generate_csrf_token(self))  # cached per request (flask.g)


class _CSRFWhenShown(FlaskForm.Meta.csrf_class):
    field_class = _TokenWhenShown


class ReporterForm(FlaskForm):
    class Meta(FlaskForm.Meta):
        csrf_class = _CSRFWhenShown

        def get_translations(self, form: object) -> _WTFormsTranslations:
            return _TRANSLATIONS

        def wrap_formdata(self, form: object, formdata: object) -> Any:
            """A posted HTML form only: Flask-WTF would also read a JSON body, where a list,
            a number or bad JSON raises (a 500, even in the CSRF error handler). Any other
            body is an empty form, which fails validation with a clear page."""
            if formdata is None or hasattr(formdata, "getlist"):
                return formdata  # given by the caller
            if not isinstance(form, FlaskForm) or not form.is_submitted():
                return None
            # Files only under the form's file fields: a file under a text field's name
            # would reach a text validator (a 500).
            files = {f.name for f in form if isinstance(f, MultipleFileField)}
            uploads = MultiDict([(k, v) for k, v in request.files.items(multi=True)
                                 if k in files])
            if uploads:
                return CombinedMultiDict((uploads, request.form))
            return request.form or None
MAX_REPLY_CHARS = 5000


class TipForm(ReporterForm):
    school = SelectField(
        _l("Which school is this about?"),
        validators=[DataRequired(message=_l("Please choose a school, or \"I don't know\"."))],
        validate_choice=True,
    )
    school_q = StringField(_l("Find a school by name"), validators=[Optional(), Length(max=80)])
    category = RadioField(
        _l("What is happening?"),
        choices=CATEGORY_CHOICES,
        validators=[DataRequired(message=_l("Please choose what is happening."))],
    )
    danger_now = RadioField(
        _l("Is someone in danger right now?"),
        choices=[
            SelectChoice("no", _l("No")),
            SelectChoice("yes", _l("Yes")),
            SelectChoice("unsure", _l("I'm not sure")),
        ],
        # No answer chosen for them: a tip sent without one is treated as "not sure" (see
        # ``danger_answer``), never as "no".
        validators=[Optional()],
    )
    body = TextAreaField(
        _l("Tell us what happened"),
        validators=[
            DataRequired(message=_l("Please tell us what happened.")),
            Length(max=10000, message=_l("Please keep it under 10,000 characters.")),
        ],
    )
    when = StringField(
        _l("When did it happen, or when will it happen?"),
        validators=[Optional(), Length(max=300, message=_l("Please keep this shorter."))],
    )
    where = StringField(
        _l("Where?"),
        validators=[Optional(), Length(max=300, message=_l("Please keep this shorter."))],
    )
    who = StringField(
        _l("Who is involved?"),
        validators=[Optional(), Length(max=500, message=_l("Please keep this shorter."))],
    )
    how_known = StringField(
        _l("How do you know?"),
        validators=[Optional(), Length(max=500, message=_l("Please keep this shorter."))],
    )
    attachments = MultipleFileField(_l("Add pictures (optional)"))
    # Issued by the server to this session: the same page sent twice from it makes one tip,
    # and from another session selects nothing (see intake.idempotency).
    submission = HiddenField()
    # Honeypot: off screen and hidden from assistive technology; simple bots fill it in.
    website = StringField(_l("Leave this box empty"), validators=[Optional()])


DANGER_UNANSWERED = "unanswered"


def danger_answer(value: object) -> str:
    """``yes``, ``no``, ``unsure``, or ``unanswered`` (routed exactly as ``unsure``)."""
    if isinstance(value, str) and value in ("yes", "no", "unsure"):
        return value
    return DANGER_UNANSWERED


class CodeForm(ReporterForm):
    code = StringField(
        _l("Your code"),
        validators=[DataRequired(message=_l("Please type your code.")), Length(max=64)],
    )


class ReplyForm(ReporterForm):
    body = TextAreaField(
        _l("Your answer"),
        validators=[
            Optional(),
            Length(max=MAX_REPLY_CHARS, message=_l("Please keep it under 5,000 characters.")),
        ],
    )
    attachments = MultipleFileField(_l("Add pictures (optional)"))
