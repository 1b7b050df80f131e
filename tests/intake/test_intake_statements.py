"""What one web tip costs the database: a fixed, small number of statements, with the surge
signature written by the same statement as the tip (docs/performance.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import recorded_statements
from tests.factories import make_tip
from tests.keysupport import reader
from tipline.directory.models import School
from tipline.surge import services as surge
from tipline.surge.models import TipSignature
from tipline.tips.models import Tip


@contextmanager
def _statements(session: Any) -> Iterator[list[str]]:
    """``recorded_statements`` without the test transaction's savepoints; filled when the
    block ends."""
    mine: list[str] = []
    with recorded_statements(session.get_bind()) as seen:
        yield mine
    mine.extend(s for s in seen if not s.startswith(("SAVEPOINT", "RELEASE")))


@pytest.fixture
def sealed_slps(db_session: Any, vault: Any, demo_directory: Any) -> None:
    reader(db_session, vault, "slps")
    db_session.commit()


def test_a_sealed_web_tip_takes_one_statement_with_its_signature(
        db_session, vault, queue, sealed_slps) -> None:
    school = db_session.execute(
        select(School).where(School.code == "slps-roosevelt")).scalar_one()
    place = (school.id, school.district_id)  # as the web form passes it (its school cache)
    make_tip(db_session, vault, queue, school_code=school.code, school_ref=place)  # caches
    db_session.commit()
    with _statements(db_session) as seen:
        r = make_tip(db_session, vault, queue, school_code=school.code, school_ref=place,
                     body="He said he will bring a gun to the bus stop on Friday")
    db_session.commit()
    # One insert of the key, the tip, its message, its routing job and its surge signature,
    # which checks that the policy's head and the audience's read keys are those the first
    # tip read (the first tip read them in a statement of their own).
    assert len(seen) == 1, seen
    assert "routing_policies" in seen[0] and "read_keys" in seen[0]
    assert "tip_signatures" in seen[0] and "routing_jobs" in seen[0]
    sig = db_session.get(TipSignature, r.tip_id)
    tip = db_session.get(Tip, r.tip_id)
    assert sig is not None and sig.size > 0 and sig.signals
    assert sig.school_id == tip.school_id
    assert len(sig.minhash) == 128


def test_a_failed_signature_costs_no_tip(db_session, vault, queue, sealed_slps,
                                          monkeypatch) -> None:
    def broken(*_args: Any, **_kw: Any) -> Any:
        raise RuntimeError("signature")

    monkeypatch.setattr(surge, "signature_row", broken)
    r = make_tip(db_session, vault, queue, school_code="slps-roosevelt")
    db_session.commit()
    assert db_session.get(Tip, r.tip_id) is not None
    assert db_session.get(TipSignature, r.tip_id) is None



def test_a_key_rotated_between_two_tips_seals_the_second_to_the_new_key(
        db_session, vault, queue, sealed_slps) -> None:
    """The second tip is sealed from the audience the first one read; its insert finds the
    district's key retired and a new one active, inserts nothing, and the tip is sealed again
    from a fresh read: one tip, with a slot for the new key only (3 statements)."""
    import json

    from tipline.crypto.models import Owner, ReadKey
    from tipline.crypto.sealing import new_private_key, public_bytes
    from tipline.db import utcnow
    from tipline.directory.models import District

    school = db_session.execute(
        select(School).where(School.code == "slps-roosevelt")).scalar_one()
    place = (school.id, school.district_id)
    make_tip(db_session, vault, queue, school_code=school.code, school_ref=place)
    db_session.commit()
    old = db_session.execute(select(ReadKey).where(
        ReadKey.owner == Owner.DISTRICT.value, ReadKey.owner_id == school.district_id,
        ReadKey.retired_at.is_(None))).scalar_one()
    old.retired_at = utcnow()
    new = ReadKey(owner=Owner.DISTRICT.value, owner_id=school.district_id, key_id="rotated",
                  public_key=public_bytes(new_private_key()))
    db_session.add(new)
    db_session.commit()
    tips_before = db_session.query(Tip).count()
    with _statements(db_session) as seen:
        r = make_tip(db_session, vault, queue, school_code=school.code, school_ref=place)
    db_session.commit()
    assert len(seen) == 3, seen  # guarded insert (nothing), head and keys, insert
    assert db_session.query(Tip).count() == tips_before + 1
    tip = db_session.get(Tip, r.tip_id)
    rids = [s["rid"] for s in json.loads(tip.data_key.slots)["slots"]]
    assert new.rid in rids and old.rid not in rids
    assert db_session.get(TipSignature, r.tip_id) is not None
    assert db_session.get(District, school.district_id) is not None
    # The next tip is sealed from the new audience again, in one statement.
    with _statements(db_session) as again:
        make_tip(db_session, vault, queue, school_code=school.code, school_ref=place)
    db_session.commit()
    assert len(again) == 1, again
