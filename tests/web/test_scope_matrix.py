"""The scope matrix: every staff route x every role x in scope / out of scope, from one table.

DESIGN.md invariant 6: staff see only what their role and school allow, and every boundary
has a test that tries to cross it. ``TABLE`` below is that test: one row per staff route (and
method), the request it makes for each object, and the answer each role must get for an object
in its scope and for one outside it. The expected answers come from the design and the docs
(docs/dashboard.md "Roles and scope", docs/admin.md), not from what the code happens to do:

- anything not named in a row's expectations is "not found" (404) for a signed-in account, and
  "sign in" (a redirect to /staff/login, or 401 for JSON) for an anonymous visitor;
- a write that is answered but refused (a 400 page, or a redirect with an error) is "refused",
  and a write is "ok" only if the state it should change did change: every write row has a
  probe, so a refusal also proves that nothing changed;
- a list page is "listed" or "hidden" for the object's marker (a tip's reference, a school's
  name, an account's email).

``test_every_route_has_a_row`` fails for a route that is in ``app.url_map`` but neither in the
table nor in ``NOT_STAFF`` (public and webhook routes, each with the reason and the tests that
cover it). Each role signs in once; each row runs inside a savepoint that is rolled back, and
the session cookie is put back, so rows do not affect each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from tests.conftest import REPO
from tests.factories import make_tip
from tests.staffsupport import DEFAULT_PASSWORD, csrf_token, make_staff, sign_in
from tests.triage.conftest import PNG, World, dispatch_to
from tests.triage.conftest import world as world  # the fixture
from tipline.accounts.models import StaffUser
from tipline.audit.models import AuditEvent
from tipline.audit.services import record
from tipline.crypto import Vault
from tipline.crypto.models import KeyGrant
from tipline.directory.models import Contact, OnCallRota, PoliceAgency, School
from tipline.intake.services import AttachmentIn
from tipline.jobs import RecordingQueue
from tipline.routing.models import Dispatch, RoutingJob, RoutingPolicy
from tipline.routing.policy import load_policy
from tipline.surge.models import TipGroup, TipSignature
from tipline.tips.models import Attachment, Category, Message, Note, Severity, Tip
from tipline.triage.models import MandatedReport, ReplyTemplate

# -- roles, answers, scopes ---------------------------------------------------------------

ANON, INST, ADMIN, STAFF, LIAISON, AUDITOR = (
    "anonymous", "installation_admin", "district_admin", "school_staff", "police_liaison",
    "auditor")
ROLES = (ANON, INST, ADMIN, STAFF, LIAISON, AUDITOR)
SIGNED_IN = ROLES[1:]

OK, LISTED, HIDDEN = "ok", "listed", "hidden"
NOT_FOUND, SIGN_IN, REFUSED = "not found", "sign in", "refused"

# Variants of an object: in the role's scope, outside it, and a few boundaries of their own.
IN, OUT, SHARED, SELF = "in", "out", "shared", "self"
OWN_SECTION, OTHER_SECTION, NO_SCHOOL, GUARD = "own section", "other district", "no_school", \
    "police guard"
ONLY = "-"  # a page about no object (the account page, the overview)

# Which objects are in and out of each role's scope. The district admin is SLPS's; the school
# staff member works at Roosevelt (SLPS); the liaison is the county police liaison contact
# (stlco-liaison); the auditor is SLPS's; the installation admin has no district.
TIP_SCOPE: dict[str, dict[str, list[str]]] = {
    # a tip that names no school is shown to every district admin (docs/threat-model.md)
    ADMIN: {IN: ["roosevelt", "noschool"], OUT: ["county_sent"]},
    STAFF: {IN: ["roosevelt"], OUT: ["soldan", "county_sent"]},
    # sent to their own contact / sent only to a colleague contact of the same agency / their
    # contact named only in a later step that was never sent / another district's tip
    LIAISON: {IN: ["county_sent"], OUT: ["county_colleague", "county_scheduled", "roosevelt"]},
    AUDITOR: {OUT: ["roosevelt", "county_sent"]},
    INST: {OUT: ["roosevelt", "county_sent"]},
    ANON: {OUT: ["roosevelt"]},
}
# Statistics and the audit log: the district's own tips.
DISTRICT_SCOPE: dict[str, dict[str, list[str]]] = {
    ADMIN: {IN: ["roosevelt"], OUT: ["county_sent"]},
    AUDITOR: {IN: ["roosevelt"], OUT: ["county_sent"]},
}
# Audit events by a staff member of the district (school staff) and of another (the county's
# admin), about no tip.
ACTOR_SCOPE = {ADMIN: {IN: ["staff"], OUT: ["county_admin"]},
               AUDITOR: {IN: ["staff"], OUT: ["county_admin"]}}
SCHOOL_SCOPE = {ADMIN: {IN: ["slps-roosevelt"], OUT: ["cty-northview"]}}
# matrix-own: an SLPS contact; matrix-shared: an SLPS contact also linked to a county school
# (read-only for the SLPS admin, docs/admin.md); cty-northview-counselor: the county's.
CONTACT_SCOPE = {ADMIN: {IN: ["matrix-own"], OUT: ["cty-northview-counselor"],
                         SHARED: ["matrix-shared"]}}
# A new contact's police agency: one that serves SLPS, one that does not.
AGENCY_SCOPE = {ADMIN: {IN: ["slpd"], OUT: ["stlco-pd"]}}
USER_SCOPE = {ADMIN: {IN: ["staff"], OUT: ["county_admin"], SELF: ["self"]}}
# A new account: at an SLPS school / at a county school, with the installation-wide role, or
# linked to the county police contact (shared, so the installation admin's to link).
NEW_USER_SCOPE = {ADMIN: {IN: ["roosevelt-staff"],
                          OUT: ["northview-staff", "installation-admin", "shared-liaison"]}}
# An account waiting for access to tips (issue 13): in the granter's district, or another's.
WAITING_SCOPE = {ADMIN: {IN: ["waiting-slps"], OUT: ["waiting-county"]},
                 STAFF: {IN: ["waiting-slps"], OUT: ["waiting-county"]},
                 LIAISON: {OUT: ["waiting-slps"]}}
# On-call rotas (issue 17): SLPS's (from the demo directory) and the county's (made below);
# a new rota naming a contact of the admin's district, or another district's.
ROTA_SCOPE = {ADMIN: {IN: ["slps-nights"], OUT: ["cty-nights"]}}
ROTA_MEMBER_SCOPE = {ADMIN: {IN: ["slps-night-brown"], OUT: ["cty-oncall"]}}
POLICY_SCOPE = {r: {OWN_SECTION: ["slps"], OTHER_SECTION: ["stlco-demo"],
                    NO_SCHOOL: ["no_school"], GUARD: ["guard"]} for r in ROLES}

SCOPES: dict[str, Mapping[str, dict[str, list[str]]]] = {
    "tip": TIP_SCOPE, "district": DISTRICT_SCOPE, "actor": ACTOR_SCOPE, "school": SCHOOL_SCOPE,
    "contact": CONTACT_SCOPE, "agency": AGENCY_SCOPE, "user": USER_SCOPE,
    "new_user": NEW_USER_SCOPE, "policy": POLICY_SCOPE, "waiting": WAITING_SCOPE,
    "rota": ROTA_SCOPE, "rota_member": ROTA_MEMBER_SCOPE,
}
# For kinds that only a district admin administers, everyone else tries the admin's own
# in-scope object (and must not reach it either).
FALLBACK = {"district": "roosevelt", "actor": "staff", "school": "slps-roosevelt",
            "contact": "matrix-own", "agency": "slpd", "user": "staff",
            "new_user": "roosevelt-staff", "waiting": "waiting-slps", "rota": "slps-nights",
            "rota_member": "slps-night-brown"}


def subjects(on: str, role: str) -> dict[str, list[str]]:
    if on == "none":
        return {ONLY: [ONLY]}
    scope = SCOPES[on]
    if role in scope:
        return scope[role]
    return {OUT: [FALLBACK[on]]}


# -- the objects the rows act on ----------------------------------------------------------

DEMO_POLICY = (REPO / "config" / "policy.demo.yaml").read_text(encoding="utf-8")
POLICY_TEXTS = {
    # the SLPS section only
    "slps": DEMO_POLICY.replace("ack_within: 60m", "ack_within: 45m"),
    # the county's fallback
    "stlco-demo": DEMO_POLICY.replace("    fallback: [cty-oncall]\n",
                                      "    fallback: [cty-oncall, cty-northview-counselor]\n"),
    # installation-wide: tips that name no school
    "no_school": DEMO_POLICY.replace("ack_within: 10m\n  life_safety_repeat_every: 2m",
                                     "ack_within: 5m\n  life_safety_repeat_every: 1m", 1),
    # SLPS's own section, but police for bullying against the directory's police guard
    "guard": DEMO_POLICY.replace("    police_only_for: [weapon, threat, other]\n", "", 1).replace(
        "          - alert: [{role: counselor}, {role: social_worker}]\n            channels: "
        "[sms, email]\n            ack_within: 60m\n",
        "          - alert: [{role: counselor}, {role: social_worker}, {contact: slpd-liaison}]"
        "\n            channels: [sms, email]\n            ack_within: 60m\n", 1),
}
# Dispatches an acknowledgement by this role must leave running (docs/alerts.md,
# "Acknowledgement"): another district's part of a tip that names no school, and the school's
# own alerts after a police click.
BYSTANDERS = {ADMIN: {"cty-oncall"}, STAFF: {"cty-oncall"},
              LIAISON: {"cty-northview-counselor"}}


@dataclass
class Ctx:
    """One role's view of the matrix world, and the connection rows are rolled back on."""

    role: str
    conn: Connection
    client: Any
    actor_id: int  # the signed-in account (for an anonymous visitor: the SLPS admin's)
    tips: dict[str, Tip]
    attachments: dict[str, str]
    schools: dict[str, School]
    contacts: dict[str, Contact]
    users: dict[str, StaffUser]
    csrf: str = ""

    def scalar(self, stmt: Any) -> Any:
        return self.conn.execute(stmt).scalar()

    def tip_id(self, key: str) -> int:
        return self.tips[key].id

    def user_id(self, key: str) -> int:
        return self.actor_id if key == "self" else self.users[key].id


