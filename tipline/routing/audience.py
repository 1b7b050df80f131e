"""Who may read a tip: the audience its keys are sealed to, decided from the routing policy.

Intake seals a tip's data key to its district's read key, plus the read key of each police
agency that the policy routes this tip to (``intake_plan``: the same engine the routing worker
runs, so police can read exactly the tips that alert them). Content that arrives later without
a staff or reporter key (an SMS reporter's next text, MMS media, a voice recording or its
transcript) gets its own data key sealed to the same audience (``give_item_key``): sealing
needs only public keys, so workers and webhooks can write content they cannot read back.

Alerts whose rule says ``include_content`` need the tip's text after the key is sealed: intake
composes it while it still holds the text and stores it under the key file's alert subkey
(``seal_alert_content``). That is the one documented exception (docs/crypto.md), and it is
written only for a tip whose matched rule asks for it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Integer,
    and_,
    any_,
    bindparam,
    func,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from tipline import crypto
from tipline.crypto import Vault, field_ad
from tipline.crypto import audience as crypto_audience
from tipline.crypto.models import Owner, ReadKey
from tipline.directory.models import Contact, District, School
from tipline.routing.models import Dispatch, RoutingJob
from tipline.routing.statements import ACTIVE_POLICY_HEAD
from tipline.tips.models import DataKey, Tip

log = logging.getLogger(__name__)

ALERT_PURPOSE = "alert-content"
# The longest text any alert channel carries (routing.services.CONTENT_LIMIT, email).
ALERT_CONTENT_CHARS = 4000


@dataclass(frozen=True)
class IntakePlan:
    """What intake must know of a tip's routing before it seals: police agencies the plan
    alerts (at any step), and whether any alert of it carries the tip's text."""

    agency_ids: tuple[int, ...] = ()
    include_content: bool = False


# The plan of a tip whose planning failed (district only): used for that tip, never cached, so
# the next tip is planned again rather than sealed without the police the worker alerts.
_FAILED = IntakePlan()


def _policy(session: Session) -> Any:
    try:
        from tipline.routing.policy import active_policy

        return active_policy(session)
    except Exception:  # the worker falls back to the directory planner too: no police
        log.exception("routing policy unavailable at intake; sealing to the district only")
        return None


def _may_matter(policy: Any, district_code: str | None, sealed: bool) -> bool:
    """Whether planning can change what intake seals or stores (saves the planning cost)."""
    if sealed:
        return True
    sections = ([policy.districts.get(district_code)] if district_code
                else list(policy.districts.values()))
    return any(step.include_content for dp in sections if dp is not None
               for rule in dp.rules for step in rule.steps)


# Plans intake made, by bind (one database per engine; tests: one per connection), place,
# category, severity and whether the district seals, with the policy head (version, sha256)
# they were made under: a surge of tips for one school plans once a minute instead of once a
# tip. A plan is used again only under the same head, in the same minute and within PLAN_TTL,
# so a new policy reaches the next tip and a directory change (a contact's agency, role or
# on-call hours) reaches sealing within PLAN_TTL. The entry is kept past that (not the
# minute): intake_audience reads the keys of the agencies it names before checking it.
PLAN_TTL = 30.0
_PLAN_CACHE_MAX = 1024


@dataclass(frozen=True)
class _Planned:
    head: tuple[Any, ...] | None  # (version, sha256) of the policy the plan was made under
    minute: datetime
    clock: float
    plan: IntakePlan


_planned: dict[tuple[Any, ...], _Planned] = {}


def _plan_key(session: Session, school_id: int | None, district_id: int | None,
              category: str, severity: int, sealed: bool) -> tuple[Any, ...]:
    return (id(session.get_bind()), school_id, district_id, category, severity, sealed)


def _current(found: _Planned | None, minute: datetime, clock: float) -> bool:
    """A kept plan may serve a tip of this minute (under its own head: the caller checks it)."""
    return found is not None and found.minute == minute and clock - found.clock < PLAN_TTL


