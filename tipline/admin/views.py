"""Administration pages (district admins), the audit log viewer and statistics.

Thin views: parse a form, call ``tipline.admin.services`` / ``stats``, render. Editing is for
district admins only (anyone else gets 404); the audit log and statistics are also open to
auditors, read-only. Every POST carries a CSRF token (Flask-WTF).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    IntegerField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from tipline.accounts import notices
from tipline.accounts import services as accounts
from tipline.accounts.models import Role, StaffUser
from tipline.accounts.web import current_staff, init_auth, register_nav, staff_required
from tipline.admin import rotas as rotas_mod
from tipline.admin import services as admin
from tipline.admin import stats as stats_mod
from tipline.admin.charts import bar_chart
from tipline.audit.services import record
from tipline.db import utcnow
from tipline.directory.models import District
from tipline.directory.validation import ROLES, DirectoryError
from tipline.routing.policy import MAX_POLICY_CHARS
from tipline.tips.models import Category, Severity
from tipline.web import db_session, services
from tipline.web.inputs import FIRST_DATE, LAST_DATE

bp = Blueprint("admin", __name__, url_prefix="/staff/admin")

ADMIN = (Role.DISTRICT_ADMIN.value,)
READERS = (Role.DISTRICT_ADMIN.value, Role.AUDITOR.value)
# The pages an installation administrator uses too: the overview and the routing policy.
CONFIG = (Role.DISTRICT_ADMIN.value, Role.INSTALLATION_ADMIN.value)
ROLE_LABELS = {
    Role.DISTRICT_ADMIN.value: "District administrator",
    Role.SCHOOL_STAFF.value: "School staff",
    Role.POLICE_LIAISON.value: "Police liaison",
    Role.AUDITOR.value: "Auditor (read-only)",
}
SEVERITY_CHOICES = [(str(int(s)), s.name.replace("_", " ").capitalize()) for s in Severity]
MAX_POLICY = MAX_POLICY_CHARS


def _choices(pairs: Any) -> list[SelectChoice]:
    """WTForms 3.3 wants SelectChoice objects rather than (value, label) tuples."""
    return [SelectChoice(value, label) for value, label in pairs]


def register(app: Flask) -> None:
    init_auth(app)
    app.register_blueprint(bp)
    app.jinja_env.globals["admin_pages"] = admin_pages
    register_nav(app, "admin.index", "Administration", CONFIG)
    register_nav(app, "admin.stats", "Statistics", READERS)
    register_nav(app, "admin.audit", "Audit log", READERS)


# The administration sub-navigation: an installation administrator has only two pages.
DISTRICT_PAGES = (("admin.index", "Overview"), ("admin.schools", "Schools"),
                  ("admin.contacts", "Contacts"), ("admin.users", "Staff accounts"),
                  ("admin.policy", "Routing policy"), ("admin.policy_matrix", "Routing matrix"),
                  ("admin.rotas", "On-call rotas"))
INSTALLATION_PAGES = (("admin.index", "Overview"), ("admin.policy", "Routing policy"),
                      ("admin.policy_matrix", "Routing matrix"))


def admin_pages() -> tuple[tuple[str, str], ...]:
    """The sub-navigation of the signed-in account (a template global: macros see it)."""
    from flask_login import current_user

    role = getattr(current_user, "role", None)
    return INSTALLATION_PAGES if role == Role.INSTALLATION_ADMIN else DISTRICT_PAGES


# -- forms -------------------------------------------------------------------------------

class ConfirmForm(FlaskForm):
    """Only the CSRF token (buttons that change one thing)."""


class SchoolForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired(), Length(max=40)])
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    aliases = StringField("Other names students use (comma separated)",
                          validators=[Optional(), Length(max=2000)])
    active = BooleanField("Active (shown to reporters)", default=True)


class ContactForm(FlaskForm):
    key = StringField("Key", validators=[DataRequired(), Length(max=80)])
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    role = SelectField("Role", choices=_choices((r, r.replace("_", " ")) for r in sorted(ROLES)))
    sms = StringField("SMS number (E.164, e.g. +13145550101)",
                      validators=[Optional(), Length(max=20)])
    voice = StringField("Voice number (E.164)", validators=[Optional(), Length(max=20)])
    email = StringField("Email", validators=[Optional(), Length(max=254)])
    priority = IntegerField("Priority (lower is alerted first)", default=100,
                            validators=[NumberRange(0, 10_000)])
    agency = SelectField("Police agency", choices=[], validate_choice=True)
    schools = SelectMultipleField("Schools", coerce=int, choices=[])
    active = BooleanField("Active (can be alerted)", default=True)


class RotaForm(FlaskForm):
    key = StringField("Key", validators=[DataRequired(), Length(max=80)])
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    turn = SelectField("Turns", choices=_choices((("weekly", "Weekly"), ("nightly", "Nightly"))))
    handover = StringField("Handover time (24-hour, district time)", default="17:00",
                           validators=[DataRequired(), Length(max=5)])
    starts_on = StringField("First turn starts on (YYYY-MM-DD)",
                            validators=[DataRequired(), Length(max=10)])
    members = TextAreaField("People, in turn order (one contact key per line)",
                            validators=[Length(max=rotas_mod.MAX_TEXT)])
    swaps = TextAreaField("Swaps (one per line: FROM TO KEY)",
                          validators=[Length(max=rotas_mod.MAX_TEXT)])
    holidays = TextAreaField("Holidays (one per line: DATE KEY, or DATE - for no cover)",
                             validators=[Length(max=rotas_mod.MAX_TEXT)])


class UserForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    display_name = StringField("Name shown in the dashboard",
                               validators=[Optional(), Length(max=200)])
    role = SelectField("Role", choices=_choices(ROLE_LABELS.items()))
    schools = SelectMultipleField("Schools (school staff)", coerce=int, choices=[])
    contact = SelectField("Linked contact (police liaison)", choices=[])


class PolicyForm(FlaskForm):
    text = TextAreaField("Policy (YAML)", validators=[Length(max=MAX_POLICY)])
    # Checked only for a dry run ("Check" and "Save" do not send them).
    district = SelectField("District", choices=[], validate_choice=False)
    school = SelectField("School", choices=[], validate_choice=False)
    category = SelectField("Category", choices=_choices(
        (c.value, c.value.replace("_", " ")) for c in Category), validate_choice=False)
    severity = SelectField("Severity", choices=_choices(SEVERITY_CHOICES), default="3",
                           validate_choice=False)
    at = StringField("Date and time (district time)", validators=[Optional(), Length(max=20)])
    # The reporter's language: rules may match it (docs/routing.md).
    language = SelectField("Reporter's language", choices=_choices(
        (("en", "English"), ("es", "Spanish"), ("bs", "Bosnian"))), default="en",
        validate_choice=False)


# -- helpers -----------------------------------------------------------------------------

def _district(user: StaffUser) -> District:
    district = db_session().get(District, user.district_id) if user.district_id else None
    if district is None:
        abort(404)
    return district


def _page_arg(name: str = "page") -> int:
    try:
        return max(1, int(request.args.get(name, "1")))
    except ValueError:
        return 1


# -- index -------------------------------------------------------------------------------

@bp.get("/")
@staff_required(*CONFIG)
def index() -> Any:
    user = current_staff()
    sess = db_session()
    if user.role == Role.INSTALLATION_ADMIN:
        return render_template("admin/index.html", district=None,
                               policy=admin.active_policy_row(sess))
    district = _district(user)
    return render_template(
        "admin/index.html", district=district,
        schools=len(admin.list_schools(sess, district.id)),
        contacts=len(admin.list_contacts(sess, district.id)),
        users=len(admin.list_users(sess, district.id)),
        policy=admin.active_policy_row(sess),
    )


# -- schools -----------------------------------------------------------------------------

@bp.get("/schools")
@staff_required(*ADMIN)
def schools() -> Any:
    district = _district(current_staff())
    return render_template("admin/schools.html", district=district, form=ConfirmForm(),
                           schools=admin.list_schools(db_session(), district.id))


@bp.route("/schools/new", methods=["GET", "POST"], defaults={"school_id": None})
@bp.route("/schools/<int:school_id>", methods=["GET", "POST"])
@staff_required(*ADMIN)
def school_edit(school_id: int | None) -> Any:
    user = current_staff()
    district = _district(user)
    sess = db_session()
    school = None
    if school_id is not None:
        try:
            school = admin.get_school(sess, district.id, school_id)
        except admin.NotFound:
            abort(404)
    form = SchoolForm(obj=school)
    error = None
    if form.validate_on_submit():
        data = admin.SchoolInput(form.code.data or "", form.name.data or "",
                                 form.aliases.data or "", bool(form.active.data))
        try:
            saved = admin.save_school(sess, user, data, school_id)
        except DirectoryError as exc:
            sess.rollback()
            error = str(exc)
        else:
            sess.commit()
            flash(f"Saved school {saved.name}.", "ok")
            return redirect(url_for("admin.schools"), 303)
    status = 400 if request.method == "POST" else 200
    return render_template("admin/school_form.html", form=form, school=school, error=error,
                           district=district), status


@bp.post("/schools/<int:school_id>/active")
@staff_required(*ADMIN)
def school_active(school_id: int) -> Any:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    sess = db_session()
    try:
        school = admin.set_school_active(sess, current_staff(), school_id,
                                         request.form.get("active") == "1")
    except admin.NotFound:
        abort(404)
    sess.commit()
    flash(f"{school.name} is now {'active' if school.active else 'inactive'}.", "ok")
    return redirect(url_for("admin.schools"), 303)


# -- contacts ----------------------------------------------------------------------------

@bp.get("/contacts")
@staff_required(*ADMIN)
def contacts() -> Any:
    district = _district(current_staff())
    rows = admin.list_contacts(db_session(), district.id)
    return render_template("admin/contacts.html", district=district, form=ConfirmForm(),
                           contacts=rows, own={c.id for c in rows
                                               if admin.is_own_contact(c, district.id)})


@bp.route("/contacts/new", methods=["GET", "POST"], defaults={"contact_id": None})
@bp.route("/contacts/<int:contact_id>", methods=["GET", "POST"])
@staff_required(*ADMIN)
def contact_edit(contact_id: int | None) -> Any:
    user = current_staff()
    district = _district(user)
    sess = db_session()
    contact = None
    if contact_id is not None:
        try:
            contact = admin.get_contact(sess, district.id, contact_id)
        except admin.NotFound:
            abort(404)
    form = ContactForm()
    own_schools = admin.list_schools(sess, district.id)
    form.schools.choices = _choices((s.id, s.name) for s in own_schools)
    agencies = list(admin.list_agencies(sess, district.id))
    if contact is not None and contact.agency is not None and contact.agency not in agencies:
        agencies.append(contact.agency)  # kept as it is; another one must serve the district
    form.agency.choices = _choices([("", "none")] + [(a.code, a.name) for a in agencies])
    readonly = contact is not None and not admin.is_own_contact(contact, district.id)
    if request.method == "GET" and contact is not None:
        form.key.data, form.name.data, form.role.data = contact.key, contact.name, contact.role
        form.sms.data, form.voice.data = contact.sms_number, contact.voice_number
        form.email.data, form.priority.data = contact.email, contact.priority
        form.active.data = contact.active
        form.agency.data = contact.agency.code if contact.agency else ""
        form.schools.data = [s.id for s in contact.schools]
    error = admin.shared_contact_message(contact) if readonly and contact else None
    if form.validate_on_submit():
        data = admin.ContactInput(
            key=form.key.data or "", name=form.name.data or "", role=form.role.data or "",
            sms=form.sms.data, voice=form.voice.data, email=form.email.data,
            priority=int(form.priority.data or 0), active=bool(form.active.data),
            school_ids=tuple(form.schools.data or ()), agency_code=form.agency.data or None,
        )
        try:
            saved = admin.save_contact(sess, user, data, contact_id)
        except DirectoryError as exc:
            sess.rollback()
            error = str(exc)
        else:
            sess.commit()
            flash(f"Saved contact {saved.name}.", "ok")
            return redirect(url_for("admin.contacts"), 303)
    status = 400 if request.method == "POST" else 200
    return render_template("admin/contact_form.html", form=form, contact=contact, error=error,
                           district=district, readonly=readonly), status


@bp.post("/contacts/<int:contact_id>/active")
@staff_required(*ADMIN)
def contact_active(contact_id: int) -> Any:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    sess = db_session()
    try:
        contact = admin.set_contact_active(sess, current_staff(), contact_id,
                                           request.form.get("active") == "1")
    except admin.NotFound:
        abort(404)
    except DirectoryError as exc:
        sess.rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.contacts"), 303)
    sess.commit()
    flash(f"{contact.name} is now {'active' if contact.active else 'inactive'}.", "ok")
    return redirect(url_for("admin.contacts"), 303)


# -- on-call rotas -----------------------------------------------------------------------

@bp.get("/rotas")
@staff_required(*ADMIN)
def rotas() -> Any:
    district = _district(current_staff())
    sess = db_session()
    now = utcnow()
    rows = [(r, *rotas_mod.on_call_now(r, now, district.timezone),
             rotas_mod.rota_warnings(sess, r, now))
            for r in rotas_mod.list_rotas(sess, district.id)]
    return render_template("admin/rotas.html", district=district, rows=rows)


@bp.route("/rotas/new", methods=["GET", "POST"], defaults={"rota_id": None})
@bp.route("/rotas/<int:rota_id>", methods=["GET", "POST"])
@staff_required(*ADMIN)
def rota_edit(rota_id: int | None) -> Any:
    user = current_staff()
    district = _district(user)
    sess = db_session()
    rota = None
    if rota_id is not None:
        try:
            rota = rotas_mod.get_rota(sess, district.id, rota_id)
        except admin.NotFound:
            abort(404)
    form = RotaForm()
    if request.method == "GET" and rota is not None:
        form.key.data, form.name.data, form.turn.data = rota.key, rota.name, rota.turn
        form.handover.data, form.starts_on.data = rota.handover, rota.starts_on.isoformat()
        form.members.data = "\n".join(rota.members or [])
        form.swaps.data = "\n".join(f"{s['from']} {s['to']} {s['contact']}"
                                    for s in rota.swaps or [])
        form.holidays.data = "\n".join(f"{h['date']} {h.get('contact') or '-'}"
                                       for h in rota.holidays or [])
    error = None
    if form.validate_on_submit():
        data = rotas_mod.RotaInput(
            key=form.key.data or "", name=form.name.data or "", turn=form.turn.data or "",
            handover=form.handover.data or "", starts_on=form.starts_on.data or "",
            members=form.members.data or "", swaps=form.swaps.data or "",
            holidays=form.holidays.data or "")
        try:
            saved, warnings = rotas_mod.save_rota(sess, user, data, rota_id, utcnow())
        except (DirectoryError, admin.AdminError) as exc:
            sess.rollback()
            error = str(exc)
        else:
            sess.commit()
            flash(f"Saved rota {saved.name}.", "ok")
            for w in warnings[:5]:
                flash(f"Warning: {w}", "error")
            return redirect(url_for("admin.rotas"), 303)
    contacts = admin.list_contacts(sess, district.id)
    status = 400 if request.method == "POST" else 200
    return render_template("admin/rota_form.html", form=form, rota=rota, error=error,
                           district=district, contacts=contacts), status


# -- users -------------------------------------------------------------------------------

@bp.get("/users")
@staff_required(*ADMIN)
def users() -> Any:
    user = current_staff()
    district = _district(user)
    return render_template("admin/users.html", district=district, form=ConfirmForm(),
                           users=admin.list_users(db_session(), district.id), me=user,
                           role_labels=ROLE_LABELS)


@bp.route("/users/new", methods=["GET", "POST"])
@staff_required(*ADMIN)
def user_new() -> Any:
    user = current_staff()
    district = _district(user)
    sess = db_session()
    form = UserForm()
    form.schools.choices = _choices((s.id, s.name)
                                    for s in admin.list_schools(sess, district.id))
    form.contact.choices = _choices([("", "none")] + [
        (str(c.id), c.name) for c in admin.list_contacts(sess, district.id)
        if admin.is_own_contact(c, district.id)])
    error = None
    if form.validate_on_submit():
        contact = form.contact.data
        data = admin.UserInput(email=form.email.data or "", role=form.role.data or "",
                               display_name=form.display_name.data or "",
                               school_ids=tuple(form.schools.data or ()),
                               contact_id=int(contact) if contact else None)
        try:
            created, password = admin.add_user(sess, services().vault, user, data)
        except (admin.AdminError, admin.NotFound) as exc:
            sess.rollback()
            error = str(exc) if isinstance(exc, admin.AdminError) else "unknown contact"
        else:
            sess.commit()
            # Shown once, in this response only: never flashed (the session cookie is
            # signed, not encrypted) and never stored.
            return render_template("admin/user_created.html", created=created,
                                   password=password, role_labels=ROLE_LABELS,
                                   hours=accounts.ONE_TIME_HOURS)
    status = 400 if request.method == "POST" else 200
    return render_template("admin/user_form.html", form=form, error=error,
                           district=district), status


def _reset(sess: Any, acting: StaffUser, user_id: int) -> admin.CredentialReset:
    return admin.reset_user_credentials(sess, acting, user_id, now=utcnow())


USER_ACTIONS: dict[str, tuple[Any, str]] = {
    "deactivate": (admin.deactivate_user, "deactivated; their sessions have ended"),
    "reactivate": (admin.reactivate_user, "active again"),
    "sign-out": (admin.sign_out_user, "signed out on every device"),
    # a new one-time password, shown on the page the action returns
    "reset": (_reset, ""),
}


@bp.post("/users/<int:user_id>/<action>")
@staff_required(*ADMIN)
def user_action(user_id: int, action: str) -> Any:
    if action not in USER_ACTIONS:
        abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    func, message = USER_ACTIONS[action]
    sess = db_session()
    try:
        target = func(sess, current_staff(), user_id)
    except admin.NotFound:
        abort(404)
    except admin.AdminError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.users"), 303)
    sess.commit()
    if isinstance(target, admin.CredentialReset):
        return _reset_done(sess, target)
    flash(f"{target.email}: {message}.", "ok")
    return redirect(url_for("admin.users"), 303)


def _reset_done(sess: Any, reset: admin.CredentialReset) -> Any:
    """Tell the holder (after the commit), then show the one-time password: like a new
    account's first password, only in this response, never flashed (the session cookie is
    signed, not encrypted) and never stored."""
    told = notices.deliver(sess, services().senders()["email"], reset.notice)
    sess.commit()
    return render_template("admin/user_reset.html", user=reset.user, password=reset.password,
                           told=told, hours=accounts.ONE_TIME_HOURS)


# -- routing policy ----------------------------------------------------------------------

def _local_time(value: str | None, tz: ZoneInfo) -> datetime:
    if not value:
        return utcnow()
    try:
        local = datetime.fromisoformat(value)
    except ValueError:
        raise DirectoryError("the date and time are not valid") from None
    if not FIRST_DATE <= local.date() <= LAST_DATE:  # rotas and time zones work on either side
        raise DirectoryError(f"the date must be between {FIRST_DATE:%Y-%m-%d} and "
                             f"{LAST_DATE:%Y-%m-%d}")
    return local.replace(tzinfo=tz).astimezone(UTC)


def _dry_run_choices(form: PolicyForm) -> None:
    for fld in (form.district, form.school, form.category, form.severity, form.language):
        if not any(str(c.value) == (fld.data or "") for c in fld.choices or []):
            raise DirectoryError(f"choose a {fld.label.text.lower()} from the list")


def _policy_places(form: PolicyForm, user: StaffUser) -> dict[str, District]:
    """The districts (and their schools) the dry run offers: the admin's own, or all."""
    sess = db_session()
    if user.role == Role.INSTALLATION_ADMIN:
        districts = list(admin.list_districts(sess))
    else:
        districts = [_district(user)]
    form.district.choices = _choices((d.code, d.name) for d in districts)
    if len(districts) == 1:
        form.district.data = districts[0].code
    many = len(districts) > 1
    form.school.choices = _choices([("", "no school named")] + [
        (s.code, f"{d.name}: {s.name}" if many else s.name)
        for d in districts for s in admin.list_schools(sess, d.id)])
    return {d.code: d for d in districts}