@dataclass
class MatrixWorld:
    base: World
    tips: dict[str, Tip]
    attachments: dict[str, str]
    schools: dict[str, School]
    contacts: dict[str, Contact]
    accounts: dict[str, tuple[StaffUser, str, str]]


@pytest.fixture
def matrix(world: World, db_session: Session, vault: Vault, queue: RecordingQueue) -> MatrixWorld:
    """Tips (life safety, abuse, one picture each), dispatches, contacts and accounts."""
    load_policy(db_session, DEMO_POLICY, "policy.demo.yaml", "cli")

    def tip(school: str | None) -> Tip:
        receipt = make_tip(db_session, vault, queue, school_code=school, body="matrix tip",
                           category=Category.ABUSE, severity=Severity.LIFE_SAFETY,
                           attachments=[AttachmentIn("image", "image/png", PNG)])
        row = db_session.get(Tip, receipt.tip_id)
        assert row is not None
        row.__dict__["_job_id"] = receipt.job_id
        return row

    tips = {"roosevelt": tip("slps-roosevelt"), "soldan": tip("slps-soldan"),
            "noschool": tip(None), "county_sent": tip("cty-northview"),
            "county_colleague": tip("cty-riverbend"), "county_scheduled": tip("cty-oakridge")}
    agency = db_session.execute(select(PoliceAgency).where(PoliceAgency.code == "stlco-pd")
                                ).scalar_one()
    db_session.add(Contact(key="stlco-liaison-2", name="County liaison colleague",
                           role="police_liaison", agency=agency, sms_number="+13145550161"))
    school = {s.code: s for s in db_session.execute(select(School)).scalars()}
    db_session.add(Contact(key="matrix-own", name="Matrix SLPS desk", role="safety_team",
                           district_id=school["slps-roosevelt"].district_id,
                           sms_number="+13145550170", schools=[school["slps-roosevelt"]]))
    db_session.add(OnCallRota(key="cty-nights", name="County nights rota (matrix)",
                              district_id=school["cty-northview"].district_id, turn="weekly",
                              handover="17:00", starts_on=date(2026, 8, 17),
                              members=["cty-oncall"], swaps=[], holidays=[]))
    db_session.add(Contact(key="matrix-shared", name="Matrix shared desk", role="safety_team",
                           district_id=school["slps-roosevelt"].district_id,
                           sms_number="+13145550171",
                           schools=[school["slps-roosevelt"], school["cty-northview"]]))
    db_session.flush()

    def send(key: str, contact: str, status: str = "active") -> None:
        t = tips[key]
        dispatch_to(db_session, t, t.__dict__["_job_id"], contact).status = status

    send("county_sent", "stlco-liaison")
    send("county_sent", "cty-northview-counselor")
    send("county_colleague", "stlco-liaison-2")
    send("county_scheduled", "stlco-liaison", "scheduled")
    send("noschool", "slps-oncall")
    send("noschool", "cty-oncall")
    # These dispatches are made by hand, not by the policy at intake, so the sealing that
    # intake does for a tip routed to police is done by hand too: the agency gets a slot.
    from tests.keysupport import staff_chain
    from tipline.crypto import using
    from tipline.routing.audience import seal_to_agencies

    with using(staff_chain(db_session, world.county_admin.user)):
        for key in ("county_sent", "county_colleague", "county_scheduled"):
            seal_to_agencies(db_session, vault, tips[key], [agency.id])
    # An audit event about a tip of each district (the audit log's in/out markers).
    for key, who in (("roosevelt", world.admin), ("county_sent", world.county_admin)):
        record(db_session, "tip.view", actor=f"user:{who.user.id}", actor_user_id=who.user.id,
               tip_id=tips[key].id, object_type="tip", object_id=tips[key].uid)
    # ... and one by a staff member of each district, about no tip
    for who in (world.staff, world.county_admin):
        record(db_session, "staff.password.change", actor=f"user:{who.user.id}",
               actor_user_id=who.user.id, object_type="staff_user", object_id=who.user.id)
    accounts = {
        ADMIN: (world.admin.user, world.admin.password, world.admin.secret),
        STAFF: (world.staff.user, world.staff.password, world.staff.secret),
        LIAISON: (world.liaison.user, world.liaison.password, world.liaison.secret),
        AUDITOR: make_staff(db_session, vault, "auditor", district="slps"),
        INST: make_staff(db_session, vault, "installation_admin"),
        "waiting-slps": make_staff(db_session, vault, "school_staff", schools=["slps-roosevelt"],
                                   access=False),
        "waiting-county": make_staff(db_session, vault, "school_staff",
                                     schools=["cty-northview"], access=False),
    }
    atts = {k: db_session.execute(select(Attachment.uid).where(Attachment.tip_id == t.id)
                                  ).scalar_one() for k, t in tips.items()}
    contacts = {c.key: c for c in db_session.execute(select(Contact)).scalars()}
    db_session.commit()
    queue.sent.clear()
    return MatrixWorld(world, tips, atts, school, contacts, accounts)


