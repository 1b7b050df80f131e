"""audience_keys: the district's active read key plus routed agencies' keys, or nothing."""

from __future__ import annotations

from tipline.crypto import audience_keys
from tipline.crypto.models import ReadKey
from tipline.crypto.sealing import new_private_key, public_bytes
from tipline.db import utcnow


def _key(session, owner: str, owner_id: int, key_id: str = "k1", retired: bool = False):
    row = ReadKey(owner=owner, owner_id=owner_id, key_id=key_id,
                  public_key=public_bytes(new_private_key()),
                  retired_at=utcnow() if retired else None)
    session.add(row)
    session.flush()
    return row


def test_no_district_key_means_legacy_mode(db_session) -> None:
    district_id = 40
    _key(db_session, "agency", 7)
    assert audience_keys(db_session, district_id, [7]) == []
    assert audience_keys(db_session, None, [7]) == []


def test_district_and_routed_agencies(db_session) -> None:
    d = _key(db_session, "district", 41)
    _key(db_session, "district", 41, "k0", retired=True)
    a = _key(db_session, "agency", 5)
    _key(db_session, "agency", 6)
    _key(db_session, "district", 42)
    got = audience_keys(db_session, 41, [5])
    assert [r.rid for r in got] == [d.rid, a.rid] == ["district:41:k1", "agency:5:k1"]
    assert got[0].public == d.public_key
    assert [r.rid for r in audience_keys(db_session, 41)] == ["district:41:k1"]
