"""Small database helpers the SMS and voice services share: dedup keys, tasks, re-routing."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tipline.db import utcnow
from tipline.jobs import JobQueue, after_commit
from tipline.routing.models import RoutingJob
from tipline.telephony.models import InboundEvent, TaskStatus, TelephonyTask

TASK_NAME = "tipline.telephony_task"


@functools.lru_cache(maxsize=32)
def _insert_ignore_stmt(dialect: str, table: Table, columns: tuple[str, ...]) -> Any:
    """The INSERT ... ON CONFLICT DO NOTHING RETURNING id for these columns, built once."""
    module: Any = postgresql if dialect == "postgresql" else sqlite
    values = {c: bindparam(c, type_=table.c[c].type) for c in columns}
    return module.insert(table).values(values).on_conflict_do_nothing().returning(table.c.id)


def insert_ignore(session: Session, table: Table, values: dict[str, Any]) -> int | None:
    """INSERT that does nothing on a unique conflict; the new row's id, or None if it existed.

    A concurrent insert of the same key waits for the other transaction and then does nothing,
    which is how two deliveries of one webhook are told apart without an error.
    """
    dialect = session.get_bind().dialect.name
    stmt = _insert_ignore_stmt(dialect, table, tuple(sorted(values)))
    found = session.execute(stmt, values).scalar_one_or_none()
    return int(found) if found is not None else None


def first_time(session: Session, key: str, kind: str) -> bool:
    """Record that webhook ``key`` was taken in; False when it already was (a retry)."""
    table: Table = InboundEvent.__table__  # type: ignore[assignment]
    return insert_ignore(session, table, {"key": key[:120], "kind": kind,
                                          "created_at": utcnow()}) is not None


def add_task(session: Session, queue: JobQueue, *, kind: str, sid: str,
             parent_sid: str | None = None, tip_id: int | None = None,
             message_id: int | None = None, url: str | None = None,
             content_type: str | None = None, send: bool = True) -> int | None:
    """Record Twilio work to do (once per kind+sid) and send it to a worker after commit."""
    now = utcnow()
    table: Table = TelephonyTask.__table__  # type: ignore[assignment]
    task_id = insert_ignore(session, table, {
        "kind": kind, "sid": sid[:64], "parent_sid": parent_sid, "tip_id": tip_id,
        "message_id": message_id, "url": url,
        "content_type": (content_type or "")[:100] or None, "status": TaskStatus.PENDING,
        "attempts": 0, "created_at": now, "updated_at": now})
    if task_id is None:  # already recorded by an earlier delivery of the same callback
        return session.execute(select(TelephonyTask.id).where(
            TelephonyTask.kind == kind, TelephonyTask.sid == sid[:64])).scalar_one_or_none()
    if send:
        after_commit(session, queue.send_task, TASK_NAME, task_id)
    return task_id


def reroute(session: Session, queue: JobQueue, tip_id: int) -> int:
    """Route the tip again (its school, category or severity changed); sent after commit."""
    narrow_to_district(session, tip_id)
    job = RoutingJob(tip_id=tip_id, reason="retriage")
    session.add(job)
    session.flush()
    after_commit(session, queue.send_routing, job.id)
    return job.id


def narrow_to_district(session: Session, tip_id: int) -> int:
    """Once an SMS or voice tip names its school, seal its keys to its own district only.

    A tip that named no school was sealed to every district's read key (or, when some
    district had none, kept a key-file slot): left so, staff of another district could open
    it, and the server alone could open the key-file one. Other districts' slots are dropped
    (no key needed); a key-file slot is replaced by the district's sealed slot (the server
    opens it with the key file, as intake would have sealed it). A district with no read key
    yet (legacy mode) keeps its key as it is. Returns the number of data keys changed.
    """
    from tipline import crypto
    from tipline.routing.audience import item_key_uids
    from tipline.tips.models import DataKey, Tip

    tip = session.get(Tip, tip_id)
    if tip is None or tip.district_id is None or tip.data_key is None:
        return 0
    own = crypto.audience_keys(session, tip.district_id, ())
    if not own:
        return 0
    vault = crypto.current()
    mine = f"district:{tip.district_id}:"
    keys = [tip.data_key, *session.execute(select(DataKey).where(
        DataKey.uid.in_(item_key_uids(session, tip.id)))).scalars()]
    changed = 0
    for key in keys:
        wrapped = key.wrapped()
        if vault.slot_key_ids(wrapped):
            try:
                dek = vault.unwrap(wrapped)
            except crypto.CryptoError:  # a retired KEK: leave it to seal-existing
                continue
            wrapped = vault.remove_kek_slots(vault.add_recipients(dek, wrapped, own))
        others = [rid for rid in vault.sealed_rids(wrapped)
                  if rid.startswith("district:") and not rid.startswith(mine)]
        if others:
            wrapped = vault.remove_recipients(wrapped, others)
        if wrapped.slots != key.slots:
            key.slots, key.kek_id = wrapped.slots, vault.kek_label(wrapped)
            changed += 1
    return changed
