"""Factories for directory rows and tips (tips go through the real intake service)."""

from __future__ import annotations

import factory
from sqlalchemy.orm import Session

from tipline.crypto import Vault
from tipline.directory.models import Contact, District, School
from tipline.intake.services import Receipt, TipSubmission, create_tip
from tipline.jobs import JobQueue
from tipline.tips.models import Category, Channel, Severity


class DistrictFactory(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        model = District
        sqlalchemy_session_persistence = "flush"

    code = factory.Sequence(lambda n: f"d{n}")
    name = factory.Sequence(lambda n: f"District {n}")
    timezone = "America/Chicago"
    hotline_text = "Hotline (314) 555-0199"


class SchoolFactory(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        model = School
        sqlalchemy_session_persistence = "flush"

    code = factory.Sequence(lambda n: f"s{n}")
    name = factory.Sequence(lambda n: f"School {n}")
    district = factory.SubFactory(DistrictFactory)


class ContactFactory(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        model = Contact
        sqlalchemy_session_persistence = "flush"

    key = factory.Sequence(lambda n: f"c{n}")
    name = factory.Sequence(lambda n: f"Contact {n}")
    role = "counselor"
    sms_number = factory.Sequence(lambda n: f"+1314555{(100 + n % 100):04d}")


def bind(session: Session) -> None:
    for f in (DistrictFactory, SchoolFactory, ContactFactory):
        f._meta.sqlalchemy_session = session


def make_tip(
    session: Session,
    vault: Vault,
    queue: JobQueue,
    body: str = "Someone said they will bring a knife on Friday",
    school_code: str | None = None,
    category: Category = Category.THREAT,
    severity: Severity = Severity.HIGH,
    channel: Channel = Channel.WEB,
    **kw: object,
) -> Receipt:
    sub = TipSubmission(channel=channel, body=body, category=category, severity=severity,
                        school_code=school_code, **kw)  # type: ignore[arg-type]
    return create_tip(session, vault, queue, sub)