@bp.route("/policy", methods=["GET", "POST"])
@staff_required(*CONFIG)
def policy() -> Any:
    """The routing policy editor: a district admin's own section, or (an installation
    administrator) the whole policy."""
    from tipline.routing.engine import UnknownPlace
    from tipline.routing.policy import PolicyError

    user = current_staff()
    sess = db_session()
    scope = admin.policy_scope(sess, user)
    form = PolicyForm()
    places = _policy_places(form, user)
    chosen = places.get(form.district.data or "") or next(iter(places.values()), None)
    tz = ZoneInfo(chosen.timezone if chosen else "UTC")
    active = admin.active_policy_row(sess)
    if request.method == "GET":
        form.text.data = admin.policy_editor_text(sess, user)
        form.at.data = utcnow().astimezone(tz).strftime("%Y-%m-%dT%H:%M")
    action = request.form.get("action", "")
    result: dict[str, Any] = {}
    status = 200
    if request.method == "POST":
        if not form.validate_on_submit() or action not in ("check", "dryrun", "save"):
            abort(400)
        text = form.text.data or ""
        check = admin.check_policy(sess, text, district_code=scope) if action != "save" \
            else admin.PolicyCheck(True, [])  # save_policy checks (and audits a refusal)
        result = {"action": action, "check": check}
        if not check.ok:
            status = 400
        elif action == "dryrun":
            try:
                at = _local_time(form.at.data, tz)
                _dry_run_choices(form)
                result["explanation"] = admin.dry_run(
                    sess, check.policy, district_code=form.district.data or "",
                    school_code=form.school.data or None, category=form.category.data or "",
                    severity=int(form.severity.data or 3), at=at,
                    language=form.language.data or "en")
            except (DirectoryError, UnknownPlace) as exc:
                result["dry_error"] = str(exc).strip("'\"")
                status = 400
            sess.rollback()  # a dry run writes nothing, whatever explain() touched
        elif action == "save":
            try:
                row = admin.save_policy(sess, user, text)
            except (PolicyError, admin.PolicyScopeError) as exc:
                if isinstance(exc, admin.PolicyScopeError):
                    sess.commit()  # only the audit record of the refused attempt
                else:
                    sess.rollback()
                result["check"] = admin.PolicyCheck(False, list(exc.errors) or [str(exc)])
                status = 400
            else:
                sess.commit()
                flash(f"Saved: routing policy version {row.version} is now active.", "ok")
                return redirect(url_for("admin.policy"), 303)
    return render_template("admin/policy.html", form=form, active=active, result=result,
                           history=admin.policy_history(sess), scope=scope,
                           several=len(places) > 1), status


