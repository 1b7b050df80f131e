"""Append to and verify the hash-chained audit log.

Each entry's hash covers the previous entry's hash and a canonical JSON of its own fields, so
an edited, inserted or deleted row breaks the chain at that point. On PostgreSQL appends take a
transaction-scoped advisory lock so concurrent writers cannot fork the chain; SQLite
serialises writers itself.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tipline.audit.models import AuditEvent
from tipline.db import utcnow

GENESIS = "0" * 64
_LOCK_ID = 7_246_001


def _canonical(event: AuditEvent) -> bytes:
    at: datetime = event.at
    payload = {
        "at": at.isoformat(timespec="microseconds"),
        "actor_user_id": event.actor_user_id,
        "actor": event.actor,
        "action": event.action,
        "tip_id": event.tip_id,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "detail": event.detail or {},
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def compute_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + _canonical(event)).hexdigest()


def record(
    session: Session,
    action: str,
    *,
    actor: str,
    actor_user_id: int | None = None,
    tip_id: int | None = None,
    object_type: str | None = None,
    object_id: str | int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an event in the caller's transaction (so it commits or rolls back with it)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
    last = session.execute(
        select(AuditEvent.entry_hash).order_by(AuditEvent.id.desc()).limit(1)
    ).scalar_one_or_none()
    event = AuditEvent(
        at=utcnow(),
        actor=actor,
        actor_user_id=actor_user_id,
        action=action,
        tip_id=tip_id,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        detail=detail or {},
        prev_hash=last or GENESIS,
    )
    event.entry_hash = compute_hash(event.prev_hash, event)
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_bad_id: int | None = None
    reason: str = ""


def verify_chain(session: Session, batch: int = 5000) -> ChainReport:
    """Walk the whole log in id order and recompute every hash."""
    prev = GENESIS
    checked = 0
    last_id = 0
    while True:
        rows = session.execute(
            select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch)
        ).scalars().all()
        if not rows:
            return ChainReport(True, checked)
        for ev in rows:
            if ev.prev_hash != prev:
                return ChainReport(False, checked, ev.id, "previous hash does not match")
            if compute_hash(prev, ev) != ev.entry_hash:
                return ChainReport(False, checked, ev.id, "entry hash does not match its content")
            prev = ev.entry_hash
            checked += 1
            last_id = ev.id
        session.expunge_all()
