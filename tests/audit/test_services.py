from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tipline.audit.services import GENESIS, record, verify_chain


def test_chain_links_and_verifies(db_session) -> None:
    a = record(db_session, "tip.view", actor="user:1", actor_user_id=1, tip_id=7,
               object_type="tip", object_id="T-AAAA-BB")
    b = record(db_session, "tip.status", actor="user:1", tip_id=7, detail={"to": "closed"})
    assert a.prev_hash == GENESIS or len(a.prev_hash) == 64
    assert b.prev_hash == a.entry_hash
    report = verify_chain(db_session)
    assert report.ok and report.checked >= 2


def test_database_refuses_update_and_delete(db_session) -> None:
    ev = record(db_session, "tip.view", actor="user:1", tip_id=1)
    db_session.flush()
    with pytest.raises(DBAPIError, match="append-only"), db_session.begin_nested():
        db_session.execute(text("UPDATE audit_events SET action='x' WHERE id=:i"), {"i": ev.id})
    with pytest.raises(DBAPIError, match="append-only"), db_session.begin_nested():
        db_session.execute(text("DELETE FROM audit_events WHERE id=:i"), {"i": ev.id})


def test_tampering_by_someone_with_database_access_is_detected(db_session) -> None:
    record(db_session, "tip.view", actor="user:1", tip_id=1)
    victim = record(db_session, "tip.export", actor="user:2", tip_id=2)
    record(db_session, "tip.view", actor="user:3", tip_id=3)
    db_session.flush()
    # An attacker with DB rights can switch the trigger off; the hash chain still catches it.
    db_session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    db_session.execute(text("UPDATE audit_events SET actor='user:9' WHERE id=:i"),
                       {"i": victim.id})
    db_session.expire_all()
    report = verify_chain(db_session)
    assert not report.ok and report.first_bad_id == victim.id


def test_deleted_row_breaks_the_chain(db_session) -> None:
    record(db_session, "a", actor="cli")
    gone_id = record(db_session, "b", actor="cli").id
    record(db_session, "c", actor="cli")
    db_session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    db_session.execute(text("DELETE FROM audit_events WHERE id=:i"), {"i": gone_id})
    db_session.expire_all()
    report = verify_chain(db_session)
    assert not report.ok and "previous hash" in report.reason
    left = db_session.execute(text("SELECT count(*) FROM audit_events WHERE id=:i"),
                              {"i": gone_id}).scalar()
    assert left == 0
