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


def test_a_sealed_web_tip_takes_two_statements_with_its_signature(
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
    # The policy's head row with the audience's read keys, and one insert of the key, the
    # tip, its message, its routing job and its surge signature.
    assert len(seen) == 2, seen
    assert "routing_policies" in seen[0] and "read_keys" in seen[0]
    assert "tip_signatures" in seen[-1] and "routing_jobs" in seen[-1]
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

