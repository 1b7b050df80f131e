"""Districts, schools, police agencies and the contacts who receive alerts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Date, ForeignKey, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tipline.db import Base, UTCDateTime, utcnow

contact_schools = Table(
    "contact_schools",
    Base.metadata,
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
    Column("school_id", ForeignKey("schools.id", ondelete="CASCADE"), primary_key=True),
)

# Which districts a police agency serves (the St. Louis County police serve several). A district
# administrator may attach a contact only to an agency tied to their district.
agency_districts = Table(
    "agency_districts",
    Base.metadata,
    Column("agency_id", ForeignKey("police_agencies.id", ondelete="CASCADE"), primary_key=True),
    Column("district_id", ForeignKey("districts.id", ondelete="CASCADE"), primary_key=True),
)


class District(Base):
    __tablename__ = "districts"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="America/Chicago")
    # Shown to reporters (e.g. a hotline number); never used to send anything.
    hotline_text: Mapped[str] = mapped_column(String(200), default="")
    police_involvement: Mapped[str] = mapped_column(String(40), default="limited")

    schools: Mapped[list[School]] = relationship(
        back_populates="district", order_by="School.name"
    )
    contacts: Mapped[list[Contact]] = relationship(back_populates="district")


class School(Base):
    __tablename__ = "schools"

    id: Mapped[int] = mapped_column(primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), index=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Other names students use ("Roosevelt", "RHS"), comma separated; for SMS matching.
    aliases: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    district: Mapped[District] = relationship(back_populates="schools")


class PoliceAgency(Base):
    __tablename__ = "police_agencies"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    non_emergency_text: Mapped[str] = mapped_column(String(200), default="")

    districts: Mapped[list[District]] = relationship(secondary=agency_districts,
                                                     order_by="District.code")


class Contact(Base):
    """A person or desk that can be alerted. Numbers are staff numbers set by an admin."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)
    district_id: Mapped[int | None] = mapped_column(ForeignKey("districts.id"), index=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("police_agencies.id"))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(40))
    sms_number: Mapped[str | None] = mapped_column(String(20))
    voice_number: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    # {"tz": "...", "windows": [{"days": "mon-fri", "start": "07:00", "end": "17:00"}]}
    on_call: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    priority: Mapped[int] = mapped_column(Integer, default=100)
    # Revision 0014. "staff" (the district's own people) or "partner" (an outside
    # organisation: a crisis line, an interpreter service). A partner receives only what
    # ``agreement`` allows (``tipline.directory.partners``); staff are unaffected by it.
    kind: Mapped[str] = mapped_column(String(20), default="staff")
    agreement: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Languages the contact can answer a reporter in, comma separated ("bs,en").
    languages: Mapped[str] = mapped_column(String(60), default="")

    district: Mapped[District | None] = relationship(back_populates="contacts")
    agency: Mapped[PoliceAgency | None] = relationship()
    schools: Mapped[list[School]] = relationship(secondary=contact_schools)


class OnCallRota(Base):
    """Who of a district answers at a given hour: people taking weekly or nightly turns, with
    swaps and holidays, in the district's time zone (``tipline.directory.rotas``). A policy
    target ``{rota: KEY}`` alerts whoever is on call when the tip arrives. Revision 0014."""

    __tablename__ = "oncall_rotas"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    turn: Mapped[str] = mapped_column(String(10), default="weekly")  # weekly | nightly
    handover: Mapped[str] = mapped_column(String(5), default="17:00")  # local "HH:MM"
    starts_on: Mapped[date] = mapped_column(Date)  # the first turn's first day
    members: Mapped[list[str]] = mapped_column(JSON, default=list)  # contact keys in turn
    # [{"from": "2026-12-07", "to": "2026-12-13", "contact": KEY}]: that turn's days go to
    # KEY (a swap); [{"date": "2026-12-24", "contact": KEY | null}]: a holiday and its cover.
    swaps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    holidays: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    district: Mapped[District] = relationship()