# -- probes: the state a write changes (or, refused, must leave as it was) -----------------

def tip_field(*cols: Any) -> Callable[[Ctx, str], Any]:
    return lambda c, k: tuple(c.conn.execute(select(*cols).where(Tip.id == c.tip_id(k))).one())


def count_for_tip(model: Any) -> Callable[[Ctx, str], Any]:
    return lambda c, k: c.scalar(select(func.count()).select_from(model)
                                 .where(model.tip_id == c.tip_id(k)))


def audit_count(action: str, on_tip: bool = False) -> Callable[[Ctx, str], Any]:
    def probe(c: Ctx, k: str) -> Any:
        q = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
        return c.scalar(q.where(AuditEvent.tip_id == c.tip_id(k)) if on_tip else q)
    return probe


def dispatches(c: Ctx, k: str, keys: set[str] | None = None) -> Any:
    q = (select(Contact.key, Dispatch.status).join(Contact, Contact.id == Dispatch.contact_id)
         .where(Dispatch.tip_id == c.tip_id(k)).order_by(Dispatch.id))
    if keys is not None:
        q = q.where(Contact.key.in_(keys))
    return [tuple(r) for r in c.conn.execute(q)]


def make_group(c: Ctx, k: str) -> None:
    """A surge group (tipline.surge) around tip ``k``: the group routes reach a tip through it,
    so a group is in scope exactly when its tip is."""
    tip = c.tips[k]
    gid = c.conn.execute(insert(TipGroup).values(
        uid=group_uid(k), school_id=tip.school_id, district_id=tip.district_id,
        lead_tip_id=tip.id, tip_count=1, alerted_severity=tip.severity, alerted_signals=[],
        unnoticed=0, created_at=tip.created_at, newest_at=tip.created_at)
    ).inserted_primary_key[0]
    c.conn.execute(update(TipSignature).where(TipSignature.tip_id == tip.id)
                   .values(group_id=gid))


def group_uid(k: str) -> str:
    return f"matrix-group-{k}"[:32]


def group_path(suffix: str = "") -> Callable[[Ctx, str], str]:
    return lambda c, k: f"/staff/groups/{group_uid(k)}{suffix}"


def tip_group(c: Ctx, k: str) -> Any:
    return c.scalar(select(TipSignature.group_id).where(TipSignature.tip_id == c.tip_id(k)))


def ack_state(c: Ctx, k: str) -> Any:
    return tip_field(Tip.status, Tip.acknowledged_at)(c, k), dispatches(c, k)


def bystanders(c: Ctx, k: str) -> Any:
    return dispatches(c, k, BYSTANDERS.get(c.role, set()))


def school_state(c: Ctx, k: str) -> Any:
    return tuple(c.conn.execute(select(School.name, School.active)
                                .where(School.id == c.schools[k].id)).one())


def contact_state(c: Ctx, k: str) -> Any:
    return tuple(c.conn.execute(select(Contact.name, Contact.active, Contact.agency_id)
                                .where(Contact.id == c.contacts[k].id)).one())


def user_state(c: Ctx, k: str) -> Any:
    return tuple(c.conn.execute(
        select(StaffUser.active, StaffUser.session_version, StaffUser.password_hash)
        .where(StaffUser.id == c.user_id(k))).one())


def table_count(model: Any) -> Callable[[Ctx, str], Any]:
    return lambda c, k: c.scalar(select(func.count()).select_from(model))


