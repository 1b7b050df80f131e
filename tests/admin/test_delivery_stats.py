"""Statistics: tip arrival -> first alert delivered, per channel (issue 18)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.admin.helpers import make_world
from tests.factories import make_tip
from tipline.admin import stats
from tipline.routing.models import AlertDelivery, Dispatch, RoutingJob
from tipline.tips.models import Severity, Tip

T0 = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


def _alerted(db_session, tip: Tip, contact_id: int, deliveries: list[tuple[str, float | None]]
             ) -> None:
    job = RoutingJob(tip_id=tip.id, status="done")
    db_session.add(job)
    db_session.flush()
    dispatch = Dispatch(job_id=job.id, tip_id=tip.id, contact_id=contact_id, rule="r",
                        channels=["sms", "voice"])
    db_session.add(dispatch)
    db_session.flush()
    for n, (channel, after) in enumerate(deliveries):
        db_session.add(AlertDelivery(
            dispatch_id=dispatch.id, channel=channel, idempotency_key=f"k{tip.id}-{n}",
            status="delivered" if after is not None else "sent",
            delivered_at=None if after is None else tip.created_at + timedelta(seconds=after)))
    db_session.flush()


def test_first_alert_delivered_per_channel(db_session, vault, queue) -> None:
    w = make_world(db_session, vault)
    plan = [  # severity, deliveries (channel, seconds after arrival; None: never delivered)
        (Severity.LIFE_SAFETY, [("sms", 4.0), ("voice", 9.0), ("sms", 2.0)]),
        (Severity.LIFE_SAFETY, [("sms", None), ("voice", 8.0)]),
        (Severity.HIGH, [("sms", 30.0)]),
        (Severity.MEDIUM, [("email", 1.0)]),  # email: not a phone
    ]
    for severity, deliveries in plan:
        r = make_tip(db_session, vault, queue, school_code=w.schools[0].code, severity=severity)
        tip = db_session.get(Tip, r.tip_id)
        tip.district_id = w.district.id
        tip.created_at = T0
        _alerted(db_session, tip, w.contact.id, deliveries)
    outside = make_tip(db_session, vault, queue, school_code=w.other_school.code)
    _alerted(db_session, db_session.get(Tip, outside.tip_id), w.other_contact.id, [("sms", 1.0)])
    got = {d.label: d for d in stats.district_stats(
        db_session, stats.StatsQuery(w.district.id)).delivered}
    assert (got["Text message"].count, got["Text message"].median) == (2, 16.0)  # 2 s, 30 s
    assert got["Call (answered)"].count == 2 and got["Call (answered)"].median == 8.5
    either = got["First of either"]
    assert (either.count, either.median) == (3, 8.0)  # 2, 8, 30
    assert either.p99 == pytest.approx(29.56)
    life = got["First of either, life-safety tips"]
    assert (life.count, life.median) == (2, 5.0)  # 2 and 8


def test_the_csv_and_the_page_carry_the_delivery_times(db_session, vault, queue) -> None:
    w = make_world(db_session, vault)
    r = make_tip(db_session, vault, queue, school_code=w.schools[0].code)
    tip = db_session.get(Tip, r.tip_id)
    tip.district_id = w.district.id
    _alerted(db_session, tip, w.contact.id, [("sms", 3.0)])
    s = stats.district_stats(db_session, stats.StatsQuery(w.district.id))
    body = stats.stats_csv(s)
    assert "seconds_to_first_alert_delivered,Text message: median,3" in body
    assert "seconds_to_first_alert_delivered,Call (answered): tips,0" in body