def _remembered(key: tuple[Any, ...], head: tuple[Any, ...] | None, now: datetime,
                fresh: bool, make: Callable[[], IntakePlan]) -> IntakePlan:
    """The plan kept under ``key`` if still valid for ``head`` and ``now``, else ``make()``'s,
    kept unless planning failed (a failed plan serves its own tip only)."""
    minute = now.replace(second=0, microsecond=0)
    clock = time.monotonic()
    found = _planned.get(key)
    if found is not None and not fresh and found.head == head and _current(found, minute, clock):
        return found.plan
    plan = make()
    if plan is _FAILED:
        _planned.pop(key, None)
        return plan
    if len(_planned) >= _PLAN_CACHE_MAX:
        _planned.clear()
    _planned[key] = _Planned(head, minute, clock, plan)
    return plan


def intake_plan(session: Session, *, school_id: int | None, district_id: int | None,
                category: str, severity: int, now: datetime, sealed: bool,
                fresh: bool = False) -> IntakePlan:
    """The police agencies and include_content of the plan the routing worker will make.

    ``sealed``: the district has a read key (otherwise only include_content matters, and a
    policy with no such step is not planned at all). ``fresh``: plan now, not from the cache
    (a staff member's re-triage, a transcript).
    """
    policy = _policy(session)
    if policy is None:  # directory default: never police, never content
        return IntakePlan()
    key = _plan_key(session, school_id, district_id, category, severity, sealed)
    return _remembered(key, (policy.version, policy.sha256), now, fresh, lambda: _intake_plan(
        session, policy, school_id, district_id, category, severity, now, sealed))


def _intake_plan(session: Session, policy: Any, school_id: int | None,
                 district_id: int | None, category: str, severity: int, now: datetime,
                 sealed: bool) -> IntakePlan:
    school = session.get(School, school_id) if school_id is not None else None
    district = session.get(District, district_id) if district_id is not None else None
    if not _may_matter(policy, district.code if district else None, sealed):
        return IntakePlan()
    from tipline.routing.engine import plan_for_place

    try:
        plan = plan_for_place(session, policy, school, district, category, severity, now)
    except Exception:
        log.exception("policy engine failed at intake; sealing to the district only")
        return _FAILED
    entries = [e for step in plan.steps for e in step.entries]
    include = any(e.include_content for e in entries)
    ids = sorted({e.contact_id for e in entries})
    agencies: tuple[int, ...] = ()
    if sealed and ids:
        found = session.execute(select(Contact.agency_id).where(
            Contact.id.in_(ids), Contact.agency_id.is_not(None))).scalars()
        agencies = tuple(sorted({a for a in found if a is not None}))
    return IntakePlan(agencies, include)


# The active policy's head (id, version, sha256) and the active read keys of a district and a
# list of agencies, in one statement: one row per key, and one row of nulls when the district
# has none; the head's columns are null when there is no active policy.
_one = select(literal_column("1").label("one")).subquery("one")
_head = ACTIVE_POLICY_HEAD.subquery("head")
_keys = crypto_audience.ACTIVE_KEY_ROWS.subquery("keys")
HEAD_AND_KEYS = (
    select(_head.c.id, _head.c.version, _head.c.sha256, _keys.c.owner, _keys.c.owner_id,
           _keys.c.key_id, _keys.c.public_key, _keys.c.id)
    .select_from(_one.outerjoin(_head, true()).outerjoin(_keys, true()))
    .order_by(_keys.c.id)
)


@dataclass(frozen=True)
class AudienceGuard:
    """What a tip sealed from ``cached_intake_audience`` was sealed under: the active policy's
    id and the ids of the active read keys of its district and agencies. The tip's insert
    checks them (``AUDIENCE_UNCHANGED``) in the same statement and inserts nothing when either
    changed; the tip is then planned and sealed again from a fresh read."""

    head_id: int | None
    district_id: int
    agency_ids: tuple[int, ...]
    key_ids: tuple[int, ...]

    def params(self) -> dict[str, Any]:
        return {"g_head_id": self.head_id, "g_key_ids": list(self.key_ids),
                "g_district": self.district_id, "g_agencies": list(self.agency_ids)}


def _inline(value: str) -> Any:
    """A constant written into the statement rather than sent as a parameter."""
    return literal_column(repr(value))


