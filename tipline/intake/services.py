"""Taking in a tip: seal it, store it with its routing job, and hand back a receipt.

``create_tip`` writes everything in the caller's transaction and registers the routing job to be
sent after commit. The caller commits and only then tells the reporter "received" (invariant 1).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import BindParameter, Boolean, Insert, LargeBinary, Table, bindparam, insert, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tipline.crypto import Vault, WrappedKey, field_ad, reporter_recipient
from tipline.db import Base, new_uid, utcnow
from tipline.directory.models import School
from tipline.jobs import JobQueue, after_commit
from tipline.ops import metrics
from tipline.routing.audience import (
    AUDIENCE_UNCHANGED,
    AudienceGuard,
    cached_intake_audience,
    forget_audience,
    intake_audience,
    seal_alert_content,
)
from tipline.routing.models import RoutingJob
from tipline.surge import services as surge
from tipline.surge.models import TipSignature
from tipline.tips.models import Attachment, Category, Channel, DataKey, Message, Severity, Tip
from tipline.tips.receipts import (
    RECEIPT_PURPOSE,
    new_receipt_code,
    new_reference,
    normalize_code,
)

log = logging.getLogger(__name__)

MAX_BODY_CHARS = 10_000


class IntakeError(ValueError):
    """The submission cannot be accepted as given; the message is safe to show."""


@dataclass(frozen=True)
class AttachmentIn:
    kind: str  # image | audio
    content_type: str
    data: bytes  # already stripped of metadata by the caller's media service
    external_id: str | None = None


@dataclass(frozen=True)
class TipSubmission:
    channel: Channel
    body: str
    category: Category = Category.OTHER
    severity: Severity = Severity.MEDIUM
    school_code: str | None = None
    danger_now: bool = False
    language: str = "en"
    details: dict[str, str] = field(default_factory=dict)
    attachments: Sequence[AttachmentIn] = ()
    phone: str | None = None  # SMS/voice reporters only; stored sealed + as keyed hash
    external_id: str | None = None  # MessageSid/CallSid: provider retries find the same tip
    receipt_kind: str = "web"  # web | digits
    # (school id, district id) when the caller already resolved ``school_code`` against the
    # directory (the web form keeps a short-lived cache of it); saves a query per tip.
    school_ref: tuple[int, int] | None = None
    # ``body`` is a stand-in ("transcript pending"), not the reporter's words.
    placeholder: bool = False


@dataclass(frozen=True)
class Receipt:
    tip_id: int
    tip_uid: str
    reference: str
    receipt_code: str
    job_id: int
    severity: int = 0  # as stored: after the danger answer and triage (the receipt's wording)


def create_tip(
    session: Session,
    vault: Vault,
    queue: JobQueue,
    submission: TipSubmission,
    *,
    severity_floor: Severity | None = None,
    receipt_code: str | None = None,
    fired: Sequence[str] | None = None,
) -> Receipt:
    """Write a sealed tip, its first message, attachments and a routing job in ``session``.

    ``severity_floor`` comes from automatic triage: it may raise the reporter's severity, never
    lower it. ``fired``: the rules triage's classifier fired on exactly this body and these
    details in this language, only when it ran (the surge signature reuses them instead of
    classifying the words again); None classifies them here. Nothing is committed here.
    """
    body = submission.body.strip()
    if not body and not submission.attachments:
        raise IntakeError("empty tip")
    if len(body) > MAX_BODY_CHARS:
        raise IntakeError("tip text is too long")

    school_id: int | None = None
    district_id: int | None = None
    if submission.school_ref is not None:
        school_id, district_id = submission.school_ref
    elif submission.school_code:
        school = session.execute(
            select(School).where(School.code == submission.school_code, School.active.is_(True))
        ).scalar_one_or_none()
        if school is None:
            raise IntakeError("unknown school")
        school_id, district_id = school.id, school.district_id

    severity = int(submission.severity)
    if submission.danger_now:
        severity = max(severity, int(Severity.LIFE_SAFETY))
    if severity_floor is not None:
        severity = max(severity, int(severity_floor))

    code = receipt_code or new_receipt_code()
    normalized = normalize_code(code)
    if normalized is None:
        raise IntakeError("malformed receipt code")

    for cached in (True, False):
        try:
            return _write_tip(session, vault, queue, submission, body=body, code=code,
                              normalized=normalized, school_id=school_id,
                              district_id=district_id, severity=severity, fired=fired,
                              cached=cached)
        except _StaleAudience:  # sealed to an audience that changed: seal again, read fresh
            continue
    raise AssertionError("unreachable")  # pragma: no cover - the second pass never raises


def begin_tip_write(session: Session, submission: TipSubmission) -> bool:
    """Before ``create_tip``: let a write that is one statement run without BEGIN and COMMIT.

    On PostgreSQL a tip without attachments is written by one statement (``_insert_tip_rows``:
    data-modifying CTEs), which is atomic by itself; inside a transaction it cost three round
    trips (BEGIN, the insert, COMMIT); without the two, PostgreSQL's CPU per web tip fell by
    about 0.1 ms (0.8 -> 0.7 ms) and the worker's by about as much (docs/performance.md,
    item 25). So the session's first connection
    is taken in autocommit. Only for a session that has not begun and is bound to an engine
    (a session joined to a connection already in a transaction, as in the tests' rollback
    fixture, keeps its transaction). Nothing else changes for the caller: ``commit()`` still
    runs the after-commit callbacks (the routing job is published only once the row is
    stored), an IntegrityError still leaves nothing behind, and the pool restores the
    connection's isolation level when it is returned. Returns whether autocommit was taken.
    """
    if submission.attachments or session.in_transaction():
        return False  # attachments are a second statement: the tip and they commit together
    bind = session.get_bind()
    if not isinstance(bind, Engine) or bind.dialect.name != "postgresql":
        return False
    session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    return True


class _StaleAudience(Exception):
    """A guarded insert inserted nothing: the policy or the keys changed since they were read."""


def _write_tip(
    session: Session, vault: Vault, queue: JobQueue, submission: TipSubmission, *, body: str,
    code: str, normalized: str, school_id: int | None, district_id: int | None,
    severity: int, fired: Sequence[str] | None, cached: bool,
) -> Receipt:
    tip_uid, message_uid = new_uid(), new_uid()
    dek, wrapped, alert_ct, guard = _seal_for_audience(
        session, vault, submission, tip_uid, code, school_id=school_id,
        district_id=district_id, severity=severity, body=body, cached=cached)
    reference = new_reference()
    tip_values: dict[str, Any] = {
        "uid": tip_uid,
        "reference": reference,
        "school_id": school_id,
        "district_id": district_id,
        "category": submission.category.value,
        "severity": severity,
        "reporter_severity": int(submission.severity),
        "channel": submission.channel.value,
        "language": submission.language,
        "danger_now": submission.danger_now,
        "receipt_hash": vault.lookup_hash(RECEIPT_PURPOSE, normalized),
        "external_id": submission.external_id,
        "details_ct": None,
        "phone_hash": None,
        "phone_ct": None,
        "alert_content_ct": alert_ct,
    }
    clean = {k: v.strip() for k, v in submission.details.items() if v and v.strip()}
    if clean:
        details = json.dumps(clean, ensure_ascii=False).encode("utf-8")
        tip_values["details_ct"] = _sealed(vault, dek, "tips", "details_ct", tip_uid, details)
    if submission.phone:
        tip_values["phone_hash"] = vault.lookup_hash("phone", submission.phone)
        tip_values["phone_ct"] = _sealed(vault, dek, "tips", "phone_ct", tip_uid,
                                         submission.phone.encode("utf-8"))

    key_values = _row(DataKey, uid=wrapped.uid, slots=wrapped.slots,
                      kek_id=vault.kek_label(wrapped))
    message_values = _row(
        Message, uid=message_uid, author="reporter", channel=submission.channel.value,
        body_ct=_sealed(vault, dek, "messages", "body_ct", message_uid, body.encode("utf-8")),
        placeholder=submission.placeholder,
    )
    job_values = _row(RoutingJob, reason="intake")
    # Surge grouping's signature, from the words in memory before they are sealed.
    signature = surge.at_intake(vault, school_id, submission.channel.value,
                                "\n".join([body, *clean.values()]), submission.language,
                                utcnow(), fired)
    inserted = _insert_tip_rows(
        session, key_values, _row(Tip, **tip_values), message_values, job_values, signature,
        guard)
    if inserted is None:  # only a guarded insert inserts nothing
        if guard is not None:
            forget_audience(guard, session)
        raise _StaleAudience
    job_id, tip_id, message_id = inserted
    if submission.attachments:
        rows = []
        for item in submission.attachments:
            att_uid = new_uid()
            rows.append(_row(
                Attachment, uid=att_uid, tip_id=tip_id, message_id=message_id, kind=item.kind,
                content_type=item.content_type, size=len(item.data),
                external_id=item.external_id,
                data_ct=_sealed(vault, dek, "attachments", "data_ct", att_uid, item.data),
            ))
        session.execute(insert(Attachment), rows)
    after_commit(session, queue.send_routing, job_id)
    after_commit(session, metrics.tip_received, submission.channel.value, tip_values["category"])
    return Receipt(tip_id, tip_uid, reference, code, job_id, severity)


def _seal_for_audience(
    session: Session, vault: Vault, sub: TipSubmission, tip_uid: str, code: str, *,
    school_id: int | None, district_id: int | None, severity: int, body: str,
    cached: bool = False,
) -> tuple[bytes, WrappedKey, bytes | None, AudienceGuard | None]:
    """The tip's data key, sealed to its audience, and its include_content alert text.

    Audience: the district's read key, each police agency the policy routes this tip to, and
    for a web or voice tip the reporter's receipt-code key (so the follow-up page can read the
    conversation). A caller's code is derived from the call with the key file
    (``telephony.voice.voice_code``), so a voice tip's own key is readable by whoever holds the
    database and the key file: it holds only the "transcript pending" stand-in and staff
    replies; the recording and the transcript are under keys of their own, sealed to staff.
    No district key: a key-file slot, as before sealing (legacy mode). The alert text is kept
    only when the matched rule says include_content, and never for a call (its body is a
    stand-in until the transcript comes).
    """
    # The plan and the read keys of the district and the plan's agencies: kept from an earlier
    # tip (``cached``; the insert then checks that the policy and the keys are unchanged), or
    # read in one statement with the active policy's head.
    now = utcnow()
    found = cached_intake_audience(
        session, school_id=school_id, district_id=district_id, category=sub.category.value,
        severity=severity, now=now) if cached else None
    guard = None
    if found is not None:
        plan, recipients, guard = found
    else:
        plan, recipients = intake_audience(session, school_id=school_id,
                                           district_id=district_id,
                                           category=sub.category.value, severity=severity,
                                           now=now)
    if recipients and sub.channel in (Channel.WEB, Channel.VOICE):  # SMS: no code is given
        recipients.append(reporter_recipient(code, tip_uid)[0])
    dek, wrapped = vault.new_data_key(recipients)
    alert_ct = None
    if plan.include_content and sub.channel != Channel.VOICE:  # a call's words come later
        alert_ct = seal_alert_content(vault, tip_uid, body)
    return dek, wrapped, alert_ct, guard


def _insert_tip_rows(
    session: Session,
    key: dict[str, Any],
    tip: dict[str, Any],
    message: dict[str, Any],
    job: dict[str, Any],
    signature: dict[str, Any] | None = None,
    guard: AudienceGuard | None = None,
) -> tuple[int, int, int] | None:
    """Insert the key, the tip, its first message, its routing job and its surge signature
    (if any); return the job's, the tip's and the message's ids.

    On PostgreSQL this is one statement and one round trip (data-modifying CTEs, each taking
    the id the previous one returned); elsewhere (SQLite) one statement a row. Either way it
    runs in the caller's transaction, and an IntegrityError on ``external_id`` means a
    provider retry: the caller decides. With a ``guard`` (PostgreSQL only) the statement
    inserts nothing and None is returned when the policy or the keys it names changed.
    """
    sig = {k: v for k, v in (signature or {}).items() if k != "tip_id"}
    if session.get_bind().dialect.name != "postgresql":
        key_id = session.execute(insert(DataKey).values(key).returning(DataKey.id)).scalar_one()
        tip_id = session.execute(
            insert(Tip).values({**tip, "data_key_id": key_id}).returning(Tip.id)).scalar_one()
        message_id = session.execute(
            insert(Message).values({**message, "tip_id": tip_id}).returning(Message.id)
        ).scalar_one()
        job_id = session.execute(
            insert(RoutingJob).values({**job, "tip_id": tip_id}).returning(RoutingJob.id)
        ).scalar_one()
        if signature is not None:
            surge.insert_signature(session, {**sig, "tip_id": tip_id})
        return int(job_id), int(tip_id), int(message_id)
    stmt = _combined_insert(tuple(key), tuple(tip), tuple(message), tuple(job), tuple(sig),
                            guard is not None)
    params = {
        **(guard.params() if guard is not None else {}),
        **{f"k_{k}": v for k, v in key.items()},
        **{f"t_{k}": v for k, v in tip.items()},
        **{f"m_{k}": v for k, v in message.items()},
        **{f"j_{k}": v for k, v in job.items()},
        **{f"s_{k}": v for k, v in sig.items()},
    }
    row = session.execute(stmt, params).one_or_none()
    if row is None:
        return None
    job_id, tip_id, message_id = row
    return int(job_id), int(tip_id), int(message_id)


@functools.lru_cache(maxsize=16)
def _combined_insert(
    key_cols: tuple[str, ...],
    tip_cols: tuple[str, ...],
    message_cols: tuple[str, ...],
    job_cols: tuple[str, ...],
    signature_cols: tuple[str, ...] = (),
    guarded: bool = False,
) -> Insert:
    """The four- (or five-, with a surge signature) table insert for one set of columns,
    built once and reused (building and keying a statement of this size costs more CPU than
    running it). ``guarded``: the same rows, inserted only while ``AUDIENCE_UNCHANGED`` holds
    (each insert selects from the one before it, so all or none)."""

    if guarded:
        return _guarded_insert(key_cols, tip_cols, message_cols, job_cols, signature_cols)

    def binds(table: Table, prefix: str, cols: tuple[str, ...]) -> dict[str, Any]:
        return {c: bindparam(f"{prefix}{c}", type_=table.c[c].type) for c in cols}

    keys, tips = cast(Table, DataKey.__table__), cast(Table, Tip.__table__)
    messages, jobs = cast(Table, Message.__table__), cast(Table, RoutingJob.__table__)
    new_key = insert(keys).values(binds(keys, "k_", key_cols)).returning(keys.c.id).cte("new_key")
    new_tip = (
        insert(tips)
        .values({**binds(tips, "t_", tip_cols),
                 "data_key_id": select(new_key.c.id).scalar_subquery()})
        .returning(tips.c.id).cte("new_tip")
    )
    tip_id_sql = select(new_tip.c.id).scalar_subquery()
    new_message = (
        insert(messages)
        .values({**binds(messages, "m_", message_cols), "tip_id": tip_id_sql})
        .returning(messages.c.id).cte("new_message")
    )
    ctes = [new_key, new_tip, new_message]
    if signature_cols:  # PostgreSQL runs a data-modifying CTE whether or not it is read
        signatures = cast(Table, TipSignature.__table__)
        ctes.append(insert(signatures)
                    .values({**binds(signatures, "s_", signature_cols), "tip_id": tip_id_sql})
                    .cte("new_signature"))
    return (
        insert(jobs)
        .values({**binds(jobs, "j_", job_cols), "tip_id": tip_id_sql})
        .returning(jobs.c.id, jobs.c.tip_id, select(new_message.c.id).scalar_subquery())
        .add_cte(*ctes)
    )


def _guarded_insert(
    key_cols: tuple[str, ...],
    tip_cols: tuple[str, ...],
    message_cols: tuple[str, ...],
    job_cols: tuple[str, ...],
    signature_cols: tuple[str, ...],
) -> Insert:
    """``_combined_insert`` as INSERT ... SELECT: the key's row only where the audience is
    unchanged, and every later row selected from the row before it, so that a changed audience
    inserts nothing at all (and RETURNING gives no row)."""

    def rows(table: Table, prefix: str, cols: tuple[str, ...], source: Any = None,
             link: str | None = None) -> Insert:
        values = [typed(bindparam(f"{prefix}{c}", type_=table.c[c].type)) for c in cols]
        names = list(cols)
        if source is not None and link is not None:
            values.append(source.c.id)
            names.append(link)
        picked = select(*values)
        if source is None:
            picked = picked.where(AUDIENCE_UNCHANGED)
        return insert(table).from_select(names, picked, include_defaults=False)

    def typed(bind: BindParameter[Any]) -> Any:
        """A NULL in a select list is text to PostgreSQL: SQLAlchemy renders a ``::type``
        after most binds, not after bytea and boolean ones, so those get a CAST."""
        if isinstance(bind.type, (LargeBinary, Boolean)):
            return sql_cast(bind, bind.type)
        return bind

    keys, tips = cast(Table, DataKey.__table__), cast(Table, Tip.__table__)
    messages, jobs = cast(Table, Message.__table__), cast(Table, RoutingJob.__table__)
    new_key = rows(keys, "k_", key_cols).returning(keys.c.id).cte("new_key")
    new_tip = rows(tips, "t_", tip_cols, new_key, "data_key_id").returning(tips.c.id).cte(
        "new_tip")
    new_message = rows(messages, "m_", message_cols, new_tip, "tip_id").returning(
        messages.c.id).cte("new_message")
    ctes = [new_key, new_tip, new_message]
    if signature_cols:
        ctes.append(rows(cast(Table, TipSignature.__table__), "s_", signature_cols, new_tip,
                         "tip_id").cte("new_signature"))
    return (
        rows(jobs, "j_", job_cols, new_tip, "tip_id")
        .returning(jobs.c.id, jobs.c.tip_id, select(new_message.c.id).scalar_subquery())
        .add_cte(*ctes)
    )


def _row(model: type[Base], **given: Any) -> dict[str, Any]:
    """``given`` plus the model's Python-side column defaults, as the ORM would fill them."""
    for name, default in _column_defaults(model):
        if name not in given:
            given[name] = default.arg(None) if default.is_callable else default.arg
    return given


