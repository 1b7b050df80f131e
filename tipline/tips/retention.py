"""Retention: destroy the content of tips closed longer ago than the retention period.

Content is destroyed by deleting the tip's data key (crypto-shredding), which also makes any
copy in a backup unreadable. The tip row stays, without content, so statistics still count it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tipline.audit.services import record
from tipline.surge.models import TipSignature
from tipline.tips.models import DataKey, Message, Status, Tip


@dataclass(frozen=True)
class PurgeResult:
    shredded: int


def purge_expired(
    session: Session, now: datetime, retention_days: int, batch: int = 500
) -> PurgeResult:
    """Shred closed tips past retention; commits per batch; safe to run repeatedly."""
    cutoff = now - timedelta(days=retention_days)
    total = 0
    while True:
        tips = session.execute(
            select(Tip)
            .where(Tip.status == Status.CLOSED.value, Tip.closed_at < cutoff,
                   Tip.data_key_id.is_not(None))
            .order_by(Tip.id)
            .limit(batch)
        ).scalars().all()
        if not tips:
            return PurgeResult(total)
        for tip in tips:
            key = session.get(DataKey, tip.data_key_id)
            tip.data_key_id = None
            tip.phone_hash = None
            tip.phone_ct = None
            tip.alert_content_ct = None  # under the key file, not the tip's key: erased
            if key is not None:
                session.delete(key)
            _shred_items(session, tip.id)
            # Its surge signature came from its words: erased with them; its group stays,
            # so statistics still count it as grouped (tipline.surge).
            session.execute(update(TipSignature).where(TipSignature.tip_id == tip.id)
                            .values(minhash=b"", size=0, signals=[]))
            record(session, "tip.shred", actor="system:retention", tip_id=tip.id,
                   object_type="tip", object_id=tip.reference,
                   detail={"retention_days": retention_days})
        total += len(tips)
        session.commit()


def _shred_items(session: Session, tip_id: int) -> None:
    """The data keys of content added after intake (revision 0012), and relay payloads."""
    from tipline.routing.audience import item_key_uids

    uids = item_key_uids(session, tip_id)
    if uids:
        session.execute(delete(DataKey).where(DataKey.uid.in_(uids)))
    session.execute(update(Message).where(Message.tip_id == tip_id,
                                          Message.relay_payload_ct.is_not(None))
                    .values(relay_payload_ct=None))