def policy_version(c: Ctx, k: str) -> Any:
    return c.scalar(select(func.max(RoutingPolicy.version)).where(RoutingPolicy.active))


def rota_id(c: Ctx, k: str) -> int:
    return int(c.scalar(select(OnCallRota.id).where(OnCallRota.key == k)))


def rota_state(c: Ctx, k: str) -> Any:
    return tuple(c.conn.execute(select(OnCallRota.name, OnCallRota.members)
                                .where(OnCallRota.key == k)).one())


def _rota_form(c: Ctx, k: str) -> dict[str, Any]:
    members = c.conn.execute(select(OnCallRota.members).where(OnCallRota.key == k)).scalar()
    return {"key": k, "name": "Renamed rota", "turn": "weekly", "handover": "17:00",
            "starts_on": "2026-08-17", "members": "\n".join(members), "swaps": "",
            "holidays": ""}


def _new_rota(c: Ctx, k: str) -> dict[str, Any]:
    return {"key": "matrix-rota", "name": "Matrix rota", "turn": "nightly", "handover": "18:00",
            "starts_on": "2026-12-01", "members": k, "swaps": "", "holidays": ""}


def actor_state(c: Ctx, k: str) -> Any:
    return user_state(c, "self")


def deactivate_target(c: Ctx, k: str) -> None:
    """Reactivating needs an inactive account (never the signed-in one: that ends the row)."""
    if c.user_id(k) != c.actor_id:
        c.conn.execute(update(StaffUser).where(StaffUser.id == c.user_id(k)).values(active=False))


# -- the table -----------------------------------------------------------------------------

Expect = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class Row:
    """One route and method, the request it makes for an object, and the answers by role.

    ``expect[variant][role]``; a role not named is NOT_FOUND (signed in) or SIGN_IN
    (anonymous): deny by default, as the design does.
    """

    label: str
    endpoint: str
    rule: str
    method: str
    on: str
    path: Callable[[Ctx, str], str]
    expect: Expect
    data: Callable[[Ctx, str], dict[str, Any]] | None = None
    probe: Callable[[Ctx, str], Any] | None = None
    keep: Callable[[Ctx, str], Any] | None = None
    marker: Callable[[Ctx, str], str] | None = None
    setup: Callable[[Ctx, str], None] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def expected(self, variant: str, role: str) -> str:
        return self.expect.get(variant, {}).get(role, SIGN_IN if role == ANON else NOT_FOUND)


def every(answer: str, roles: tuple[str, ...] = SIGNED_IN) -> dict[str, str]:
    return dict.fromkeys(roles, answer)


READERS = (ADMIN, STAFF, LIAISON)  # read, acknowledge, note, mandated report
CASE = (ADMIN, STAFF)  # reply, status, assign, re-triage
STATS = (ADMIN, AUDITOR)  # statistics and audit log


def tip_path(suffix: str = "") -> Callable[[Ctx, str], str]:
    return lambda c, k: f"/staff/tips/{c.tips[k].uid}{suffix}"


def ref(c: Ctx, k: str) -> str:
    return c.tips[k].reference


def school_name(c: Ctx, k: str) -> str:
    school = c.tips[k].school
    assert school is not None
    return school.name


def user_action_path(action: str) -> Callable[[Ctx, str], str]:
    return lambda c, k: f"/staff/admin/users/{c.user_id(k)}/{action}"


def _contact_form(c: Ctx, k: str) -> dict[str, Any]:
    contact = c.contacts[k]
    return {"key": contact.key, "name": "Renamed desk", "role": contact.role,
            "sms": contact.sms_number or "", "voice": "", "email": "", "priority": "100",
            "agency": "", "schools": [c.schools["slps-roosevelt"].id], "active": "y"}


def _new_contact(c: Ctx, k: str) -> dict[str, Any]:
    return {"key": "matrix-new", "name": "Matrix new desk", "role": "safety_team",
            "sms": "+13145550172", "voice": "", "email": "", "priority": "100", "agency": k,
            "schools": [c.schools["slps-roosevelt"].id], "active": "y"}


NEW_USERS: dict[str, Callable[[Ctx], dict[str, Any]]] = {
    "roosevelt-staff": lambda c: {"role": "school_staff",
                                  "schools": [c.schools["slps-roosevelt"].id]},
    "northview-staff": lambda c: {"role": "school_staff",
                                  "schools": [c.schools["cty-northview"].id]},
    "installation-admin": lambda c: {"role": "installation_admin"},
    "shared-liaison": lambda c: {"role": "police_liaison",
                                 "contact": str(c.contacts["stlco-liaison"].id)},
}


def _new_user(c: Ctx, k: str) -> dict[str, Any]:
    return {"email": "matrix-new@staff.example.org", "display_name": "New", "contact": "",
            **NEW_USERS[k](c)}


TIP_READ: Expect = {IN: every(OK, READERS)}
LIST_TIPS: Expect = {IN: every(LISTED, READERS), OUT: every(HIDDEN, READERS)}
ADMIN_ONLY: Expect = {IN: {ADMIN: OK}}
ADMIN_PAGE: Expect = {ONLY: {ADMIN: OK}}

