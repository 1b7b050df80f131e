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