# True while the active policy and the active read keys of a district and agencies are those
# of an ``AudienceGuard`` (its ``params``); PostgreSQL only (array_agg). A policy row is never
# edited (a new version is a new row), so its id names its version and text; a key is never
# edited either (rotation adds a row, retiring sets retired_at, which drops it from the set).
# The agencies are one array parameter, not an expanding list: the tip's insert stays within
# the length and the parameter count psycopg caches the parsing of (a statement past them is
# parsed again for every tip: 0.27 ms, more than the guard saves; a test checks both).
_guard_head = ACTIVE_POLICY_HEAD.subquery("guard_head")
AUDIENCE_UNCHANGED = and_(
    select(_guard_head.c.id).scalar_subquery()
    .is_not_distinct_from(bindparam("g_head_id", type_=Integer)),
    select(func.array_agg(aggregate_order_by(ReadKey.id, ReadKey.id)))
    .where(ReadKey.retired_at.is_(None),  # as crypto.audience.ACTIVE_KEY_ROWS
           or_(and_(ReadKey.owner == _inline(Owner.DISTRICT.value),
                    ReadKey.owner_id == bindparam("g_district", type_=Integer)),
               and_(ReadKey.owner == _inline(Owner.AGENCY.value),
                    ReadKey.owner_id == any_(bindparam(
                        "g_agencies", type_=postgresql.ARRAY(Integer))))))
    .scalar_subquery() == bindparam("g_key_ids", type_=postgresql.ARRAY(Integer)),
)

# The audiences intake sealed to, by bind, district and agencies: the policy head they were
# read under (as ``_Planned.head``), their guard and their recipients. Used only with a plan
# kept under the same head, and only through a guarded insert.
_audiences: dict[tuple[Any, ...], tuple[tuple[Any, ...] | None, AudienceGuard,
                                        tuple[crypto.Recipient, ...]]] = {}


def cached_intake_audience(
    session: Session, *, school_id: int | None, district_id: int | None, category: str,
    severity: int, now: datetime,
) -> tuple[IntakePlan, list[crypto.Recipient], AudienceGuard] | None:
    """``intake_audience``'s answer without a statement, when a plan for such a tip is kept
    for this minute and the audience it names was read under that plan's policy head; the
    tip must then be inserted with the returned guard. None: call ``intake_audience``.

    Saves a round trip and its CPU for nearly every tip of a surge (0.35 ms of a web tip's
    1 to 5 ms in-process); the keys and the policy are still checked for every tip, by the
    insert itself, so a new policy or a retired key still reaches the very next tip."""
    if district_id is None or session.get_bind().dialect.name != "postgresql":
        return None
    key = _plan_key(session, school_id, district_id, category, severity, True)
    found = _planned.get(key)
    if found is None or not _current(found, now.replace(second=0, microsecond=0),
                                     time.monotonic()):
        return None
    seen = _audiences.get((key[0], district_id, found.plan.agency_ids))
    if seen is None or seen[0] != found.head:
        return None
    return found.plan, list(seen[2]), seen[1]


def forget_audience(guard: AudienceGuard, session: Session) -> None:
    """An insert found ``guard`` out of date: the next tip reads the audience again."""
    _audiences.pop((id(session.get_bind()), guard.district_id, guard.agency_ids), None)


def _remember_audience(bind: int, head: tuple[Any, ...] | None, district_id: int,
                       plan: IntakePlan, rows: Sequence[Any],
                       recipients: Sequence[crypto.Recipient]) -> None:
    if not recipients:  # legacy mode (no district key): nothing is sealed, nothing to keep
        return
    agencies = set(plan.agency_ids)
    key_ids = tuple(sorted(
        r[7] for r in rows if r[3] is not None
        and ((r[3] == Owner.DISTRICT.value and r[4] == district_id)
             or (r[3] == Owner.AGENCY.value and r[4] in agencies))))
    if len(_audiences) >= _PLAN_CACHE_MAX:
        _audiences.clear()
    _audiences[(bind, district_id, plan.agency_ids)] = (
        None if head is None else head[1:],
        AudienceGuard(None if head is None else head[0], district_id, plan.agency_ids, key_ids),
        tuple(recipients))


