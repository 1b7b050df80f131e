"""Surge groups and the similarity signature each tip gets at intake (revision 0013).

``TipSignature`` holds what grouping reads, never the text: the keyed MinHash, the number of
features, keyed digests of the life-safety rules the classifier fired (so a later tip with a
new life-safety reason is told apart without storing rule names in clear), and the tip's group.
``TipGroup`` is one threat: its lead tip (the one whose alert chain is being worked), the
highest severity and the life-safety reasons already alerted, and how many later tips were
folded into it since the last "N more tips" notice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from tipline.db import Base, UTCDateTime, new_uid, utcnow


class TipGroup(Base):
    __tablename__ = "tip_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uid)
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"), index=True)
    district_id: Mapped[int | None] = mapped_column(ForeignKey("districts.id"), index=True)
    # The tip whose alert chain the group's later tips add to (the first alerted one).
    lead_tip_id: Mapped[int | None] = mapped_column(ForeignKey("tips.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    newest_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    tip_count: Mapped[int] = mapped_column(Integer, default=0)
    # Highest severity that alerted, and the keyed digests of life-safety reasons alerted.
    alerted_severity: Mapped[int] = mapped_column(Integer, default=0)
    alerted_signals: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Tips folded in since the last "N more tips" notice, and when that notice went out.
    unnoticed: Mapped[int] = mapped_column(Integer, default=0, index=True)
    last_notice_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TipSignature(Base):
    __tablename__ = "tip_signatures"

    tip_id: Mapped[int] = mapped_column(ForeignKey("tips.id", ondelete="CASCADE"),
                                        primary_key=True)
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    minhash: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer, default=0)
    signals: Mapped[list[str]] = mapped_column(JSON, default=list)
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("tip_groups.id", ondelete="SET NULL"), index=True)
    # Folded into its group's alert chain instead of starting its own.
    folded: Mapped[bool] = mapped_column(Boolean, default=False)
    # Staff split it out of its group: grouping never puts it back.
    split: Mapped[bool] = mapped_column(Boolean, default=False)
    # Grouping has looked at it (at routing, or when a voice transcript came).
    grouped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Revision 0017: a school's signatures in the grouping window, newest first (the surge
    # search), read from one index instead of combining the school's and the window's.
    __table_args__ = (Index("ix_tip_signatures_school_created", "school_id", "created_at"),)

    def as_dict(self) -> dict[str, Any]:
        return {"tip_id": self.tip_id, "group_id": self.group_id, "folded": self.folded}
