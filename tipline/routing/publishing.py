"""Recording, in the database, that a task never reached the broker.

The web app and the workers publish after commit, best effort (``tipline.jobs.CeleryQueue``).
When a publish fails (or is skipped while the broker is known to be down), the row's
``publish_failed`` flag tells the sweep that this item is not waiting in the broker, so it is
re-sent at the sweep's next run even while the broker has a backlog.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import update

from tipline.db import Database
from tipline.routing.models import AlertDelivery, DeliveryStatus, JobStatus, RoutingJob

# Task name -> the table its first argument is a row of.
_ROUTING = "tipline.route_job"
_DELIVERY = ("tipline.deliver_alert", "tipline.deliver_urgent")


def mark_unpublished(db: Database, name: str, args: tuple[Any, ...]) -> None:
    """Flag the routing job or delivery a failed publish was for (other tasks: nothing)."""
    if not args or not isinstance(args[0], int):
        return
    if name == _ROUTING:
        stmt = (update(RoutingJob)
                .where(RoutingJob.id == args[0], RoutingJob.status == JobStatus.PENDING.value)
                .values(publish_failed=True))
    elif name in _DELIVERY:
        stmt = (update(AlertDelivery)
                .where(AlertDelivery.id == args[0],
                       AlertDelivery.status == DeliveryStatus.PENDING.value)
                .values(publish_failed=True))
    else:
        return
    # Its own short transaction: this runs after the caller's commit.
    with db.engine.begin() as conn:
        conn.execute(stmt.execution_options(synchronize_session=False))


def unpublished_marker(db: Database) -> Callable[[str, tuple[Any, ...]], None]:
    def mark(name: str, args: tuple[Any, ...]) -> None:
        mark_unpublished(db, name, args)

    return mark