def intake_audience(session: Session, *, school_id: int | None, district_id: int | None,
                    category: str, severity: int,
                    now: datetime) -> tuple[IntakePlan, list[crypto.Recipient]]:
    """``intake_plan`` and ``district_audience`` for a new tip, in one round trip when its
    plan is known: the active policy's head and the read keys of the district and of the
    agencies of the last plan made for such a tip come back in one statement. That plan is
    used only if it was made under that same policy head, in this minute, within PLAN_TTL;
    otherwise the tip is planned again, and the keys of any agency the guess missed are
    read (a second round trip, only then). The keys are read for every tip (no key cache)."""
    if district_id is None:  # every district's keys: the general path
        plan = intake_plan(session, school_id=None, district_id=None, category=category,
                           severity=severity, now=now, sealed=True)
        return plan, district_audience(session, None, plan.agency_ids)
    key = _plan_key(session, school_id, district_id, category, severity, True)
    found = _planned.get(key)
    guess = found.plan.agency_ids if found is not None else ()
    rows = session.connection().execute(
        HEAD_AND_KEYS, {"district": district_id, "agencies": list(guess)}).all()
    head = tuple(rows[0][:3]) if rows and rows[0][0] is not None else None
    plan = _remembered(key, None if head is None else head[1:], now, False, lambda: _plan_at_head(
        session, head, school_id, district_id, category, severity, now))
    if not set(plan.agency_ids) <= set(guess):
        return plan, crypto.audience_keys(session, district_id, plan.agency_ids)
    recipients = crypto_audience.recipients_from_rows(
        (r[3:7] for r in rows if r[3] is not None), district_id, plan.agency_ids)
    kept = _planned.get(key)
    if kept is not None and kept.plan is plan:  # a kept plan only (not a failed one)
        _remember_audience(key[0], head, district_id, plan, rows, recipients)
    return plan, recipients


def _plan_at_head(session: Session, head: tuple[Any, ...] | None, school_id: int | None,
                  district_id: int | None, category: str, severity: int,
                  now: datetime) -> IntakePlan:
    try:
        from tipline.routing.policy import policy_at_head

        policy = policy_at_head(session, head)
    except Exception:  # as ``_policy``: the worker falls back to the directory planner too
        log.exception("routing policy unavailable at intake; sealing to the district only")
        return _FAILED
    if policy is None:  # directory default: never police, never content
        return IntakePlan()
    return _intake_plan(session, policy, school_id, district_id, category, severity, now, True)


def district_audience(session: Session, district_id: int | None,
                      agency_ids: Iterable[int] = ()) -> list[crypto.Recipient]:
    """``crypto.audience_keys``, and for a tip that names no district (yet: an SMS reporter
    names the school in a later text) every district's read key, as its alerts go to every
    district's fallback contacts; [] (legacy mode) unless every district has a key."""
    if district_id is not None:
        return crypto.audience_keys(session, district_id, agency_ids)
    return every_district_audience(session, agency_ids)


# Every district with its active read key (NULLs for a district without one), and the listed
# agencies' active keys, in one statement: a first text that names no school is about half of
# all SMS tips, and a query per district made it cost N + 1 round trips.
_EVERY_DISTRICT_KEYS: CompoundSelect = union_all(
    select(District.id.label("district"), ReadKey.id.label("row"), ReadKey.owner,
           ReadKey.owner_id, ReadKey.key_id, ReadKey.public_key)
    .outerjoin(ReadKey, and_(ReadKey.owner == Owner.DISTRICT.value,
                              ReadKey.owner_id == District.id,
                              ReadKey.retired_at.is_(None))),
    select(null().label("district"), ReadKey.id, ReadKey.owner, ReadKey.owner_id,
           ReadKey.key_id, ReadKey.public_key)
    .where(ReadKey.retired_at.is_(None),
           ReadKey.owner == Owner.AGENCY.value,
           ReadKey.owner_id.in_(bindparam("agencies", expanding=True))),
)