@bp.get("/policy/matrix")
@staff_required(*CONFIG)
def policy_matrix() -> Any:
    """Who the active policy alerts, by category, severity and school hours/after hours, at one
    school of the admin's district (an installation administrator picks the district)."""
    from tipline.admin import matrix as matrix_mod
    from tipline.routing.policy import active_policy

    user = current_staff()
    sess = db_session()
    if user.role == Role.INSTALLATION_ADMIN:
        districts = list(admin.list_districts(sess))
        wanted = request.args.get("district", "")
        district = next((d for d in districts if d.code == wanted), None) or \
            (districts[0] if districts else None)
    else:
        district = _district(user)
        districts = [district]
    policy = active_policy(sess)
    if district is None or policy is None:
        return render_template("admin/policy_matrix.html", matrix=None, district=district,
                               districts=districts, schools=[], policy=policy)
    schools = matrix_mod.schools_of(sess, district)
    wanted_school = request.args.get("school", "")
    school = next((s for s in schools if s.code == wanted_school), None) or \
        (schools[0] if schools else None)
    result = None
    if school is not None:
        result = matrix_mod.routing_matrix(sess, policy, district, school, utcnow())
    sess.rollback()  # nothing is written; make sure of it
    return render_template("admin/policy_matrix.html", matrix=result, district=district,
                           districts=districts, schools=schools, policy=policy,
                           slots=matrix_mod.SLOTS, generated_at=utcnow())


