"""The reporter's forms. Labels are in words a student uses, translated with Flask-Babel."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from babel import support
from flask import request
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.datastructures import CombinedMultiDict, MultiDict
from wtforms import (
    BooleanField,
    Field,
    FileField,
    HiddenField,
    MultipleFileField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.csrf.core import CSRFTokenField
from wtforms.fields.core import Flags, Label, UnboundField
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


# The school search box: a school's name is far shorter. The search's cost grows with the
# words typed times the schools, so a posted search is cut to this too (not only validated:
# a search runs without validation, on Find and on Send with no school chosen).
SCHOOL_QUERY_MAX = 80


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


# Field classes whose ``__init__`` only stores its arguments and derives the flags, label and
# choices from them (nothing that depends on the request): a copy of one bound field is the
# same as binding anew. Any other class is bound by WTForms as usual.
_COPYABLE_FIELDS = (StringField, TextAreaField, HiddenField, PasswordField, SelectField,
                    RadioField, BooleanField, FileField, MultipleFileField)


class _BoundFields:
    """A bound copy of each declared field, made once, that each new form copies.

    WTForms binds every declared field anew for each form (``Field.__init__``: its options,
    validator checks, flags and label), and all of it is the same for every request. Each
    form still gets fields of its own: a copy has its own flags, label, ``render_kw`` and
    choices list, and ``process`` then fills in the request's data as before. Only declared
    fields of the classes above with a label of their own are copied (an unlabelled field's
    label is translated as it is bound); the CSRF field, made for each form, is always bound
    by WTForms.
    """

    def __init__(self) -> None:
        self._made: dict[tuple[UnboundField, str, str, int], Field | None] = {}

    def bind(self, form: Any, unbound: UnboundField, options: dict[str, Any]) -> Field | None:
        """A copy of the field bound as ``options`` say, or None: bind it the usual way."""
        key = (unbound, options["name"], options.get("prefix", ""),
               id(options.get("translations")))
        try:
            proto = self._made[key]
        except KeyError:
            if not any(u is unbound for _n, u in type(form)._unbound_fields or ()):
                return None  # made for this form only (the CSRF field): nothing to keep
            proto = self._made[key] = self._prototype(form, unbound, options)
        if proto is None:
            return None
        field: Field = object.__new__(type(proto))
        state = field.__dict__
        state.update(proto.__dict__)
        state["_form"], state["meta"] = form, form.meta
        state["flags"] = flags = Flags()
        flags.__dict__.update(proto.flags.__dict__)
        state["label"] = Label(proto.label.field_id, proto.label.text)
        if proto.render_kw is not None:
            state["render_kw"] = dict(proto.render_kw)
        choices = state.get("_choices")
        if isinstance(choices, (list, dict)):
            state["_choices"] = choices.copy()
        return field

    @staticmethod
    def _prototype(form: Any, unbound: UnboundField, options: dict[str, Any]) -> Field | None:
        label = unbound.args[0] if unbound.args else unbound.kwargs.get("label")
        cls = unbound.field_class
        if (label is None or not issubclass(cls, _COPYABLE_FIELDS)
                or issubclass(cls, CSRFTokenField) or unbound.kwargs.get("datalist") is not None):
            return None
        proto = unbound.bind(form=form, **options)
        proto._form = proto.meta = None  # the copies get their own form
        return cast(Field, proto)


_BOUND_FIELDS = _BoundFields()


class ReporterForm(FlaskForm):
    class Meta(FlaskForm.Meta):
        csrf_class = _CSRFWhenShown

        def bind_field(self, form: Any, unbound_field: UnboundField,
                       options: dict[str, Any]) -> Field:
            """A copy of the field bound once (``_BoundFields``), or WTForms' own binding."""
            if unbound_field.kwargs.get("csrf_impl") is not None:  # made for this form
                return cast(Field, super().bind_field(form, unbound_field, options))
            field = _BOUND_FIELDS.bind(form, unbound_field, options)
            if field is None:
                field = super().bind_field(form, unbound_field, options)
            return cast(Field, field)

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
            posted = request.files
            if posted:
                files = {f.name for f in form if isinstance(f, MultipleFileField)}
                uploads = MultiDict([(k, v) for k, v in posted.items(multi=True) if k in files])
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
    school_q = StringField(_l("Find a school by name"),
                           validators=[Optional(), Length(max=SCHOOL_QUERY_MAX)])
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
    # and from another session selects nothing (see intake.idempotency). Its label is never
    # shown; it is the one WTForms gave it, named so that the field can be copied.
    submission = HiddenField("Submission")
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