def every_district_audience(session: Session,
                            agency_ids: Iterable[int] = ()) -> list[crypto.Recipient]:
    """Each district's ``audience_keys`` in district order, merged without repeats; [] when
    there is no district or any district has no active key."""
    rows = session.connection().execute(
        _EVERY_DISTRICT_KEYS, {"agencies": sorted(set(agency_ids))}).all()
    districts = sorted({r[0] for r in rows if r[0] is not None})
    if not districts or any(r[0] is not None and r[1] is None for r in rows):
        return []
    # In key row order, as audience_keys reads them (the newest active key of an owner wins).
    keyed = sorted((r for r in rows if r[1] is not None), key=lambda r: r[1])
    owned = [(owner, owner_id, key_id, public) for _d, _row, owner, owner_id, key_id, public
             in keyed]
    out: list[crypto.Recipient] = []
    for did in districts:
        keys = crypto_audience.recipients_from_rows(owned, did, None)
        out.extend(k for k in keys if k not in out)
    return out


# -- include_content: the one exception ---------------------------------------------------------
def seal_alert_content(vault: Vault, tip_uid: str, text: str) -> bytes | None:
    """The alert text of a tip, under the key file's alert subkey, bound to the tip."""
    text = text.strip()[:ALERT_CONTENT_CHARS]
    if not text:
        return None
    return vault.seal_text(vault.derive_secret(ALERT_PURPOSE), text,
                           field_ad("tips", "alert_content_ct", tip_uid))


def open_alert_content(vault: Vault, tip: Tip) -> str:
    """What ``seal_alert_content`` stored for this tip ('' when nothing was)."""
    if tip.alert_content_ct is None:
        return ""
    try:
        return vault.open_text(vault.derive_secret(ALERT_PURPOSE), tip.alert_content_ct,
                               field_ad("tips", "alert_content_ct", tip.uid))
    except crypto.CryptoError:
        log.error("tip %s: stored alert text does not open", tip.reference)
        return ""


# -- keys for content added after intake ----------------------------------------------------------
def sealed_agency_ids(slots: str) -> set[int]:
    """Agencies a data key has a sealed slot for (rid ``agency:<id>:<key id>``)."""
    try:
        data = json.loads(slots)
        rids = [str(s.get("rid", "")) for s in data.get("slots", []) if isinstance(s, dict)]
    except (ValueError, AttributeError):
        return set()
    out = set()
    for rid in rids:
        parts = rid.split(":")
        if len(parts) >= 2 and parts[0] == "agency" and parts[1].isdigit():
            out.add(int(parts[1]))
    return out


def tip_agency_ids(session: Session, tip: Tip, extra: Iterable[int] = ()) -> set[int]:
    """Police agencies of a tip's audience: those its key is sealed to, those its current
    routing alerts, and ``extra`` (a new plan's, e.g. after a voice transcript re-triaged it)."""
    out = set(extra)
    if tip.data_key is not None:
        out |= sealed_agency_ids(tip.data_key.slots)
    # The current routing: the dispatches of the tip's newest routing job (a re-triage away
    # from police leaves the old job's police dispatches behind, cancelled; until the worker
    # routes the new job, the tip has no current police dispatch at all).
    newest = select(func.max(RoutingJob.id)).where(RoutingJob.tip_id == tip.id)
    out |= {a for a in session.execute(
        select(Contact.agency_id).join(Dispatch, Dispatch.contact_id == Contact.id)
        .where(Dispatch.tip_id == tip.id, Dispatch.job_id == newest.scalar_subquery(),
               Contact.agency_id.is_not(None))).scalars()
        if a is not None}
    return out


def tip_audience(session: Session, tip: Tip, extra_agencies: Iterable[int] = ()
                 ) -> list[crypto.Recipient]:
    """The public keys new content of this tip is sealed to ([]: legacy mode)."""
    return district_audience(session, tip.district_id,
                             tip_agency_ids(session, tip, extra_agencies))


def give_item_key(session: Session, vault: Vault, tip: Tip, row: Any,
                  key_column: str = "data_key_uid",
                  recipients: Sequence[crypto.Recipient] | None = None) -> None:
    """Give ``row`` a fresh data key sealed to the tip's audience, held on the row so its
    setters seal with it; in legacy mode (no district key) the row uses the tip's key.

    Used by every writer without a staff or reporter key: it never unwraps anything.
    """
    audience = tip_audience(session, tip) if recipients is None else list(recipients)
    if not audience:
        row.hold_key(key_column, None, None)
        return
    dek, wrapped = vault.new_data_key(audience)
    session.add(DataKey(uid=wrapped.uid, slots=wrapped.slots, kek_id=vault.kek_label(wrapped)))
    row.hold_key(key_column, wrapped.uid, dek)


