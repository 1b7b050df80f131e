"""A tip that names no district yet is sealed to every district's key in one statement, with
the same recipients, in the same order, as asking ``audience_keys`` district by district."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import recorded_statements
from tipline import crypto
from tipline.crypto.models import Owner, ReadKey
from tipline.db import utcnow
from tipline.directory.models import District, PoliceAgency
from tipline.routing.audience import district_audience


def _per_district(session: Session, agency_ids: list[int]) -> list[Any]:
    """The answer as it was computed before: one audience_keys query per district."""
    out: list[Any] = []
    for did in session.execute(select(District.id).order_by(District.id)).scalars():
        keys = crypto.audience_keys(session, did, agency_ids)
        if not keys:
            return []
        out.extend(k for k in keys if k not in out)
    return out


def _key(session: Session, owner: Owner, owner_id: int, key_id: str,
         retired: bool = False) -> None:
    session.add(ReadKey(owner=owner.value, owner_id=owner_id, key_id=key_id,
                        public_key=os.urandom(32), retired_at=utcnow() if retired else None))
    session.flush()


@pytest.fixture(params=["postgresql", "sqlite"])
def session(request: pytest.FixtureRequest) -> Iterator[Session]:
    if request.param == "postgresql":
        yield request.getfixturevalue("db_session")
        return
    db = request.getfixturevalue("sqlite_demo_db")
    with db.session() as s:
        yield s
        s.rollback()


def _ids(session: Session) -> tuple[list[int], list[int]]:
    districts = list(session.execute(select(District.id).order_by(District.id)).scalars())
    agencies = list(session.execute(select(PoliceAgency.id).order_by(PoliceAgency.id)).scalars())
    return districts, agencies


def test_every_district_audience_matches_the_per_district_answer(session: Session,
                                                                 request: Any) -> None:
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        request.getfixturevalue("demo_directory")
    districts, agencies = _ids(session)
    assert len(districts) >= 2 and agencies, "the demo directory has two districts and police"

    # No district has a key: legacy mode for every district.
    assert district_audience(session, None, agencies) == [] == _per_district(session, agencies)

    # Only the first district has one: still [] (a district without a key cannot read it).
    _key(session, Owner.DISTRICT, districts[0], "d0-old", retired=True)
    _key(session, Owner.DISTRICT, districts[0], "d0")
    assert district_audience(session, None, agencies) == []

    for did in districts[1:]:
        _key(session, Owner.DISTRICT, did, f"d{did}")
    _key(session, Owner.AGENCY, agencies[0], "a0-retired", retired=True)
    _key(session, Owner.AGENCY, agencies[0], "a0")
    # Two active keys of one owner (a rotation caught half way): the newest wins, both ways.
    _key(session, Owner.DISTRICT, districts[-1], "dlast-newer")

    for asked in ([], agencies[:1], agencies, [agencies[0], agencies[0]]):
        mine = district_audience(session, None, asked)
        assert mine == _per_district(session, asked)
        rids = [r.rid for r in mine]
        assert len(rids) == len(set(rids))
        assert not any("retired" in r or r.endswith(":d0-old") for r in rids)
        assert f"district:{districts[-1]}:dlast-newer" in rids
        assert (f"agency:{agencies[0]}:a0" in rids) == bool(asked)


def test_a_tip_naming_no_district_reads_every_key_in_one_statement(db_session: Session,
                                                                   demo_directory: Any) -> None:
    districts, agencies = _ids(db_session)
    for did in districts:
        _key(db_session, Owner.DISTRICT, did, f"d{did}")
    _key(db_session, Owner.AGENCY, agencies[0], "a0")
    connection = db_session.connection()
    with recorded_statements(connection) as seen:
        keys = district_audience(db_session, None, agencies[:1])
    assert len(keys) == len(districts) + 1
    assert len(seen) == 1, seen
