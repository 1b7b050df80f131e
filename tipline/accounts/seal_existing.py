"""The migration to sealing: re-wrap every tip data key for its audience, then drop the
key-file slot (``tipline keys seal-existing``).

For each data key that still has a key-file slot and belongs to a tip (the tip's own key, or
the per-item key of a message, attachment, transcript or note), sealed slots are added for
the tip's district read key and, when the tip was routed to police, for that agency's key;
then the key-file slot is removed. Staff accounts' keys (their TOTP secrets) are not tip data
and keep their key-file slot. Batches commit one by one with a compare-and-set on the slots,
so the command can be interrupted and run again, and a second run changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tipline.accounts.models import StaffUser
from tipline.crypto import SEALED_ONLY, Recipient, Vault, audience_keys
from tipline.directory.models import Contact
from tipline.tips.models import Attachment, DataKey, Message, Note, Tip


@dataclass
class SealReport:
    sealed: int = 0
    # Tips whose district has no read key yet (no staff member signed up): left as they are.
    no_district_key: int = 0
    # Keys with a key-file slot that belong to no tip (staff accounts' keys are not counted).
    not_tip_data: int = 0
    by_audience: dict[str, int] = field(default_factory=dict)


def _owner_tip_ids(session: Session, keys: list[DataKey]) -> dict[int, int]:
    """data key id -> tip id, for the tips' own keys and per-item keys."""
    out: dict[int, int] = {}
    ids = [k.id for k in keys]
    for tip_id, key_id in session.execute(
            select(Tip.id, Tip.data_key_id).where(Tip.data_key_id.in_(ids))):
        if key_id is not None:
            out[key_id] = tip_id
    by_uid = {k.uid: k.id for k in keys}
    for model in (Message, Attachment, Note):
        for column in ("data_key_uid", "transcript_key_uid"):
            col = getattr(model, column, None)
            if col is None:
                continue
            for tip_id, uid in session.execute(
                    select(model.tip_id, col).where(col.in_(list(by_uid)))):
                out[by_uid[uid]] = tip_id
    return out


def _agency_ids(session: Session, tip_id: int) -> list[int]:
    from tipline.routing.models import Dispatch

    rows = session.execute(
        select(Contact.agency_id).join(Dispatch, Dispatch.contact_id == Contact.id)
        .where(Dispatch.tip_id == tip_id, Contact.agency_id.is_not(None)).distinct()
    ).scalars()
    return sorted(int(a) for a in rows if a is not None)


def _candidates(session: Session, after_id: int, batch: int) -> list[DataKey]:
    staff_keys = select(StaffUser.data_key_id).where(StaffUser.data_key_id.is_not(None))
    return list(session.execute(
        select(DataKey).where(DataKey.kek_id != SEALED_ONLY, DataKey.id > after_id,
                              DataKey.id.not_in(staff_keys))
        .order_by(DataKey.id).limit(batch)
    ).scalars())


def count_pending(session: Session) -> int:
    from sqlalchemy import func

    staff_keys = select(StaffUser.data_key_id).where(StaffUser.data_key_id.is_not(None))
    return int(session.execute(
        select(func.count(DataKey.id)).where(DataKey.kek_id != SEALED_ONLY,
                                             DataKey.id.not_in(staff_keys))
    ).scalar_one())


def seal_existing(sessions: Callable[[], Any], vault: Vault, *, batch: int = 200,
                  dry_run: bool = False,
                  progress: Callable[[int], None] = lambda n: None) -> SealReport:
    """Seal every tip data key to its audience and drop its key-file slot; see the module."""
    report = SealReport()
    last_id = 0
    while True:
        with sessions() as session:
            keys = _candidates(session, last_id, batch)
            if not keys:
                break
            owners = _owner_tip_ids(session, keys)
            audiences: dict[int, list[Recipient]] = {}
            for key in keys:
                last_id = key.id
                tip_id = owners.get(key.id)
                if tip_id is None:
                    report.not_tip_data += 1
                    continue
                if tip_id not in audiences:
                    tip = session.get(Tip, tip_id)
                    audiences[tip_id] = [] if tip is None else audience_keys(
                        session, tip.district_id, _agency_ids(session, tip_id))
                audience = audiences[tip_id]
                if not audience:
                    report.no_district_key += 1
                    continue
                label = "+".join(r.rid.rsplit(":", 1)[0] for r in audience)
                report.by_audience[label] = report.by_audience.get(label, 0) + 1
                report.sealed += 1
                if dry_run:
                    continue
                wrapped = key.wrapped()
                dek = vault.unwrap(wrapped)
                sealed = vault.remove_kek_slots(vault.add_recipients(dek, wrapped, audience))
                session.execute(
                    update(DataKey).where(DataKey.id == key.id, DataKey.slots == key.slots)
                    .values(slots=sealed.slots, kek_id=SEALED_ONLY)
                    .execution_options(synchronize_session=False))
            if not dry_run:
                session.commit()
            progress(len(keys))
    return report