TABLE: tuple[Row, ...] = (
    # -- a tip and what is done to it ---------------------------------------------------
    Row("tip page (audited read)", "triage.tip", "/staff/tips/<uid>", "GET", "tip",
        tip_path(), TIP_READ, probe=audit_count("tip.view", on_tip=True)),
    Row("attachment (audited read)", "triage.attachment",
        "/staff/tips/<uid>/attachments/<att>", "GET", "tip",
        lambda c, k: f"/staff/tips/{c.tips[k].uid}/attachments/{c.attachments[k]}", TIP_READ,
        probe=audit_count("tip.view_attachment", on_tip=True)),
    # an attachment of an out-of-scope tip, asked for under the address of a tip in scope
    Row("attachment of another tip", "triage.attachment",
        "/staff/tips/<uid>/attachments/<att>", "GET", "tip",
        lambda c, k: f"/staff/tips/{c.tips[k].uid}/attachments/"
                     f"{c.attachments[TIP_SCOPE[c.role][OUT][0]]}", {},
        probe=audit_count("tip.view_attachment", on_tip=True)),
    Row("acknowledge", "triage.acknowledge", "/staff/tips/<uid>/acknowledge", "POST", "tip",
        tip_path("/acknowledge"), {IN: every(OK, READERS)}, data=lambda c, k: {},
        probe=ack_state, keep=bystanders),
    Row("internal note", "triage.note", "/staff/tips/<uid>/note", "POST", "tip",
        tip_path("/note"), {IN: every(OK, READERS)}, data=lambda c, k: {"body": "a note"},
        probe=count_for_tip(Note)),
    Row("mandated report", "triage.mandated_report", "/staff/tips/<uid>/mandated-report",
        "POST", "tip", tip_path("/mandated-report"), {IN: every(OK, READERS)},
        data=lambda c, k: {"confirm": "yes"}, probe=count_for_tip(MandatedReport)),
    Row("reply to the reporter", "triage.reply", "/staff/tips/<uid>/reply", "POST", "tip",
        tip_path("/reply"), {IN: every(OK, CASE)}, data=lambda c, k: {"body": "thank you"},
        probe=count_for_tip(Message)),
    Row("status", "triage.status", "/staff/tips/<uid>/status", "POST", "tip",
        tip_path("/status"), {IN: every(OK, CASE)},
        data=lambda c, k: {"status": "in_progress"}, probe=tip_field(Tip.status)),
    Row("assign (to oneself)", "triage.assign", "/staff/tips/<uid>/assign", "POST", "tip",
        tip_path("/assign"), {IN: every(OK, CASE)},
        data=lambda c, k: {"assignee": str(c.actor_id)}, probe=tip_field(Tip.assigned_to_id)),
    Row("assign to someone who cannot see the tip", "triage.assign",
        "/staff/tips/<uid>/assign", "POST", "tip", tip_path("/assign"),
        {IN: every(REFUSED, CASE)}, data=lambda c, k: {"assignee": str(c.users["liaison"].id)},
        probe=tip_field(Tip.assigned_to_id)),
    Row("status line the reporter reads", "triage.reporter_status",
        "/staff/tips/<uid>/reporter-status", "POST", "tip", tip_path("/reporter-status"),
        {IN: every(OK, CASE)}, data=lambda c, k: {"status_line": "We are looking into it."},
        probe=tip_field(Tip.reporter_status_ct)),
    Row("re-triage", "triage.retriage", "/staff/tips/<uid>/retriage", "POST", "tip",
        tip_path("/retriage"), {IN: every(OK, CASE)},
        data=lambda c, k: {"category": "threat", "severity": "3", "reason": "re-read"},
        probe=lambda c, k: (tip_field(Tip.category, Tip.severity)(c, k),
                            count_for_tip(RoutingJob)(c, k))),
    # -- a surge group (tipline.surge): in scope exactly when its tips are ------------------
    Row("group page (audited reads)", "surge.group", "/staff/groups/<uid>", "GET", "tip",
        group_path(), TIP_READ, setup=make_group, probe=audit_count("tip.view", on_tip=True)),
    Row("group: acknowledge", "surge.group_acknowledge", "/staff/groups/<uid>/acknowledge",
        "POST", "tip", group_path("/acknowledge"), {IN: every(OK, READERS)}, setup=make_group,
        data=lambda c, k: {}, probe=ack_state, keep=bystanders),
    Row("group: status", "surge.group_status", "/staff/groups/<uid>/status", "POST", "tip",
        group_path("/status"), {IN: every(OK, CASE)}, setup=make_group,
        data=lambda c, k: {"status": "in_progress"}, probe=tip_field(Tip.status)),
    Row("group: assign", "surge.group_assign", "/staff/groups/<uid>/assign", "POST", "tip",
        group_path("/assign"), {IN: every(OK, CASE)}, setup=make_group,
        data=lambda c, k: {"assignee": str(c.actor_id)}, probe=tip_field(Tip.assigned_to_id)),
    Row("group: reply to every reporter", "surge.group_reply", "/staff/groups/<uid>/reply",
        "POST", "tip", group_path("/reply"), {IN: every(OK, CASE)}, setup=make_group,
        data=lambda c, k: {"body": "thank you"}, probe=count_for_tip(Message)),
    Row("group: split a tip out", "surge.group_split", "/staff/groups/<uid>/split/<tip_uid>",
        "POST", "tip", lambda c, k: f"/staff/groups/{group_uid(k)}/split/{c.tips[k].uid}",
        {IN: every(OK, CASE)}, setup=make_group, data=lambda c, k: {}, probe=tip_group),
    # a district's reply wording: its own admin's (the district comes from the account)
    Row("reply wording (form)", "triage.reply_templates", "/staff/replies", "GET", "none",
        lambda c, k: "/staff/replies", ADMIN_PAGE),
    Row("reply wording: save", "triage.reply_templates", "/staff/replies", "POST", "none",
        lambda c, k: "/staff/replies", ADMIN_PAGE,
        data=lambda c, k: {"en": "Thank you for telling us.", "es": "", "bs": ""},
        probe=table_count(ReplyTemplate)),
    # -- lists of tips: the queue, its polling state, the life-safety banner --------------
    Row("queue", "triage.queue", "/staff/", "GET", "tip", lambda c, k: "/staff/",
        LIST_TIPS, marker=ref),
    Row("queue state (polling)", "triage.state", "/staff/queue/state", "GET", "tip",
        lambda c, k: "/staff/queue/state", LIST_TIPS, marker=ref),
    # every signed-in account gets the banner; only tips in scope are in it
    Row("life-safety banner", "triage.banner", "/staff/banner", "GET", "tip",
        lambda c, k: "/staff/banner",
        {IN: every(LISTED, READERS), OUT: every(HIDDEN)}, marker=ref),
    # -- statistics and the audit log: the district's own tips only -----------------------
    Row("statistics", "admin.stats", "/staff/admin/stats", "GET", "district",
        lambda c, k: "/staff/admin/stats",
        {IN: every(LISTED, STATS), OUT: every(HIDDEN, STATS)}, marker=school_name),
    Row("statistics CSV (audited export)", "admin.stats_csv", "/staff/admin/stats.csv", "POST",
        "district", lambda c, k: "/staff/admin/stats.csv",
        {IN: every(LISTED, STATS), OUT: every(HIDDEN, STATS)}, data=lambda c, k: {},
        probe=audit_count("stats.export"), marker=school_name),
    Row("audit log", "admin.audit", "/staff/admin/audit", "GET", "district",
        lambda c, k: "/staff/admin/audit",
        {IN: every(LISTED, STATS), OUT: every(HIDDEN, STATS)}, marker=ref),
    Row("audit log: events by the district's staff", "admin.audit", "/staff/admin/audit",
        "GET", "actor", lambda c, k: "/staff/admin/audit",
        {IN: every(LISTED, STATS), OUT: every(HIDDEN, STATS)},
        marker=lambda c, k: c.users[k].email),
    Row("audit log: verify the whole chain", "admin.audit_verify", "/staff/admin/audit/verify",
        "POST", "none", lambda c, k: "/staff/admin/audit/verify", {ONLY: every(OK, STATS)},
        data=lambda c, k: {}, probe=audit_count("audit.verify")),
    # -- administration -------------------------------------------------------------------
    Row("administration overview", "admin.index", "/staff/admin/", "GET", "none",
        lambda c, k: "/staff/admin/", {ONLY: {ADMIN: OK, INST: OK}}),
    Row("schools", "admin.schools", "/staff/admin/schools", "GET", "school",
        lambda c, k: "/staff/admin/schools", {IN: {ADMIN: LISTED}, OUT: {ADMIN: HIDDEN}},
        marker=lambda c, k: c.schools[k].name),
    Row("school: new (form)", "admin.school_edit", "/staff/admin/schools/new", "GET", "none",
        lambda c, k: "/staff/admin/schools/new", ADMIN_PAGE),
    Row("school: add", "admin.school_edit", "/staff/admin/schools/new", "POST", "none",
        lambda c, k: "/staff/admin/schools/new", ADMIN_PAGE,
        data=lambda c, k: {"code": "matrix-new", "name": "Matrix New School", "active": "y"},
        probe=table_count(School)),
    Row("school: open", "admin.school_edit", "/staff/admin/schools/<int:school_id>", "GET",
        "school", lambda c, k: f"/staff/admin/schools/{c.schools[k].id}", ADMIN_ONLY),
    Row("school: edit", "admin.school_edit", "/staff/admin/schools/<int:school_id>", "POST",
        "school", lambda c, k: f"/staff/admin/schools/{c.schools[k].id}", ADMIN_ONLY,
        data=lambda c, k: {"code": k, "name": "Renamed School", "aliases": "", "active": "y"},
        probe=school_state),
    Row("school: deactivate", "admin.school_active",
        "/staff/admin/schools/<int:school_id>/active", "POST", "school",
        lambda c, k: f"/staff/admin/schools/{c.schools[k].id}/active", ADMIN_ONLY,
        data=lambda c, k: {"active": "0"}, probe=school_state),
    Row("contacts", "admin.contacts", "/staff/admin/contacts", "GET", "contact",
        lambda c, k: "/staff/admin/contacts",
        {IN: {ADMIN: LISTED}, SHARED: {ADMIN: LISTED}, OUT: {ADMIN: HIDDEN}},
        marker=lambda c, k: c.contacts[k].name),
    Row("contact: new (form)", "admin.contact_edit", "/staff/admin/contacts/new", "GET",
        "none", lambda c, k: "/staff/admin/contacts/new", ADMIN_PAGE),
    Row("contact: add, with a police agency", "admin.contact_edit", "/staff/admin/contacts/new",
        "POST", "agency", lambda c, k: "/staff/admin/contacts/new",
        {IN: {ADMIN: OK}, OUT: {ADMIN: REFUSED}}, data=_new_contact,
        probe=table_count(Contact)),
    Row("contact: open", "admin.contact_edit", "/staff/admin/contacts/<int:contact_id>", "GET",
        "contact", lambda c, k: f"/staff/admin/contacts/{c.contacts[k].id}",
        {IN: {ADMIN: OK}, SHARED: {ADMIN: OK}}),  # a shared contact is shown read-only
    Row("contact: edit", "admin.contact_edit", "/staff/admin/contacts/<int:contact_id>",
        "POST", "contact", lambda c, k: f"/staff/admin/contacts/{c.contacts[k].id}",
        {IN: {ADMIN: OK}, SHARED: {ADMIN: REFUSED}}, data=_contact_form, probe=contact_state),
    Row("contact: deactivate", "admin.contact_active",
        "/staff/admin/contacts/<int:contact_id>/active", "POST", "contact",
        lambda c, k: f"/staff/admin/contacts/{c.contacts[k].id}/active",
        {IN: {ADMIN: OK}, SHARED: {ADMIN: REFUSED}}, data=lambda c, k: {"active": "0"},
        probe=contact_state),
    Row("staff accounts", "admin.users", "/staff/admin/users", "GET", "user",
        lambda c, k: "/staff/admin/users",
        {IN: {ADMIN: LISTED}, SELF: {ADMIN: LISTED}, OUT: {ADMIN: HIDDEN}},
        marker=lambda c, k: c.users["admin" if k == "self" else k].email),
    Row("account: new (form)", "admin.user_new", "/staff/admin/users/new", "GET", "none",
        lambda c, k: "/staff/admin/users/new", ADMIN_PAGE),
    Row("account: add", "admin.user_new", "/staff/admin/users/new", "POST", "new_user",
        lambda c, k: "/staff/admin/users/new", {IN: {ADMIN: OK}, OUT: {ADMIN: REFUSED}},
        data=_new_user, probe=table_count(StaffUser)),
    *(Row(f"account: {action}", "admin.user_action", "/staff/admin/users/<int:user_id>/<action>",
          "POST", "user", user_action_path(action),
          {IN: {ADMIN: OK}, SELF: {ADMIN: REFUSED}}, data=lambda c, k: {}, probe=user_state,
          setup=deactivate_target if action == "reactivate" else None)
      for action in ("deactivate", "reactivate", "sign-out", "reset")),
    Row("routing policy editor", "admin.policy", "/staff/admin/policy", "GET", "none",
        lambda c, k: "/staff/admin/policy", {ONLY: {ADMIN: OK, INST: OK}}),
    # a district admin saves only their own section; the installation admin the whole file;
    # nobody gets past the directory's police guard
    Row("routing policy: save", "admin.policy", "/staff/admin/policy", "POST", "policy",
        lambda c, k: "/staff/admin/policy",
        {OWN_SECTION: {ADMIN: OK, INST: OK}, OTHER_SECTION: {ADMIN: REFUSED, INST: OK},
         NO_SCHOOL: {ADMIN: REFUSED, INST: OK}, GUARD: {ADMIN: REFUSED, INST: REFUSED}},
        data=lambda c, k: {"text": POLICY_TEXTS[k], "action": "save"}, probe=policy_version),
    # the dry run offers a district admin their own district only
    Row("routing policy: dry run for another district", "admin.policy", "/staff/admin/policy",
        "POST", "none", lambda c, k: "/staff/admin/policy",
        {ONLY: {ADMIN: REFUSED, INST: OK}},
        data=lambda c, k: {"text": DEMO_POLICY, "action": "dryrun", "district": "stlco-demo",
                           "school": "cty-northview", "category": "weapon", "severity": "4",
                           "at": "2026-11-24T10:00"}),
    # who the policy alerts at a school: a district admin's own schools, whatever is asked;
    # an installation admin any district's
    Row("routing matrix", "admin.policy_matrix", "/staff/admin/policy/matrix", "GET", "school",
        lambda c, k: f"/staff/admin/policy/matrix?district={c.schools[k].district.code}"
                     f"&school={k}",
        {IN: {ADMIN: LISTED}, OUT: {ADMIN: HIDDEN, INST: LISTED}},
        marker=lambda c, k: c.schools[k].name),
    # on-call rotas (issue 17): a district admin's own district's only, audited
    Row("on-call rotas", "admin.rotas", "/staff/admin/rotas", "GET", "rota",
        lambda c, k: "/staff/admin/rotas", {IN: {ADMIN: LISTED}, OUT: {ADMIN: HIDDEN}},
        marker=lambda c, k: f"<code>{k}</code>"),
    Row("rota: new (form)", "admin.rota_edit", "/staff/admin/rotas/new", "GET", "none",
        lambda c, k: "/staff/admin/rotas/new", ADMIN_PAGE),
    Row("rota: add", "admin.rota_edit", "/staff/admin/rotas/new", "POST", "rota_member",
        lambda c, k: "/staff/admin/rotas/new", {IN: {ADMIN: OK}, OUT: {ADMIN: REFUSED}},
        data=_new_rota, probe=table_count(OnCallRota)),
    Row("rota: open", "admin.rota_edit", "/staff/admin/rotas/<int:rota_id>", "GET", "rota",
        lambda c, k: f"/staff/admin/rotas/{rota_id(c, k)}", ADMIN_ONLY),
    Row("rota: edit", "admin.rota_edit", "/staff/admin/rotas/<int:rota_id>", "POST", "rota",
        lambda c, k: f"/staff/admin/rotas/{rota_id(c, k)}", ADMIN_ONLY, data=_rota_form,
        probe=rota_state),
    # -- one's own account ----------------------------------------------------------------
    Row("account page", "accounts.account", "/staff/account", "GET", "none",
        lambda c, k: "/staff/account", {ONLY: every(OK)}),
    Row("change password (form)", "accounts.password", "/staff/account/password", "GET",
        "none", lambda c, k: "/staff/account/password", {ONLY: every(OK)}),
    Row("change password", "accounts.password", "/staff/account/password", "POST", "none",
        lambda c, k: "/staff/account/password", {ONLY: every(OK)},
        data=lambda c, k: {"current": DEFAULT_PASSWORD, "new": "a whole new passphrase here",
                           "confirm": "a whole new passphrase here"}, probe=actor_state),
    # a colleague grants a waiting account of their own district access to tips
    Row("access to tips", "accounts.access", "/staff/access", "GET", "waiting",
        lambda c, k: "/staff/access",
        {IN: {ADMIN: LISTED, STAFF: LISTED}, OUT: {ADMIN: HIDDEN, STAFF: HIDDEN, LIAISON: HIDDEN}},
        marker=lambda c, k: c.users[k].email),
    Row("access to tips: grant", "accounts.grant", "/staff/access/<int:user_id>/grant", "POST",
        "waiting", lambda c, k: f"/staff/access/{c.user_id(k)}/grant",
        {IN: {ADMIN: OK, STAFF: OK}}, data=lambda c, k: {},
        probe=lambda c, k: c.scalar(select(func.count()).select_from(KeyGrant).where(
            KeyGrant.user_id == c.user_id(k)))),
    Row("sign out", "accounts.logout", "/staff/logout", "POST", "none",
        lambda c, k: "/staff/logout", {ONLY: every(OK)}, data=lambda c, k: {},
        probe=lambda c, k: c.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "staff.sign_out", AuditEvent.actor_user_id == c.actor_id))),
    Row("sign out everywhere", "accounts.logout_everywhere", "/staff/logout/everywhere", "POST",
        "none", lambda c, k: "/staff/logout/everywhere", {ONLY: every(OK)},
        data=lambda c, k: {}, probe=actor_state),
)

