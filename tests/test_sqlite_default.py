"""The embedded default's database: the same services on SQLite, through the real migrations."""

from __future__ import annotations

from sqlalchemy import select

from tests.factories import make_tip
from tipline.db import utcnow
from tipline.jobs import RecordingQueue
from tipline.routing.models import OutboxMessage
from tipline.routing.senders import OutboxSender
from tipline.routing.services import DirectoryPlanner, deliver_alert, route_job
from tipline.tips.models import Tip


def test_intake_route_deliver_on_sqlite(sqlite_demo_db, tmp_path, vault) -> None:
    db = sqlite_demo_db
    queue = RecordingQueue()
    with db.session() as s:
        r = make_tip(s, vault, queue, body="LEMUR-204 is selling pills", school_code="slps-vashon")
    assert queue.sent == [("tipline.route_job", (r.job_id,))]
    with db.sessions() as s:
        res = route_job(s, r.job_id, DirectoryPlanner(), queue, utcnow())
        assert res.routed and res.deliveries >= 1
        assert not route_job(s, r.job_id, DirectoryPlanner(), queue, utcnow()).routed
    outbox = OutboxSender()
    ids = [a[0] for n, a in queue.sent if n == "tipline.deliver_alert"]
    with db.sessions() as s:
        assert {deliver_alert(s, i, {"sms": outbox, "voice": outbox, "email": outbox},
                              utcnow()).outcome for i in ids} == {"sent"}
    with db.sessions() as s:
        assert len(s.execute(select(OutboxMessage)).all()) == len(ids)
        assert s.get(Tip, r.tip_id).messages[0].body == "LEMUR-204 is selling pills"
    db.dispose()
    for f in tmp_path.glob("embedded.sqlite3*"):  # the database and any WAL left behind
        assert b"LEMUR" not in f.read_bytes()
