"""Who a new tip's data key is sealed to: the current public read keys of its audience."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.orm import Session

from tipline.crypto.models import Owner, ReadKey
from tipline.crypto.sealing import Recipient

# The active read keys of one district and a list of agencies (an empty list renders as no
# match), as plain columns with the key's row id for ordering; ``routing.audience`` reads them
# in the same statement as the active policy's head.
ACTIVE_KEY_ROWS = (
    select(ReadKey.id, ReadKey.owner, ReadKey.owner_id, ReadKey.key_id, ReadKey.public_key)
    .where(ReadKey.retired_at.is_(None),
           or_(and_(ReadKey.owner == Owner.DISTRICT.value,
                    ReadKey.owner_id == bindparam("district")),
               and_(ReadKey.owner == Owner.AGENCY.value,
                    ReadKey.owner_id.in_(bindparam("agencies", expanding=True)))))
)
# One statement for every tip, built once: its rows are plain columns, not ORM objects, which
# halved the CPU of this lookup at intake.
_ACTIVE_KEYS = ACTIVE_KEY_ROWS.order_by(ReadKey.id)


def audience_keys(session: Session, district_id: int | None,
                  agency_ids: Iterable[int] = ()) -> list[Recipient]:
    """The district's active read key, plus each listed agency's active key.

    Empty when the district has no read key yet (legacy mode: the caller keeps the key-file
    slot, and the tip stays readable as before sealing). An agency without a key adds nothing.
    """
    if district_id is None:
        return []
    rows = session.connection().execute(
        _ACTIVE_KEYS, {"district": district_id, "agencies": sorted(set(agency_ids))}).all()
    return recipients_from_rows(((o, i, k, p) for _id, o, i, k, p in rows), district_id,
                                None)


def recipients_from_rows(rows: Iterable[Sequence[Any]], district_id: int,
                         agency_ids: Iterable[int] | None) -> list[Recipient]:
    """``audience_keys``' answer from its rows (owner, owner id, key id, public key; in key row
    order), keeping only the agencies in ``agency_ids`` (None: every agency row)."""
    wanted = None if agency_ids is None else set(agency_ids)
    # One active key per owner; if two are somehow active, the newest wins.
    newest: dict[tuple[str, int], Recipient] = {}
    for owner, owner_id, key_id, public in rows:
        if owner == Owner.AGENCY.value and wanted is not None and owner_id not in wanted:
            continue
        newest[(owner, owner_id)] = Recipient(f"{owner}:{owner_id}:{key_id}", bytes(public))
    district = newest.get((Owner.DISTRICT.value, district_id))
    if district is None:
        return []
    agencies = [r for (owner, _id), r in newest.items() if owner == Owner.AGENCY.value]
    return [district, *agencies]