# Routes that are not staff routes: who may use them and which tests attack them.
NOT_STAFF: dict[str, str] = {
    "static": "files shipped with the app; no data",
    "health.healthz": "liveness for the orchestrator; names no tip (tests/test_settings.py)",
    "accounts.login": "the password step of sign-in (tests/accounts/test_signin.py)",
    "accounts.code": "the TOTP step of sign-in (tests/accounts/test_signin.py)",
    "intake.start": "reporter page (tests/intake)",
    "intake.danger": "reporter page (tests/intake)",
    "intake.privacy": "reporter page (tests/intake)",
    "intake.report": "the anonymous report form (tests/intake, tests/web/test_fuzz.py)",
    "intake.followup": "a reporter's receipt code, bound to the sending session "
                       "(tests/intake/test_receipt_secrecy.py, tests/intake/test_followup.py)",
    "intake.followup_tip": "a reporter's own tip, by receipt code (tests/intake/test_followup.py)",
    "intake.followup_leave": "drops the reporter's session secret (tests/intake/test_followup.py)",
    **dict.fromkeys(
        ("telephony.sms", "telephony.sms_status", "telephony.voice_call",
         "telephony.voice_language", "telephony.voice_recorded",
         "telephony.voice_recording_status", "telephony.voice_transcription",
         "routing_alerts.call", "routing_alerts.call_status", "routing_alerts.gather",
         "routing_alerts.sms_status"),
        "Twilio webhook: the X-Twilio-Signature is checked, 403 otherwise "
        "(tests/telephony/test_webhook_signatures.py)"),
}


