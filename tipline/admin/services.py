"""District administration: schools, contacts, staff accounts and the routing policy.

Every function takes the acting district admin and works only inside that admin's district:
a school, contact or account of another district is reported as not found. Every change is
written to the audit log in the caller's transaction (the caller commits). Field rules are the
directory loader's (``tipline.directory.validation``), so the file and the pages agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import yaml
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from tipline.accounts import notices
from tipline.accounts import services as accounts
from tipline.accounts.keys import revoke_grants
from tipline.accounts.models import Role, StaffUser
from tipline.audit.models import AuditEvent
from tipline.audit.services import GENESIS, ChainReport, compute_hash, record
from tipline.crypto import Vault
from tipline.directory import validation
from tipline.directory.models import (
    Contact,
    District,
    PoliceAgency,
    School,
    agency_districts,
    contact_schools,
)
from tipline.directory.validation import DirectoryError
from tipline.routing.models import RoutingPolicy
from tipline.routing.senders import Alert
from tipline.tips.models import Tip

__all__ = [
    "AdminError",
    "AuditPage",
    "ContactInput",
    "CredentialReset",
    "DirectoryError",
    "NotFound",
    "PolicyCheck",
    "PolicyScopeError",
    "SchoolInput",
    "UserInput",
]


class AdminError(ValueError):
    """The change cannot be made as asked; the message is safe to show to the admin."""


class NotFound(LookupError):
    """No such row in the admin's district (rows of other districts are never told apart)."""


def _require_admin(admin: StaffUser) -> int:
    """The admin's district id; refuses anyone who is not an active district admin."""
    if admin.role != Role.DISTRICT_ADMIN or not admin.active or admin.district_id is None:
        raise AdminError("only a district administrator can change this")
    return admin.district_id


def _actor(admin: StaffUser) -> dict[str, Any]:
    return {"actor": f"user:{admin.id}", "actor_user_id": admin.id}


def _changed(obj: Any, values: dict[str, Any]) -> list[str]:
    """Set the attributes and return the names of those that changed (for the audit detail)."""
    changed = []
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed.append(name)
    return changed


