"""What staff did to a tip: status changes with reasons, assignment, re-triage, and the
Missouri mandated reports staff members record having made.

Reasons are free text written by staff and may describe the case, so they are sealed under
the tip's data key like the rest of its content.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tipline.db import Base, UTCDateTime, new_uid, utcnow
from tipline.tips.models import Tip, _Sealed


class TipEvent(_Sealed, Base):
    """One change a staff member made: kind is status | assign | retriage."""

    __tablename__ = "tip_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uid)
    tip_id: Mapped[int] = mapped_column(ForeignKey("tips.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    kind: Mapped[str] = mapped_column(String(20))
    from_value: Mapped[str | None] = mapped_column(String(40))
    to_value: Mapped[str | None] = mapped_column(String(40))
    reason_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    tip: Mapped[Tip] = relationship()

    def _dek(self) -> bytes:
        return self.tip._dek()

    @property
    def reason(self) -> str:
        return self._open("reason_ct") or ""

    @reason.setter
    def reason(self, value: str | None) -> None:
        self._seal("reason_ct", value or None)


class MandatedReport(Base):
    """A staff member's own statement that they reported this tip to Children's Division."""

    __tablename__ = "mandated_reports"
    __table_args__ = (UniqueConstraint("tip_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tip_id: Mapped[int] = mapped_column(ForeignKey("tips.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# The queue's order (severity, unacknowledged first, age) as an index, so the first pages of a
# district's 100,000 tips are read in order instead of sorted. Declared here because the
# dashboard is what needs it; it lives on the tips table.
_tips = Tip.__table__.c
QUEUE_ORDER_INDEX = Index(
    "ix_tips_queue_order",
    _tips.severity.desc(),
    _tips.acknowledged_at.is_not(None),  # false (unacknowledged) sorts first
    _tips.created_at,
    _tips.id,
)


class TipRead(Base):
    """When a staff member last opened a tip: what is "new since your last visit", and which
    reporter messages they have not read (revision 0010)."""

    __tablename__ = "tip_reads"
    __table_args__ = (UniqueConstraint("user_id", "tip_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tip_id: Mapped[int] = mapped_column(ForeignKey("tips.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReplyTemplate(Base):
    """One short reply a district offers its staff in one language (staff wording, not tip
    content, so not sealed). A district without its own rows gets ``replies.DEFAULTS``."""

    __tablename__ = "reply_templates"
    __table_args__ = (UniqueConstraint("district_id", "language", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(8))
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