# -- running a row -------------------------------------------------------------------------

def _signed_out(resp: Any) -> bool:
    if resp.status_code == 401:
        return True
    return resp.status_code in (302, 303) and \
        urlsplit(resp.headers.get("Location", "")).path == "/staff/login"


def answer(row: Row, resp: Any, changed: bool | None, marker: str | None) -> str:
    """What the app answered, in the table's words."""
    code = resp.status_code
    if code == 404:
        return NOT_FOUND
    if code >= 500 or code not in (200, 302, 303, 400, 401):
        return f"HTTP {code}"
    if changed and code == 400:
        return "changed, yet answered 400"
    if changed is False or (changed is None and _signed_out(resp)):
        return SIGN_IN if _signed_out(resp) else REFUSED
    if changed is None and code == 400:
        return REFUSED
    if marker is not None:
        return LISTED if marker in resp.get_data(as_text=True) else HIDDEN
    return OK


def run_row(ctx: Ctx, row: Row, key: str) -> str:
    """Make the row's request for ``key`` inside a savepoint, classify it, roll it back."""
    client = ctx.client
    cookie = client.get_cookie("tl")
    savepoint = ctx.conn.begin_nested()
    try:
        if row.setup:
            row.setup(ctx, key)
        before = row.probe(ctx, key) if row.probe else None
        kept = row.keep(ctx, key) if row.keep else None
        path = row.path(ctx, key)
        if row.method == "GET":
            resp = client.get(path, headers=row.headers)
        else:
            data = {"csrf_token": ctx.csrf, **(row.data(ctx, key) if row.data else {})}
            resp = client.post(path, data=data, headers=row.headers)
        changed = None if row.probe is None else row.probe(ctx, key) != before
        got = answer(row, resp, changed, row.marker(ctx, key) if row.marker else None)
        if row.keep and row.keep(ctx, key) != kept:
            got += " (and changed what it must leave alone)"
        return got
    finally:
        savepoint.rollback()
        if cookie is None:
            client.delete_cookie("tl")
        else:
            client.set_cookie("tl", cookie.value, domain=cookie.domain, path=cookie.path)


