from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from tests.factories import make_tip
from tipline.intake.services import AttachmentIn, IntakeError, TipSubmission, create_tip
from tipline.routing.models import JobStatus, RoutingJob
from tipline.tips.models import Category, Channel, Severity, Tip
from tipline.tips.receipts import RECEIPT_PURPOSE, normalize_code

BODY = "QUOKKA-7731 says he will bring his dad's pistol to Roosevelt on Friday"


def test_tip_sealed_stored_with_job_and_sent_only_after_commit(
    db_session, vault, queue, demo_directory
) -> None:
    receipt = make_tip(db_session, vault, queue, body=BODY, school_code="slps-roosevelt",
                       details={"where": "locker 311 QUOKKA"})
    assert queue.sent == []  # nothing is sent before the commit
    db_session.commit()
    assert queue.sent == [("tipline.route_job", (receipt.job_id,))]
    tip = db_session.get(Tip, receipt.tip_id)
    assert tip.messages[0].body == BODY
    assert json.loads(tip.details_json)["where"] == "locker 311 QUOKKA"
    job = db_session.get(RoutingJob, receipt.job_id)
    assert job.status == JobStatus.PENDING.value and job.tip_id == tip.id
    # Nothing readable in the database rows themselves.
    raw = db_session.execute(text("SELECT body_ct FROM messages WHERE tip_id=:t"),
                             {"t": tip.id}).scalar_one()
    assert b"QUOKKA" not in bytes(raw)


def test_rollback_sends_nothing(db_session, vault, queue, demo_directory) -> None:
    make_tip(db_session, vault, queue, school_code="slps-roosevelt")
    db_session.rollback()
    assert queue.sent == []


def test_receipt_code_stored_only_as_keyed_hash(db_session, vault, queue, demo_directory) -> None:
    receipt = make_tip(db_session, vault, queue)
    db_session.flush()
    tip = db_session.get(Tip, receipt.tip_id)
    norm = normalize_code(receipt.receipt_code)
    assert tip.receipt_hash == vault.lookup_hash(RECEIPT_PURPOSE, norm)
    assert norm not in tip.receipt_hash
    assert len(norm) == 16  # 80 bits in Crockford base32


def test_danger_now_and_triage_floor_raise_never_lower(db_session, vault, queue) -> None:
    r1 = make_tip(db_session, vault, queue, severity=Severity.LOW, danger_now=True)
    sub = TipSubmission(channel=Channel.SMS, body="x", severity=Severity.HIGH)
    r2 = create_tip(db_session, vault, queue, sub, severity_floor=Severity.LOW)
    db_session.flush()
    assert db_session.get(Tip, r1.tip_id).severity == Severity.LIFE_SAFETY
    assert db_session.get(Tip, r2.tip_id).severity == Severity.HIGH


def test_bad_input_raises_clear_errors(db_session, vault, queue) -> None:
    with pytest.raises(IntakeError, match="empty"):
        make_tip(db_session, vault, queue, body="   ")
    with pytest.raises(IntakeError, match="too long"):
        make_tip(db_session, vault, queue, body="x" * 10_001)
    with pytest.raises(IntakeError, match="unknown school"):
        make_tip(db_session, vault, queue, school_code="nope")


def test_provider_retry_with_same_external_id_is_rejected(db_session, vault, queue) -> None:
    make_tip(db_session, vault, queue, channel=Channel.SMS, external_id="SM" + "a" * 32)
    db_session.commit()
    with pytest.raises(IntegrityError):
        make_tip(db_session, vault, queue, channel=Channel.SMS, external_id="SM" + "a" * 32)
    db_session.rollback()
    n = db_session.execute(select(Tip).where(Tip.external_id == "SM" + "a" * 32)).scalars().all()
    assert len(n) == 1


def test_attachment_and_phone_sealed(db_session, vault, queue) -> None:
    r = make_tip(db_session, vault, queue, channel=Channel.SMS, phone="+13145550177",
                 attachments=[AttachmentIn("image", "image/png", b"\x89PNG-pixels")],
                 category=Category.BULLYING)
    db_session.flush()
    tip = db_session.get(Tip, r.tip_id)
    assert tip.phone == "+13145550177"
    assert tip.phone_hash == vault.lookup_hash("phone", "+13145550177")
    assert tip.attachments[0].data == b"\x89PNG-pixels"
    raw = db_session.execute(text("SELECT phone_ct FROM tips WHERE id=:i"), {"i": tip.id}).scalar()
    assert b"5550177" not in bytes(raw)


def test_shredding_the_data_key_makes_content_unrecoverable(db_session, vault, queue) -> None:
    from tipline.crypto import KeyUnavailable

    r = make_tip(db_session, vault, queue, body=BODY)
    db_session.flush()
    tip = db_session.get(Tip, r.tip_id)
    key = tip.data_key
    tip.data_key = None
    db_session.delete(key)
    db_session.flush()
    db_session.expire_all()
    tip = db_session.get(Tip, r.tip_id)
    with pytest.raises(KeyUnavailable):
        _ = tip.messages[0].body
