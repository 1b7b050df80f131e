"""Metric hooks that need a fact from the database; each is called in one line where the
event happens (workers/tasks.py, routing.ack) and never lets a metric break the work."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tipline.jobs import after_commit
from tipline.ops import metrics

log = logging.getLogger(__name__)


def delivery_done(session: Session, delivery_id: int, outcome: str) -> None:
    """Count a delivery's outcome by channel; on a tip's first sent alert, observe the time
    from the tip's commit (one read, only for sent and failed deliveries)."""
    from tipline.routing.models import AlertDelivery, Dispatch
    from tipline.tips.models import Tip

    if outcome not in ("sent", "failed"):
        metrics.delivery_outcome(None, outcome)
        return
    try:
        row = session.execute(
            select(AlertDelivery.channel, AlertDelivery.sent_at, Tip.id, Tip.created_at)
            .join(Dispatch, Dispatch.id == AlertDelivery.dispatch_id)
            .join(Tip, Tip.id == Dispatch.tip_id)
            .where(AlertDelivery.id == delivery_id)
        ).first()
        if row is None:
            return
        metrics.delivery_outcome(row.channel, outcome)
        if outcome == "sent" and row.sent_at is not None:
            first = session.execute(
                select(func.min(AlertDelivery.sent_at))
                .join(Dispatch, Dispatch.id == AlertDelivery.dispatch_id)
                .where(Dispatch.tip_id == row.id)
            ).scalar_one()
            if first == row.sent_at:
                metrics.first_alert(row.created_at, row.sent_at)
        session.rollback()
    except Exception as exc:  # metrics never fail a delivery
        log.warning("metrics: delivery %s not counted (%s)", delivery_id, type(exc).__name__)


def tip_acknowledged(session: Session, tip: Any, now: datetime) -> None:
    """Observe commit-to-acknowledgement once the acknowledgement is committed (only when
    this call set it)."""
    if tip.acknowledged_at == now and tip.created_at is not None:
        after_commit(session, metrics.acknowledged, tip.created_at, now)