def run_matrix(ctx: Ctx, rows: tuple[Row, ...] = TABLE) -> list[tuple[str, ...]]:
    failures: list[tuple[str, ...]] = []
    for row in rows:
        for variant, keys in subjects(row.on, ctx.role).items():
            for key in keys:
                want = row.expected(variant, ctx.role)
                got = run_row(ctx, row, key)
                if got != want:
                    failures.append((f"{row.method} {row.rule}", row.label, variant, key, want,
                                     got))
    return failures


def failure_table(role: str, failures: list[tuple[str, ...]]) -> str:
    head = ("route", "row", "scope", "object", "expected", "got")
    widths = [max(len(str(r[i])) for r in [head, *failures]) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True))
             for r in [head, *failures]]
    return f"{len(failures)} answers differ from the design for {role}:\n" + "\n".join(lines)


def context_for(role: str, app: Any, connection: Connection, m: MatrixWorld) -> Ctx:
    client = app.test_client()
    users = {"staff": m.base.staff.user, "county_admin": m.base.county_admin.user,
             "admin": m.base.admin.user, "liaison": m.base.liaison.user,
             "waiting-slps": m.accounts["waiting-slps"][0],
             "waiting-county": m.accounts["waiting-county"][0]}
    if role == ANON:
        actor_id = m.base.admin.user.id
        token = csrf_token(client, "/staff/login")
    else:
        user, password, secret = m.accounts[role]
        sign_in(client, user.email, password, secret)
        actor_id = user.id
        token = csrf_token(client, "/staff/account")
    if role == ADMIN:
        users["self"] = m.base.admin.user
    return Ctx(role, connection, client, actor_id, m.tips, m.attachments, m.schools,
               m.contacts, users, token)


# -- the tests -----------------------------------------------------------------------------

def test_every_route_has_a_row(app: Any) -> None:
    """A new route fails here until it has a row in TABLE (or a reason in NOT_STAFF)."""
    covered = {(row.rule, row.method) for row in TABLE}
    missing = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if rule.endpoint not in NOT_STAFF and (rule.rule, method) not in covered:
                missing.append(f"{method} {rule.rule} ({rule.endpoint})")
    assert not missing, "routes with no row in the scope matrix:\n" + "\n".join(missing)
    known = {r.endpoint for r in app.url_map.iter_rules()}
    assert set(NOT_STAFF) <= known, set(NOT_STAFF) - known
    # every row's request really reaches the route it claims to test
    for row in TABLE:
        assert (row.rule, row.method) in {(r.rule, m) for r in app.url_map.iter_rules()
                                          for m in r.methods or ()}, \
            f"row {row.label!r}: app.url_map has no {row.method} {row.rule}"
        assert row.endpoint not in NOT_STAFF, row.label


def _paths_match(app: Any, ctx: Ctx) -> list[str]:
    adapter = app.url_map.bind("localhost")
    wrong = []
    for row in TABLE:
        for keys in subjects(row.on, ctx.role).values():
            for key in keys:
                rule, _ = adapter.match(urlsplit(row.path(ctx, key)).path, method=row.method,
                                        return_rule=True)
                if rule.rule != row.rule or rule.endpoint != row.endpoint:
                    wrong.append(f"{row.label}: {rule.rule} ({rule.endpoint})")
    return wrong


@pytest.mark.parametrize("role", ROLES)
def test_scope_matrix(role: str, app: Any, connection: Connection, matrix: MatrixWorld) -> None:
    """Every row, for every object in and out of this role's scope, answers as designed."""
    ctx = context_for(role, app, connection, matrix)
    assert _paths_match(app, ctx) == []
    failures = run_matrix(ctx)
    assert not failures, failure_table(role, failures)