# -- audit log ---------------------------------------------------------------------------

def _audit_page(check: admin.LogCheck) -> str:
    district = _district(current_staff())
    action = (request.args.get("action") or "").strip()[:60] or None
    page = admin.audit_page(db_session(), district.id, _page_arg(), action=action)
    return render_template("admin/audit.html", page=page, check=check, chain=check.report,
                           action=action or "", form=ConfirmForm())


@bp.get("/audit")
@staff_required(*READERS)
def audit() -> Any:
    return _audit_page(admin.verify_log(db_session(), window=admin.VIEW_WINDOW))


@bp.post("/audit/verify")
@staff_required(*READERS)
def audit_verify() -> Any:
    """Check every entry (slow on a long log, so it is a button, not every page view)."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    user = current_staff()
    _district(user)  # an account with no district has no audit page: 404 before any write
    sess = db_session()
    check = admin.verify_log(sess)
    record(sess, "audit.verify", actor=f"user:{user.id}", actor_user_id=user.id,
           detail={"ok": check.report.ok, "checked": check.report.checked,
                   "first_bad_id": check.report.first_bad_id})
    sess.commit()
    return _audit_page(check)


# -- statistics --------------------------------------------------------------------------

class BadDates(Exception):
    """A start or end date that is not a date in the accepted range; the message says so."""


def _date_arg(name: str) -> date | None:
    raw = request.values.get(name, "").strip()
    if not raw:
        return None
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise BadDates(f"“{raw[:40]}” is not a date: use the date picker, or YYYY-MM-DD.") \
            from None
    if not FIRST_DATE <= value <= LAST_DATE:
        raise BadDates(f"Dates must be between {FIRST_DATE:%Y-%m-%d} and "
                       f"{LAST_DATE:%Y-%m-%d}.")
    return value


def _stats_query(user: StaffUser) -> tuple[District, stats_mod.StatsQuery, date | None,
                                           date | None]:
    """The district and period asked for; raises BadDates."""
    district = _district(user)
    tz = ZoneInfo(district.timezone)
    first, last = _date_arg("start"), _date_arg("end")
    start = datetime.combine(first, datetime.min.time(), tz) if first else None
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tz) if last else None
    return district, stats_mod.StatsQuery(district.id, start, end, district.timezone), first, last


@bp.get("/stats")
@staff_required(*READERS)
def stats() -> Any:
    try:
        district, query, first, last = _stats_query(current_staff())
    except BadDates as exc:
        return _bad_dates(str(exc))
    return _stats_page(district, query, first, last)


def _bad_dates(message: str) -> Any:
    """The whole period's statistics, with the message next to the date boxes (400)."""
    district = _district(current_staff())
    query = stats_mod.StatsQuery(district.id, None, None, district.timezone)
    return _stats_page(district, query, None, None, date_error=message), 400


