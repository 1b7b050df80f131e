"""Staff accounts: roles, school scope, Argon2id password hash, sealed TOTP secret."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Column, ForeignKey, Integer, LargeBinary, String, Table, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tipline import crypto
from tipline.db import Base, UTCDateTime, new_uid, utcnow
from tipline.directory.models import School
from tipline.tips.models import DataKey

staff_schools = Table(
    "staff_schools",
    Base.metadata,
    Column("user_id", ForeignKey("staff_users.id", ondelete="CASCADE"), primary_key=True),
    Column("school_id", ForeignKey("schools.id", ondelete="CASCADE"), primary_key=True),
)


class Role(enum.StrEnum):
    DISTRICT_ADMIN = "district_admin"
    SCHOOL_STAFF = "school_staff"
    POLICE_LIAISON = "police_liaison"
    AUDITOR = "auditor"
    # No district: the installation-wide settings (the whole routing policy). Reads no tip.
    INSTALLATION_ADMIN = "installation_admin"


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uid)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))
    district_id: Mapped[int | None] = mapped_column(ForeignKey("districts.id"))
    # A police liaison sees exactly the tips whose alert was sent to this contact.
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    password_hash: Mapped[str] = mapped_column(String(200))
    # The password was chosen by someone else (an administrator's one-time password, one typed
    # at the command line): after signing in, nothing but the change-password page is shown.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False,
                                                       server_default=false())
    # A one-time password stops signing in at this time, or once a sign-in has used it.
    password_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_secret_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    data_key_id: Mapped[int | None] = mapped_column(ForeignKey("data_keys.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped by "sign out everywhere"; sessions carry the value they were issued with.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    # Set after too many failed sign-ins; the account refuses sign-in until then.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    schools: Mapped[list[School]] = relationship(secondary=staff_schools)
    data_key: Mapped[DataKey | None] = relationship()

    # -- Flask-Login's user protocol (the id carries the session version) ----------------------
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return bool(self.active)

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    @property
    def totp_secret(self) -> str | None:
        if self.totp_secret_ct is None or self.data_key is None:
            return None
        ad = crypto.field_ad(self.__tablename__, "totp_secret_ct", self.uid)
        return crypto.current().open_text(self.data_key.plaintext_key(), self.totp_secret_ct, ad)

    def set_totp_secret(self, secret: str | None, data_key: DataKey) -> None:
        if self.uid is None:
            self.uid = new_uid()
        self.data_key = data_key
        if secret is None:
            self.totp_secret_ct = None
            return
        ad = crypto.field_ad(self.__tablename__, "totp_secret_ct", self.uid)
        self.totp_secret_ct = crypto.current().seal_text(data_key.plaintext_key(), secret, ad)