def _blank(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _policy_problems(session: Session) -> set[str]:
    """What the checker says about the active policy against the directory as it is now."""
    from tipline.routing import policy as routing_policy

    try:
        policy = routing_policy.active_policy(session)
    except routing_policy.PolicyError as exc:  # a stored row that no longer parses
        return set(exc.errors)
    if policy is None:
        return set()
    try:
        routing_policy.validate_policy(session, policy)
    except routing_policy.PolicyError as exc:
        return set(exc.errors)
    return set()


def _keep_policy_valid(session: Session, before: set[str], where: str) -> None:
    """Refuse a directory edit that would break the active routing policy.

    The policy was checked against the directory when it was loaded; deactivating the last
    fallback contact, renaming a school or contact the policy names, or making a contact a
    police liaison in a district that keeps police out of support tips would silently change
    where tips go (or route them to nobody). Problems that were already there do not block.
    """
    session.flush()
    new = sorted(_policy_problems(session) - before)
    if new:
        raise DirectoryError(f"{where}: this change would break the routing policy: "
                             + "; ".join(new))


# -- schools -----------------------------------------------------------------------------

@dataclass(frozen=True)
class SchoolInput:
    code: str
    name: str
    aliases: str = ""
    active: bool = True


def list_schools(session: Session, district_id: int) -> Sequence[School]:
    return session.execute(
        select(School).where(School.district_id == district_id).order_by(School.name)
    ).scalars().all()


def get_school(session: Session, district_id: int, school_id: int) -> School:
    school = session.get(School, school_id)
    if school is None or school.district_id != district_id:
        raise NotFound(school_id)
    return school


def save_school(
    session: Session, admin: StaffUser, data: SchoolInput, school_id: int | None = None
) -> School:
    """Add a school to the admin's district, or edit one of its schools."""
    district_id = _require_admin(admin)
    code, name = data.code.strip(), data.name.strip()
    where = f"school {code or '?'}"
    validation.check_school({"code": code, "name": name}, where)
    if len(data.aliases) > 2000:
        raise DirectoryError(f"{where}: aliases are too long")
    clash = session.execute(select(School).where(School.code == code)).scalar_one_or_none()
    if school_id is None:
        if clash is not None:
            raise DirectoryError(f"{where}: a school with this code already exists")
        school = School(code=code, district_id=district_id)
        session.add(school)
        action = "admin.school.create"
    else:
        school = get_school(session, district_id, school_id)
        if clash is not None and clash.id != school.id:
            raise DirectoryError(f"{where}: a school with this code already exists")
        action = "admin.school.update"
    before = _policy_problems(session) if school_id is not None else set()
    changed = _changed(school, {"code": code, "name": name, "aliases": data.aliases.strip(),
                                "active": data.active})
    if school_id is not None:
        _keep_policy_valid(session, before, where)
    session.flush()
    record(session, action, **_actor(admin), object_type="school", object_id=school.id,
           detail={"fields": changed})
    return school


def set_school_active(session: Session, admin: StaffUser, school_id: int, active: bool) -> School:
    district_id = _require_admin(admin)
    school = get_school(session, district_id, school_id)
    if school.active != active:
        school.active = active
        record(session, "admin.school.activate" if active else "admin.school.deactivate",
               **_actor(admin), object_type="school", object_id=school.id)
    return school


# -- contacts ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ContactInput:
    key: str
    name: str
    role: str
    sms: str | None = None
    voice: str | None = None
    email: str | None = None
    priority: int = 100
    active: bool = True
    school_ids: tuple[int, ...] = ()
    agency_code: str | None = None


def _contact_scope(district_id: int) -> Any:
    """Contacts of the district, and contacts (e.g. a police liaison) linked to its schools."""
    linked = (
        select(contact_schools.c.contact_id)
        .join(School, School.id == contact_schools.c.school_id)
        .where(School.district_id == district_id)
    )
    return or_(Contact.district_id == district_id, Contact.id.in_(linked.scalar_subquery()))


def list_contacts(session: Session, district_id: int) -> Sequence[Contact]:
    return session.execute(
        select(Contact).where(_contact_scope(district_id)).order_by(Contact.name, Contact.id)
    ).scalars().all()


def get_contact(session: Session, district_id: int, contact_id: int) -> Contact:
    contact = session.execute(
        select(Contact).where(Contact.id == contact_id, _contact_scope(district_id))
    ).scalar_one_or_none()
    if contact is None:
        raise NotFound(contact_id)
    return contact


def is_own_contact(contact: Contact, district_id: int) -> bool:
    """A contact of this district linked to none of another district's schools.

    Only such a contact is the district admin's to change or to link an account to. A contact
    shared with other districts (a county police liaison serving several, a contact of no
    district) alerts for them too: changing its number, agency or account would reach their
    tips, so it is the installation administrator's (the directory file).
    """
    return contact.district_id == district_id and all(
        s.district_id == district_id for s in contact.schools)


def shared_contact_message(contact: Contact) -> str:
    return (f"contact {contact.key} is shared with another district (or belongs to none): "
            "only an installation administrator can change it or link an account to it, "
            "in the directory file (tipline directory load) or with tipline users add")


def get_own_contact(session: Session, district_id: int, contact_id: int) -> Contact:
    """``get_contact``, refused (DirectoryError) for a contact that is not wholly the
    district's own (``is_own_contact``)."""
    contact = get_contact(session, district_id, contact_id)
    if not is_own_contact(contact, district_id):
        raise DirectoryError(shared_contact_message(contact))
    return contact


def list_agencies(session: Session, district_id: int) -> Sequence[PoliceAgency]:
    """The police agencies tied to the district (``agency_districts``, set in the directory
    file): the only ones a district admin may attach a contact to."""
    return session.execute(
        select(PoliceAgency)
        .join(agency_districts, agency_districts.c.agency_id == PoliceAgency.id)
        .where(agency_districts.c.district_id == district_id)
        .order_by(PoliceAgency.name)
    ).scalars().all()


def save_contact(
    session: Session, admin: StaffUser, data: ContactInput, contact_id: int | None = None
) -> Contact:
    """Add or edit a contact with the directory file's rules (role, E.164 numbers, email)."""
    district_id = _require_admin(admin)
    key = data.key.strip()
    item = {"key": key, "name": data.name.strip(), "role": data.role,
            "sms": _blank(data.sms), "voice": _blank(data.voice), "email": _blank(data.email)}
    where = f"contact {key or '?'}"
    validation.check_contact_key(key, where)
    validation.check_name(item["name"], where)
    validation.check_contact(item, where)
    if not 0 <= data.priority <= 10_000:
        raise DirectoryError(f"{where}: priority must be between 0 and 10000")
    own_schools = {s.id: s for s in list_schools(session, district_id)}
    unknown = [sid for sid in data.school_ids if sid not in own_schools]
    if unknown:
        raise DirectoryError(f"{where}: unknown school")
    existing = get_own_contact(session, district_id, contact_id) if contact_id is not None \
        else None
    agency_id = _agency_for(session, district_id, data.agency_code, existing, where)
    clash = session.execute(select(Contact).where(Contact.key == key)).scalar_one_or_none()
    if existing is None:
        if clash is not None:
            raise DirectoryError(f"{where}: a contact with this key already exists")
        contact = Contact(key=key, district_id=district_id)
        session.add(contact)
        action = "admin.contact.create"
    else:
        contact = existing
        if clash is not None and clash.id != contact.id:
            raise DirectoryError(f"{where}: a contact with this key already exists")
        action = "admin.contact.update"
    before = _policy_problems(session) if contact_id is not None else set()
    changed = _changed(contact, {
        "key": key, "name": item["name"], "role": data.role, "sms_number": item["sms"],
        "voice_number": item["voice"], "email": item["email"], "priority": data.priority,
        "active": data.active, "agency_id": agency_id,
    })
    chosen = [own_schools[sid] for sid in sorted(set(data.school_ids))]
    if {s.id for s in contact.schools} != {s.id for s in chosen}:
        contact.schools = chosen
        changed.append("schools")
    if contact_id is not None:
        _keep_policy_valid(session, before, where)
    session.flush()
    record(session, action, **_actor(admin), object_type="contact", object_id=contact.id,
           detail={"fields": changed})
    return contact


def _agency_for(session: Session, district_id: int, code: str | None,
                existing: Contact | None, where: str) -> int | None:
    """The agency id for a contact: one tied to the district, or the one it already has."""
    if not code:
        return None
    agency = session.execute(
        select(PoliceAgency).where(PoliceAgency.code == code)).scalar_one_or_none()
    if agency is None:
        raise DirectoryError(f"{where}: unknown agency {code!r}")
    if existing is not None and existing.agency_id == agency.id:
        return agency.id
    if agency.id not in {a.id for a in list_agencies(session, district_id)}:
        raise DirectoryError(
            f"{where}: police agency {code!r} does not serve this district; an installation "
            "administrator ties agencies to districts in the directory file")
    return agency.id


def set_contact_active(
    session: Session, admin: StaffUser, contact_id: int, active: bool
) -> Contact:
    district_id = _require_admin(admin)
    contact = get_own_contact(session, district_id, contact_id)
    if contact.active != active:
        before = _policy_problems(session) if not active else set()
        contact.active = active
        if not active:
            _keep_policy_valid(session, before, f"contact {contact.key}")
        record(session, "admin.contact.activate" if active else "admin.contact.deactivate",
               **_actor(admin), object_type="contact", object_id=contact.id)
    return contact


# -- staff accounts ----------------------------------------------------------------------

@dataclass(frozen=True)
class UserInput:
    email: str
    role: str
    display_name: str = ""
    school_ids: tuple[int, ...] = ()
    contact_id: int | None = None


def list_users(session: Session, district_id: int) -> Sequence[StaffUser]:
    return session.execute(
        select(StaffUser).where(StaffUser.district_id == district_id)
        .order_by(StaffUser.active.desc(), StaffUser.email)
    ).scalars().all()


def get_user(session: Session, district_id: int, user_id: int) -> StaffUser:
    user = session.get(StaffUser, user_id)
    if user is None or user.district_id != district_id:
        raise NotFound(user_id)
    return user


def add_user(
    session: Session, vault: Vault, admin: StaffUser, data: UserInput
) -> tuple[StaffUser, str]:
    """Create an account in the admin's district; returns it and its one-time first password.

    At the first sign-in (within ``accounts.ONE_TIME_VALID``) the new user enrols TOTP and
    must choose their own password before anything else is shown.
    """
    district_id = _require_admin(admin)
    district = session.get(District, district_id)
    assert district is not None  # noqa: S101  (a foreign key guarantees it)
    if data.role not in DISTRICT_ROLES:
        raise AdminError("a district administrator can create district accounts only")
    schools = {s.id: s.code for s in list_schools(session, district_id)}
    if any(sid not in schools for sid in data.school_ids):
        raise AdminError("unknown school")
    contact_key = None
    if data.contact_id is not None:
        try:
            contact_key = get_own_contact(session, district_id, data.contact_id).key
        except DirectoryError as exc:
            raise AdminError(str(exc)) from None
    password = accounts.new_one_time_password()
    try:
        user = accounts.create_user(
            session, vault, email=data.email, password=password, role=data.role,
            district_code=district.code,
            school_codes=[schools[sid] for sid in sorted(set(data.school_ids))],
            contact_key=contact_key, display_name=data.display_name.strip(),
        )
    except accounts.AccountError as exc:
        raise AdminError(str(exc)) from None
    record(session, "admin.user.create", **_actor(admin), object_type="staff_user",
           object_id=user.id, detail={"role": user.role,
                                      "schools": sorted(s.code for s in user.schools)})
    return user, password


def _other_user(session: Session, admin: StaffUser, user_id: int) -> StaffUser:
    district_id = _require_admin(admin)
    user = get_user(session, district_id, user_id)
    if user.id == admin.id:
        raise AdminError("use your own account page to change your own account")
    return user


def deactivate_user(session: Session, admin: StaffUser, user_id: int) -> StaffUser:
    """Disable the account and end its sessions at their next request."""
    user = _other_user(session, admin, user_id)
    user.active = False
    accounts.sign_out_everywhere(user)
    revoke_grants(session, user)  # its sealed copies of the district key go too
    record(session, "admin.user.deactivate", **_actor(admin), object_type="staff_user",
           object_id=user.id)
    return user


def reactivate_user(session: Session, admin: StaffUser, user_id: int) -> StaffUser:
    user = _other_user(session, admin, user_id)
    user.active = True
    user.failed_logins = 0
    user.locked_until = None
    record(session, "admin.user.reactivate", **_actor(admin), object_type="staff_user",
           object_id=user.id)
    return user


@dataclass(frozen=True)
class CredentialReset:
    user: StaffUser
    password: str  # the new one-time password: shown once to the admin, never stored
    notice: Alert  # for the account holder; the caller sends it after committing


def reset_user_credentials(session: Session, admin: StaffUser, user_id: int, *,
                           now: datetime) -> CredentialReset:
    """A forgotten password or a lost authenticator: a new one-time password, the old one and
    every session ended, the authenticator enrolled again at the next sign-in together with a
    new password of the holder's choosing. Only inside the admin's district, never the
    admin's own account; audited (without the password)."""
    user = _other_user(session, admin, user_id)
    password = accounts.reset_credentials(user, now=now)
    record(session, "admin.user.reset_credentials", **_actor(admin), object_type="staff_user",
           object_id=user.id, detail={"valid_hours": accounts.ONE_TIME_HOURS})
    by = f"{admin.display_name} ({admin.email})" if admin.display_name else admin.email
    notice = notices.credentials_reset(user, by, notices.district_admins(session, user, admin.id),
                                       now)
    return CredentialReset(user, password, notice)


def sign_out_user(session: Session, admin: StaffUser, user_id: int) -> StaffUser:
    user = _other_user(session, admin, user_id)
    accounts.sign_out_everywhere(user)
    record(session, "admin.user.sign_out_everywhere", **_actor(admin),
           object_type="staff_user", object_id=user.id)
    return user


# -- routing policy ----------------------------------------------------------------------

@dataclass(frozen=True)
class PolicyCheck:
    ok: bool
    errors: list[str]
    policy: Any = None
    warnings: tuple[str, ...] = ()
    text: str = ""  # what would be stored: the whole policy file
    outside: tuple[str, ...] = ()  # what the admin tried to change outside their scope


class PolicyScopeError(Exception):
    """A district admin's policy changes something that is not theirs (audited)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


# Roles a district admin may give (an installation administrator is made at the command line).
DISTRICT_ROLES = (Role.DISTRICT_ADMIN.value, Role.SCHOOL_STAFF.value,
                  Role.POLICE_LIAISON.value, Role.AUDITOR.value)
EDITOR_HEADER = (
    "# Your district's section of the routing policy (the format is in docs/routing.md).\n"
    "# The other districts' sections and the installation-wide settings (no_school, the\n"
    "# policy's name) are changed by an installation administrator; saving puts this section\n"
    "# back into the policy and leaves the rest as it is.\n\n"
)


def active_policy_row(session: Session) -> RoutingPolicy | None:
    return session.execute(
        select(RoutingPolicy).where(RoutingPolicy.active.is_(True))
        .order_by(RoutingPolicy.version.desc()).limit(1)
    ).scalar_one_or_none()


def policy_history(session: Session, limit: int = 20) -> Sequence[RoutingPolicy]:
    return session.execute(
        select(RoutingPolicy).order_by(RoutingPolicy.version.desc()).limit(limit)
    ).scalars().all()


def list_districts(session: Session) -> Sequence[District]:
    return session.execute(select(District).order_by(District.name)).scalars().all()


def policy_scope(session: Session, admin: StaffUser) -> str | None:
    """The district whose section ``admin`` may change, or None for the whole policy.

    An installation administrator changes every section and the installation-wide settings;
    a district admin only their district's section (DESIGN.md invariant 6). Anyone else is
    refused.
    """
    if admin.active and admin.role == Role.INSTALLATION_ADMIN:
        return None
    district = session.get(District, _require_admin(admin))
    assert district is not None  # noqa: S101  (a foreign key guarantees it)
    return district.code


def policy_editor_text(session: Session, admin: StaffUser) -> str:
    """What the editor shows: the whole policy, or the admin's own district's section."""
    from tipline.routing import sections

    code = policy_scope(session, admin)
    active = active_policy_row(session)
    text = active.source_text if active else ""
    return text if code is None else sections.editor_text(text, code, EDITOR_HEADER)


def _outside_scope(active: RoutingPolicy | None, text: str, own: str,
                   source: str) -> tuple[list[str], list[str]]:
    """(messages, keys) for what ``text`` changes outside district ``own``'s section.

    A key left out is unchanged; a key given with the active policy's value is unchanged too
    (a pasted whole file), so only real changes are refused.
    """
    from tipline.routing.sections import top_level_lines

    if active is None:
        return ([f"{source}:1: no routing policy is loaded yet; an installation administrator "
                 "loads the first one (tipline policy load)"], ["no active policy"])
    before = yaml.safe_load(active.source_text) or {}
    after = yaml.safe_load(text) or {}
    lines = top_level_lines(text)
    errors, keys = [], []
    for key in sorted(k for k in after if k != "districts"):
        if key not in before or after[key] != before[key]:
            errors.append(f"{source}:{lines.get(str(key), 1)}: {key!r} is an installation-wide "
                          "setting: only an installation administrator changes it; your "
                          f"editor holds only district {own!r}'s section")
            keys.append(str(key))
    was, now = before.get("districts") or {}, after.get("districts") or {}
    for code in sorted(c for c in now if c != own):
        if code not in was or now[code] != was[code]:
            errors.append(f"{source}:{lines.get(f'districts.{code}', 1)}: district {code!r} is "
                          f"not yours to change (you administer {own!r}); an installation "
                          "administrator changes it")
            keys.append(f"districts.{code}")
    if own not in now:
        errors.append(f"{source}:1: the policy has no section for your district {own!r}")
        keys.append(f"districts.{own}")
    return errors, keys


def check_policy(session: Session, text: str, source: str = "policy.yaml",
                 district_code: str | None = None) -> PolicyCheck:
    """Parse and validate without storing anything; errors name their line.

    With ``district_code`` (a district admin's own district), ``text`` may change only that
    district's section; the section is put back into the active policy, and the whole file
    is checked again (``PolicyCheck.text`` is what would be stored).
    """
    from tipline.routing import policy as routing_policy
    from tipline.routing import sections

    try:
        parsed = routing_policy.parse_policy(text, source)
    except routing_policy.PolicyError as exc:
        return PolicyCheck(False, list(exc.errors) or [str(exc)])
    whole = text
    if district_code is not None:
        active = active_policy_row(session)
        foreign, keys = _outside_scope(active, text, district_code, source)
        if foreign:
            return PolicyCheck(False, foreign, outside=tuple(keys))
        assert active is not None  # noqa: S101  (_outside_scope refuses without one)
        try:
            routing_policy.validate_policy(session, parsed)  # errors with the editor's lines
            whole = sections.put_back(active.source_text, text, district_code)
        except routing_policy.PolicyError as exc:
            return PolicyCheck(False, list(exc.errors) or [str(exc)])
        except sections.SectionError as exc:
            return PolicyCheck(False, [f"{source}: {exc}; ask an installation administrator"])
        source = f"{source} (the whole policy)"
    try:
        parsed = routing_policy.parse_policy(whole, source)
        routing_policy.validate_policy(session, parsed)
    except routing_policy.PolicyError as exc:
        return PolicyCheck(False, list(exc.errors) or [str(exc)])
    warnings = tuple(routing_policy.policy_warnings(session, parsed))
    return PolicyCheck(True, [], parsed, warnings, whole)


def save_policy(
    session: Session, admin: StaffUser, text: str, source: str = "policy.yaml"
) -> RoutingPolicy:
    """Store a new active version, only if it is valid and within the admin's scope.

    PolicyScopeError (after recording the attempt in the audit log, in the caller's
    transaction) for a change outside the admin's district; PolicyError if invalid.
    """
    from tipline.routing import policy as routing_policy

    code = policy_scope(session, admin)
    check = check_policy(session, text, source, code)
    if check.outside:
        record(session, "admin.policy.refused", **_actor(admin), object_type="routing_policy",
               detail={"district": code, "outside": list(check.outside)})
        raise PolicyScopeError(check.errors)
    if not check.ok:
        raise routing_policy.PolicyError(check.errors)
    row = routing_policy.load_policy(session, check.text, source, f"user:{admin.id}")
    session.flush()
    record(session, "admin.policy.save", **_actor(admin), object_type="routing_policy",
           object_id=row.id, detail={"version": row.version, "sha256": row.sha256,
                                     "scope": code or "installation"})
    return row


def dry_run(
    session: Session,
    policy: Any,
    *,
    district_code: str,
    school_code: str | None,
    category: str,
    severity: int,
    at: datetime,
    language: str | None = None,
) -> dict[str, Any]:
    """Who would be alerted for such a tip under ``policy``: nothing is written."""
    from tipline.routing import policy as routing_policy

    return routing_policy.explain(session, policy, school_code=school_code,
                                  district_code=district_code, category=category,
                                  severity=severity, at=at, language=language)


# -- audit log ---------------------------------------------------------------------------

@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    actor_email: str | None
    action: str
    tip_reference: str | None
    object_type: str | None
    object_id: str | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    page: int
    pages: int
    total: int


def _audit_scope(district_id: int) -> list[ColumnElement[bool]]:
    """Events a district's admin or auditor may see: none about another district's tips and
    none by another district's staff. Events tied to no district (the routing policy, which is
    shared, the command line, the system) and tips that named no district stay visible."""
    tip_district = (select(Tip.district_id).where(Tip.id == AuditEvent.tip_id)
                    .scalar_subquery())
    actor_district = (select(StaffUser.district_id)
                      .where(StaffUser.id == AuditEvent.actor_user_id).scalar_subquery())
    return [
        or_(AuditEvent.tip_id.is_(None), tip_district.is_(None), tip_district == district_id),
        or_(AuditEvent.actor_user_id.is_(None), actor_district.is_(None),
            actor_district == district_id),
    ]


def audit_page(
    session: Session, district_id: int, page: int = 1, per_page: int = 50,
    action: str | None = None,
) -> AuditPage:
    """Newest first, within one district. Shows who, what, when and a tip's reference; never
    tip content."""
    where = _audit_scope(district_id)
    if action:
        where.append(AuditEvent.action.startswith(action, autoescape=True))
    total = session.execute(select(func.count(AuditEvent.id)).where(*where)).scalar_one()
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    # The page's ids first (an index scan even deep into the log), then their joins.
    ids = list(session.execute(
        select(AuditEvent.id).where(*where).order_by(AuditEvent.id.desc())
        .limit(per_page).offset((page - 1) * per_page)
    ).scalars())
    rows = session.execute(
        select(AuditEvent, Tip.reference, StaffUser.email)
        .outerjoin(Tip, Tip.id == AuditEvent.tip_id)
        .outerjoin(StaffUser, StaffUser.id == AuditEvent.actor_user_id)
        .where(AuditEvent.id.in_(ids))
        .order_by(AuditEvent.id.desc())
    ).all() if ids else []
    return AuditPage(
        rows=[AuditRow(ev.id, ev.at, ev.actor, email, ev.action, ref, ev.object_type,
                       ev.object_id, dict(ev.detail or {})) for ev, ref, email in rows],
        page=page, pages=pages, total=total,
    )


_CHAIN_COLUMNS = (
    AuditEvent.id, AuditEvent.at, AuditEvent.actor_user_id, AuditEvent.actor, AuditEvent.action,
    AuditEvent.tip_id, AuditEvent.object_type, AuditEvent.object_id, AuditEvent.detail,
    AuditEvent.prev_hash, AuditEvent.entry_hash,
)


# A page view checks the newest entries; "Verify the whole log" checks them all.
VIEW_WINDOW = 2_000


@dataclass(frozen=True)
class LogCheck:
    report: ChainReport
    total: int
    full: bool
    first_id: int | None = None  # the oldest entry this check covered


def verify_log(session: Session, window: int | None = None, batch: int = 20_000) -> LogCheck:
    """The audit package's hash check, read as plain rows, over the whole log or its newest
    ``window`` entries.

    ``tipline.audit.services.compute_hash`` reads only attributes, which a result row has too,
    so the hashes are the audit package's own; skipping ORM objects makes it several times
    faster. A windowed check trusts the ``prev_hash`` of its oldest entry and recomputes every
    hash from there: a page view stays fast on a log of millions, and an edit among the newest
    entries is still caught at once; the full check (a button, or ``tipline audit verify``)
    covers the rest.
    """
    total = session.execute(select(func.count(AuditEvent.id))).scalar_one()
    prev = GENESIS
    last_id = 0
    full = window is None or total <= window
    first_id = None
    if not full and window is not None:
        start = session.execute(
            select(AuditEvent.id, AuditEvent.prev_hash).order_by(AuditEvent.id.desc())
            .offset(window - 1).limit(1)
        ).one()
        last_id, prev, first_id = start.id - 1, start.prev_hash, start.id
    checked = 0
    while True:
        rows = session.execute(
            select(*_CHAIN_COLUMNS).where(AuditEvent.id > last_id)
            .order_by(AuditEvent.id).limit(batch)
        ).all()
        if not rows:
            return LogCheck(ChainReport(True, checked), total, full, first_id)
        if first_id is None:
            first_id = rows[0].id
        for row in rows:
            if row.prev_hash != prev:
                return LogCheck(ChainReport(False, checked, row.id,
                                            "previous hash does not match"), total, full, first_id)
            if compute_hash(prev, cast(AuditEvent, row)) != row.entry_hash:
                return LogCheck(ChainReport(False, checked, row.id,
                                            "entry hash does not match its content"),
                                total, full, first_id)
            prev = row.entry_hash
            checked += 1
            last_id = row.id
