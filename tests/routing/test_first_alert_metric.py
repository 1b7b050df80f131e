"""Commit -> first alert (``tipline.ops.hooks.delivery_done``): each tip's first sent alert is
observed once, in one primary-key statement, and a metrics failure never fails a delivery.

The observation was a minimum over the tip's deliveries; on a database without statistics
PostgreSQL read all of ``alert_deliveries`` for it, per delivery (docs/performance.md), and
two deliveries recorded together could both take themselves for the first.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tests.conftest import recorded_statements
from tests.factories import make_tip
from tests.routing.delivery_support import (
    RecordingSender,
    StepSpec,
    queued_deliveries,
    route,
)
from tipline.db import utcnow
from tipline.jobs import RecordingQueue
from tipline.ops import hooks, metrics
from tipline.routing.services import DeliveryResult, deliver_alert
from tipline.tips.models import Tip

TWO = [StepSpec(("slps-roosevelt-counselor", "slps-roosevelt-social"), ("sms",))]


@pytest.fixture
def observed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[datetime, datetime]]:
    seen: list[tuple[datetime, datetime]] = []
    monkeypatch.setattr(metrics, "first_alert", lambda c, s: seen.append((c, s)))
    return seen


def _work(statements: list[str]) -> list[str]:
    words = [s.split(None, 1)[0].upper() for s in statements]
    return [w for w in words if w not in ("SAVEPOINT", "RELEASE", "ROLLBACK")]


def test_a_tips_first_sent_alert_is_observed_once(pg_engine, db_session, vault, queue,
                                                   demo_directory, observed):
    r = route(db_session, vault, queue, TWO)
    first_id, second_id = queued_deliveries(queue)
    sender = {"sms": RecordingSender()}
    t0 = utcnow()
    one = deliver_alert(db_session, first_id, sender, t0, queue)
    two = deliver_alert(db_session, second_id, sender, t0 + timedelta(seconds=1), queue)
    assert (one.outcome, one.channel, one.tip_id, one.sent_at) == ("sent", "sms", r.tip_id, t0)
    with recorded_statements(pg_engine) as sent:
        hooks.delivery_done(db_session, one)
    assert _work(sent) == ["UPDATE"], sent  # one primary-key statement, no read of deliveries
    with recorded_statements(pg_engine) as sent:
        hooks.delivery_done(db_session, two)
    assert _work(sent) == ["UPDATE"], sent
    tip = db_session.get(Tip, r.tip_id)
    assert tip is not None
    db_session.refresh(tip)
    assert observed == [(tip.created_at, t0)]
    assert tip.first_alert_at == t0


def test_outcomes_other_than_sent_run_no_statement(pg_engine, db_session, observed) -> None:
    for result in (DeliveryResult(1, "failed", "sms", 7), DeliveryResult(1, "skipped"),
                   DeliveryResult(1, "unknown")):
        with recorded_statements(pg_engine) as sent:
            hooks.delivery_done(db_session, result)
        assert sent == [] and observed == []


def test_two_deliveries_recorded_together_count_the_tip_once(pg_engine, vault, observed):
    """Two sessions, as two worker threads: the second waits for the first's row lock, then
    finds the first alert recorded and observes nothing."""
    setup = Session(pg_engine, expire_on_commit=False)
    tip_id = make_tip(setup, vault, RecordingQueue()).tip_id
    setup.commit()
    a, b = Session(pg_engine), Session(pg_engine)
    try:
        t0 = utcnow()
        assert hooks.claim_first_alert(a, tip_id, t0) is not None  # not committed yet
        done = threading.Event()

        def second() -> None:
            hooks.delivery_done(b, DeliveryResult(2, "sent", "sms", tip_id, t0))
            done.set()

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        assert not done.is_set()  # waiting for the first's lock
        a.commit()
        thread.join(10)
        assert done.is_set()
        assert observed == []  # the first was claimed by session a (observed by its caller)
        assert hooks.claim_first_alert(a, tip_id, t0) is None
        a.rollback()
    finally:
        a.close()
        b.close()
        setup.execute(delete(Tip).where(Tip.id == tip_id))
        setup.commit()
        setup.close()


class BrokenSession:
    """A session whose database is gone."""

    def __init__(self) -> None:
        self.rolled_back = 0

    def execute(self, *args: Any, **kw: Any) -> Any:
        raise OperationalError("UPDATE", {}, Exception("server closed the connection"))

    def commit(self) -> None:
        raise AssertionError("not reached")

    def rollback(self) -> None:
        self.rolled_back += 1
        raise OperationalError("ROLLBACK", {}, Exception("still gone"))


def test_a_metrics_failure_never_fails_the_delivery(observed, caplog) -> None:
    broken = BrokenSession()
    hooks.delivery_done(broken, DeliveryResult(5, "sent", "sms", 7, utcnow()))  # type: ignore[arg-type]
    assert observed == [] and broken.rolled_back == 1
    assert "first alert of delivery 5 not recorded (OperationalError)" in caplog.text
