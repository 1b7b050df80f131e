"""Who a new tip's data key is sealed to: the current public read keys of its audience."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from tipline.crypto.models import Owner, ReadKey
from tipline.crypto.sealing import Recipient


def audience_keys(session: Session, district_id: int | None,
                  agency_ids: Iterable[int] = ()) -> list[Recipient]:
    """The district's active read key, plus each listed agency's active key.

    Empty when the district has no read key yet (legacy mode: the caller keeps the key-file
    slot, and the tip stays readable as before sealing). An agency without a key adds nothing.
    """
    if district_id is None:
        return []
    agencies = sorted(set(agency_ids))
    cond = and_(ReadKey.owner == Owner.DISTRICT.value, ReadKey.owner_id == district_id)
    if agencies:
        cond = or_(cond, and_(ReadKey.owner == Owner.AGENCY.value,
                              ReadKey.owner_id.in_(agencies)))
    rows = session.execute(
        select(ReadKey).where(cond, ReadKey.retired_at.is_(None)).order_by(ReadKey.id)
    ).scalars().all()
    if not any(r.owner == Owner.DISTRICT.value for r in rows):
        return []
    # One active key per owner; if two are somehow active, the newest wins.
    newest: dict[tuple[str, int], ReadKey] = {}
    for row in rows:
        newest[(row.owner, row.owner_id)] = row
    district = [r for r in newest.values() if r.owner == Owner.DISTRICT.value]
    agency = [r for r in newest.values() if r.owner == Owner.AGENCY.value]
    return [r.recipient() for r in (*district, *agency)]