@functools.cache
def _column_defaults(model: type[Base]) -> tuple[tuple[str, Any], ...]:
    """The columns ``_row`` fills, with their defaults (scalar or callable, no primary key):
    found once per model, not by walking its every column for every row (4 rows a tip)."""
    return tuple((column.name, column.default) for column in model.__table__.columns
                 if not column.primary_key and column.default is not None
                 and (column.default.is_scalar or column.default.is_callable))


def _sealed(vault: Vault, dek: bytes, table: str, column: str, uid: str, data: bytes) -> bytes:
    return vault.seal(dek, data, field_ad(table, column, uid))


def find_tip_by_external_id(session: Session, external_id: str) -> Tip | None:
    return session.execute(select(Tip).where(Tip.external_id == external_id)).scalar_one_or_none()


def _seal_tip_fields(vault: Vault, dek: bytes, tip: Tip, sub: TipSubmission) -> None:
    tip.uid = tip.uid or new_uid()
    if sub.details:
        clean = {k: v.strip() for k, v in sub.details.items() if v and v.strip()}
        if clean:
            _seal_into(vault, dek, tip, "details_ct", json.dumps(clean, ensure_ascii=False))
    if sub.phone:
        tip.phone_hash = vault.lookup_hash("phone", sub.phone)
        _seal_into(vault, dek, tip, "phone_ct", sub.phone)


def _seal_into(vault: Vault, dek: bytes, row: object, column: str, text: str) -> None:
    _seal_bytes_into(vault, dek, row, column, text.encode("utf-8"))


def _seal_bytes_into(vault: Vault, dek: bytes, row: object, column: str, data: bytes) -> None:
    if getattr(row, "uid", None) is None:
        row.uid = new_uid()  # type: ignore[attr-defined]
    ad = field_ad(row.__tablename__, column, row.uid)  # type: ignore[attr-defined]
    setattr(row, column, vault.seal(dek, data, ad))
