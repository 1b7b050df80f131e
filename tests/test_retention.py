from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factories import make_tip
from tipline.crypto import KeyUnavailable
from tipline.db import utcnow
from tipline.tips.models import Channel, Status, Tip
from tipline.tips.retention import purge_expired


def test_purge_shreds_only_tips_closed_past_retention(db_session, vault, queue) -> None:
    old = make_tip(db_session, vault, queue, body="old closed", channel=Channel.SMS,
                   phone="+13145550188")
    recent = make_tip(db_session, vault, queue, body="recently closed")
    open_ = make_tip(db_session, vault, queue, body="still open")
    db_session.flush()
    now = utcnow()
    for r, closed in ((old, now - timedelta(days=400)), (recent, now - timedelta(days=10))):
        t = db_session.get(Tip, r.tip_id)
        t.status, t.closed_at = Status.CLOSED.value, closed
    db_session.commit()
    assert purge_expired(db_session, now, retention_days=365).shredded == 1
    db_session.expire_all()
    gone = db_session.get(Tip, old.tip_id)
    assert gone.data_key_id is None and gone.phone_hash is None and gone.phone_ct is None
    with pytest.raises(KeyUnavailable):
        _ = gone.messages[0].body
    assert db_session.get(Tip, recent.tip_id).messages[0].body == "recently closed"
    assert db_session.get(Tip, open_.tip_id).messages[0].body == "still open"
    assert purge_expired(db_session, now, retention_days=365).shredded == 0


def test_purge_shreds_item_keys_alert_text_and_relay_payloads_too(
        db_session, vault, queue, demo_directory) -> None:
    from sqlalchemy import func, select

    from tests.keysupport import reader
    from tipline.routing.audience import give_item_key, item_key_uids, seal_alert_content
    from tipline.tips.models import DataKey, Message

    reader(db_session, vault, "slps")  # the district has a read key: the tip is sealed
    r = make_tip(db_session, vault, queue, body="closed long ago", channel=Channel.SMS,
                 school_code="slps-roosevelt", phone="+13145550188")
    db_session.flush()
    tip = db_session.get(Tip, r.tip_id)
    later = Message(tip=tip, author="reporter", channel="sms")
    give_item_key(db_session, vault, tip, later)  # as the SMS webhook does
    later.body = "a later text"
    relay = Message(tip=tip, author="staff", channel="sms", relay_status="pending",
                    relay_payload_ct=b"\x01sealed-payload")
    give_item_key(db_session, vault, tip, relay)
    relay.body = "a staff reply"
    db_session.add_all([later, relay])
    tip.alert_content_ct = seal_alert_content(vault, tip.uid, "closed long ago")
    tip.status, tip.closed_at = Status.CLOSED.value, utcnow() - timedelta(days=400)
    db_session.commit()
    uids = item_key_uids(db_session, tip.id)
    assert len(uids) == 2
    assert purge_expired(db_session, utcnow(), retention_days=365).shredded == 1
    db_session.expire_all()
    assert db_session.execute(select(func.count()).select_from(DataKey).where(
        DataKey.uid.in_(uids))).scalar_one() == 0
    gone = db_session.get(Tip, tip.id)
    assert gone.alert_content_ct is None and gone.data_key_id is None
    assert db_session.get(Message, relay.id).relay_payload_ct is None
