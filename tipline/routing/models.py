"""Routing jobs, per-contact dispatches, per-channel alert deliveries and the outbox.

A ``RoutingJob`` is written in the same transaction as its tip, so a tip can never exist
without a record that it must be routed. Workers move it ``pending -> running -> done``;
the periodic sweep re-sends jobs left ``pending`` (broker outage) or stuck ``running``
(worker killed).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tipline.db import Base, UTCDateTime, utcnow

if TYPE_CHECKING:
    from tipline.tips.models import Tip


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class RoutingJob(Base):
    __tablename__ = "routing_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    tip_id: Mapped[int] = mapped_column(ForeignKey("tips.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(20), default="intake")  # intake | retriage
    status: Mapped[str] = mapped_column(String(10), default=JobStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))
    # Revision 0009: the last publish of this job's task failed (broker down), so it is not
    # waiting in the broker; the sweep re-sends it at its next run, backlog or not.
    publish_failed: Mapped[bool] = mapped_column(Boolean, default=False,
                                                 server_default=false())
    # Which rule matched and why each contact was or was not alerted (no tip content).
    explanation: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    # Revision 0017: "has routing taken this tip" (surge grouping asks it per candidate).
    # Revision 0018: one partial index per status read, no index of every job's status,
    # which PostgreSQL combined with the tip_id index for that probe on unanalysed tables.
    __table_args__ = (
        Index("ix_routing_jobs_done_tip", "tip_id", postgresql_where=text("status = 'done'"),
              sqlite_where=text("status = 'done'")),
        Index("ix_routing_jobs_pending", "created_at",
              postgresql_where=text("status = 'pending'"),
              sqlite_where=text("status = 'pending'")),
        Index("ix_routing_jobs_failed", "tip_id", postgresql_where=text("status = 'failed'"),
              sqlite_where=text("status = 'failed'")),
    )

    tip: Mapped[Tip] = relationship()
    dispatches: Mapped[list[Dispatch]] = relationship(
        back_populates="job", order_by="Dispatch.step_index, Dispatch.id"
    )


class DispatchStatus(enum.StrEnum):
    SCHEDULED = "scheduled"  # a later escalation step, not yet due
    ACTIVE = "active"  # alerts sent, waiting for acknowledgement
    ACKNOWLEDGED = "acknowledged"
    EXPIRED = "expired"  # deadline passed without acknowledgement
    CANCELLED = "cancelled"  # someone else acknowledged first, or the tip was re-routed
    # "New message from the reporter" to someone working the tip (routing.notices): sent
    # once, never acknowledged or escalated, and routes the tip to nobody new.
    NOTICE = "notice"


class Dispatch(Base):
    """One contact at one step of a tip's routing plan."""

    __tablename__ = "dispatches"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("routing_jobs.id", ondelete="CASCADE"))
    tip_id: Mapped[int] = mapped_column(ForeignKey("tips.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    rule: Mapped[str] = mapped_column(String(80))
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    channels: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default=DispatchStatus.ACTIVE.value, index=True)
    include_content: Mapped[bool] = mapped_column(default=False)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ack_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ack_via: Mapped[str | None] = mapped_column(String(12))  # dashboard | sms | voice
    ack_code: Mapped[str | None] = mapped_column(String(8), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Escalation state (revision 0005). When the dispatch became active (for lateness), the
    # life-safety repeat interval, the next repeat and how many alert rounds went out.
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    repeat_every_seconds: Mapped[int | None] = mapped_column(Integer)
    next_alert_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    alert_round: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    job: Mapped[RoutingJob] = relationship(back_populates="dispatches")
    deliveries: Mapped[list[AlertDelivery]] = relationship(
        back_populates="dispatch", order_by="AlertDelivery.id"
    )


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


class AlertDelivery(Base):
    """One alert over one channel. Recorded before sending; compare-and-set after."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    dispatch_id: Mapped[int] = mapped_column(
        ForeignKey("dispatches.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(10))  # sms | voice | email
    # Unique per (dispatch, channel, attempt round): a task that runs twice sends once.
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    status: Mapped[str] = mapped_column(String(10), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider: Mapped[str] = mapped_column(String(10), default="outbox")
    provider_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Revision 0005: which alert round this belongs to (life-safety repeats), and the
    # provider's last reported status (Twilio: queued, sent, delivered, undelivered, ...).
    alert_round: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    provider_status: Mapped[str | None] = mapped_column(String(20))
    # Revision 0009: as ``RoutingJob.publish_failed``.
    publish_failed: Mapped[bool] = mapped_column(Boolean, default=False,
                                                 server_default=false())
    # Revision 0016: when the provider said it reached the phone (first such callback).
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    dispatch: Mapped[Dispatch] = relationship(back_populates="deliveries")


class OutboxMessage(Base):
    """What the console/outbox sender 'sent': alerts to staff numbers (no tip content)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("alert_deliveries.id", ondelete="SET NULL"), index=True
    )
    channel: Mapped[str] = mapped_column(String(10))
    recipient: Mapped[str] = mapped_column(String(254))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RoutingPolicy(Base):
    """A validated routing policy document, as loaded from config/ or the dashboard."""

    __tablename__ = "routing_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    source_name: Mapped[str] = mapped_column(String(200))
    source_text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=False, index=True)
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    loaded_by: Mapped[str] = mapped_column(String(120), default="cli")
