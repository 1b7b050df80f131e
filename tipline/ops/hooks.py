"""Metric hooks that need a fact from the database; each is called in one line where the
event happens (workers/tasks.py, routing.ack) and never lets a metric break the work."""

from __future__ import annotations

import logging
from contextlib import suppress
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.orm import Session

from tipline.jobs import after_commit
from tipline.ops import metrics
from tipline.tips.models import Tip

if TYPE_CHECKING:
    from tipline.routing.services import DeliveryResult

log = logging.getLogger(__name__)

_tips = cast(Table, Tip.__table__)

# The tip's first alert: set once, by the first delivery recorded as sent, on the primary
# key (no plan to go wrong on a table without statistics); ``updated_at`` is kept, an alert
# going out is not a change to the tip. Two deliveries racing: the second waits for the
# first's row lock, then finds the column set and matches nothing.
FIRST_ALERT = (
    update(_tips)
    .where(_tips.c.id == bindparam("b_tip"), _tips.c.first_alert_at.is_(None))
    .values(first_alert_at=bindparam("b_sent"), updated_at=_tips.c.updated_at)
    .returning(_tips.c.created_at)
)


def claim_first_alert(session: Session, tip_id: int, sent_at: datetime) -> datetime | None:
    """Record ``sent_at`` as the tip's first alert unless one was recorded; the tip's commit
    time when this call recorded it, else None. Does not commit."""
    created: datetime | None = session.execute(
        FIRST_ALERT, {"b_tip": tip_id, "b_sent": sent_at}).scalar()
    return created


def delivery_done(session: Session, result: DeliveryResult) -> None:
    """Count a delivery's outcome by channel; on a tip's first sent alert, observe the time
    from the tip's commit (one statement, only for sent deliveries; the channel and tip come
    with the result). A metrics failure is logged, never raised: the alert went out."""
    if result.outcome not in ("sent", "failed") or result.channel is None:
        metrics.delivery_outcome(None, result.outcome)
        return
    metrics.delivery_outcome(result.channel, result.outcome)
    if result.outcome != "sent" or result.tip_id is None or result.sent_at is None:
        return
    try:
        created = claim_first_alert(session, result.tip_id, result.sent_at)
        session.commit()
    except Exception as exc:  # metrics never fail a delivery
        with suppress(Exception):
            session.rollback()
        log.warning("metrics: first alert of delivery %s not recorded (%s)",
                    result.delivery_id, type(exc).__name__)
        return
    if created is not None:
        metrics.first_alert(created, result.sent_at)


def tip_acknowledged(session: Session, tip: Any, now: datetime) -> None:
    """Observe commit-to-acknowledgement once the acknowledgement is committed (only when
    this call set it)."""
    if tip.acknowledged_at == now and tip.created_at is not None:
        after_commit(session, metrics.acknowledged, tip.created_at, now)