def item_key_uids(session: Session, tip_id: int) -> list[str]:
    """Every item data key of a tip (for shredding and re-sealing with the tip's key)."""
    from tipline.tips.models import Attachment, Message, Note

    uids: set[str] = set()
    for col in (Message.data_key_uid, Note.data_key_uid, Attachment.data_key_uid,
                Attachment.transcript_key_uid):
        model = col.class_
        uids |= {u for u in session.execute(
            select(col).where(model.tip_id == tip_id, col.is_not(None))).scalars() if u}
    return sorted(uids)


# -- re-triage: the audience follows the new plan ----------------------------------------
@dataclass(frozen=True)
class Resealed:
    added: tuple[int, ...] = ()  # agencies given a slot
    removed: tuple[int, ...] = ()  # agencies whose slots were dropped
    keys: int = 0  # data keys changed (the tip's and its items')


def reseal_for_plan(session: Session, vault: Vault, tip: Tip, now: datetime) -> Resealed:
    """After a re-triage by a signed-in staff member: seal the tip's keys (its own and its
    items') to the police agencies the policy now routes it to, and drop the slots of those it
    no longer does. Opens the keys with the staff member's keychain (``KeyUnavailable`` when
    it cannot). Dropping a slot stops future reads through it; it cannot take back a key an
    agency's session already opened. Legacy mode (no district key): nothing to do.
    """
    if tip.data_key is None or not district_audience(session, tip.district_id, ()):
        return Resealed()
    plan = intake_plan(session, school_id=tip.school_id, district_id=tip.district_id,
                       category=tip.category, severity=int(tip.severity), now=now, sealed=True,
                       fresh=True)
    want = set(plan.agency_ids)
    have = sealed_agency_ids(tip.data_key.slots)
    add, drop = sorted(want - have), sorted(have - want)
    if not add and not drop:
        return Resealed()
    new, changed = _reseal(session, vault, tip, add, drop)
    return Resealed(tuple(a for a in add if any(r.rid.startswith(f"agency:{a}:") for r in new)),
                    tuple(drop), changed)


def seal_to_agencies(session: Session, vault: Vault, tip: Tip, agency_ids: Iterable[int]
                     ) -> int:
    """Give police agencies a slot on every key of the tip (its own and its items'), opened
    with the current keychain; returns how many keys changed. (``reseal_for_plan`` does this
    after a re-triage; tests use it to seal a tip they route by hand.)"""
    return _reseal(session, vault, tip, sorted(set(agency_ids)), [])[1]


def _reseal(session: Session, vault: Vault, tip: Tip, add: Sequence[int],
            drop: Sequence[int]) -> tuple[list[crypto.Recipient], int]:
    if tip.data_key is None:
        return [], 0
    new = [r for r in district_audience(session, tip.district_id, add)
           if r.rid.startswith("agency:")] if add else []
    keys = [tip.data_key, *session.execute(select(DataKey).where(
        DataKey.uid.in_(item_key_uids(session, tip.id)))).scalars()]
    changed = 0
    for key in keys:
        wrapped = key.wrapped()
        if new:
            wrapped = vault.add_recipients(vault.unwrap(wrapped), wrapped, new)
        if drop:
            wrapped = vault.remove_recipients(wrapped, _agency_rids(wrapped.slots, drop))
        if wrapped.slots != key.slots:
            key.slots = wrapped.slots
            changed += 1
    return new, changed


def _agency_rids(slots: str, agency_ids: Iterable[int]) -> list[str]:
    prefixes = tuple(f"agency:{a}:" for a in agency_ids)
    try:
        data = json.loads(slots)
    except ValueError:
        return []
    return [str(s.get("rid")) for s in data.get("slots", [])
            if isinstance(s, dict) and str(s.get("rid", "")).startswith(prefixes)]