def _stats_page(district: District, query: stats_mod.StatsQuery, first: date | None,
                last: date | None, date_error: str | None = None) -> Any:
    result = stats_mod.district_stats(db_session(), query)
    charts = {
        "severity": bar_chart("chart-severity", "Tips by severity",
                              [(b.label, b.count) for b in result.by_severity]),
        "category": bar_chart("chart-category", "Tips by category",
                              [(b.label, b.count) for b in result.by_category]),
        "school": bar_chart("chart-school", "Tips by school",
                            [(b.label, b.count) for b in result.by_school]),
        "channel": bar_chart("chart-channel", "Tips by channel",
                             [(b.label, b.count) for b in result.by_channel]),
        "month": bar_chart("chart-month", "Tips by month",
                           [(b.label, b.count) for b in result.by_month]),
    }
    return render_template("admin/stats.html", district=district, stats=result, charts=charts,
                           start=first, end=last, form=ConfirmForm(), date_error=date_error,
                           duration=stats_mod.human_duration)


@bp.post("/stats.csv")
@staff_required(*READERS)
def stats_csv() -> Any:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    user = current_staff()
    try:
        district, query, first, last = _stats_query(user)
    except BadDates as exc:
        return _bad_dates(str(exc))
    sess = db_session()
    body = stats_mod.stats_csv(stats_mod.district_stats(sess, query))
    record(sess, "stats.export", actor=f"user:{user.id}", actor_user_id=user.id,
           object_type="district", object_id=district.id,
           detail={"start": first.isoformat() if first else None,
                   "end": last.isoformat() if last else None})
    sess.commit()
    name = f"tipline-stats-{district.code}-{utcnow():%Y%m%d}.csv"
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})
