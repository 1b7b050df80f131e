"""A small world for dashboard tests: tips in two districts, one account per role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tests.factories import make_tip
from tests.staffsupport import make_staff
from tipline.accounts.models import StaffUser
from tipline.crypto import Vault
from tipline.db import utcnow
from tipline.directory.models import Contact
from tipline.intake.services import AttachmentIn
from tipline.jobs import RecordingQueue
from tipline.routing.models import Dispatch
from tipline.tips.models import Category, Channel, Severity, Tip

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


@dataclass
class Account:
    user: StaffUser
    password: str
    secret: str


@dataclass
class World:
    tips: dict[str, Tip]
    admin: Account
    county_admin: Account
    staff: Account  # Roosevelt only
    liaison: Account  # county police liaison
    auditor: Account


def contact_id(session: Session, key: str) -> int:
    return session.execute(select(Contact.id).where(Contact.key == key)).scalar_one()


def dispatch_to(session: Session, tip: Tip, job_id: int, key: str) -> Dispatch:
    d = Dispatch(job_id=job_id, tip_id=tip.id, contact_id=contact_id(session, key),
                 rule="test-rule", channels=["sms"], status="active")
    session.add(d)
    session.flush()
    return d


@pytest.fixture
def world(db_session: Session, vault: Vault, queue: RecordingQueue,
          demo_directory: Any) -> World:
    def tip(name: str, school: str | None, **kw: Any) -> Tip:
        receipt = make_tip(db_session, vault, queue, school_code=school, **kw)
        row = db_session.get(Tip, receipt.tip_id)
        assert row is not None
        row.__dict__["_job_id"] = receipt.job_id
        return row

    tips = {
        "roosevelt": tip("roosevelt", "slps-roosevelt", body="Roosevelt tip about a fight"),
        "soldan": tip("soldan", "slps-soldan", body="Soldan tip about bullying",
                      category=Category.BULLYING, severity=Severity.MEDIUM),
        "county": tip("county", "cty-northview", body="Northview weapon tip",
                      category=Category.WEAPON, severity=Severity.HIGH),
        "county_other": tip("county_other", "cty-riverbend", body="Riverbend threat tip"),
        "abuse": tip("abuse", "slps-roosevelt", body="A student said a parent hits them",
                     category=Category.ABUSE, severity=Severity.HIGH),
        "sms": tip("sms", "slps-roosevelt", body="sms tip text", channel=Channel.SMS,
                   phone="+13145559876", receipt_kind="digits"),
        "picture": tip("picture", "slps-roosevelt", body="see the picture",
                       attachments=[AttachmentIn("image", "image/png", PNG)]),
    }
    dispatch_to(db_session, tips["county"], tips["county"].__dict__["_job_id"], "stlco-liaison")
    db_session.flush()
    queue.sent.clear()
    return World(
        tips=tips,
        admin=Account(*make_staff(db_session, vault, "district_admin", district="slps")),
        county_admin=Account(*make_staff(db_session, vault, "district_admin",
                                         district="stlco-demo")),
        staff=Account(*make_staff(db_session, vault, "school_staff",
                                  schools=["slps-roosevelt"])),
        liaison=Account(*make_staff(db_session, vault, "police_liaison",
                                    contact="stlco-liaison")),
        auditor=Account(*make_staff(db_session, vault, "auditor")),
    )


def age(session: Session, tip: Tip, minutes: int) -> None:
    session.execute(update(Tip).where(Tip.id == tip.id)
                    .values(created_at=utcnow() - timedelta(minutes=minutes)))
    session.expire(tip)
