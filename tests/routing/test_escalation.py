"""Escalation: next step at a missed deadline, life-safety repeats until acknowledged."""

from __future__ import annotations

from datetime import timedelta

from tests.routing.delivery_support import (
    StepSpec,
    contact_key,
    deliveries,
    dispatches,
    queued_deliveries,
    route,
)
from tipline.celeryconf import ESCALATE_INTERVAL, URGENT_QUEUE, celery_config
from tipline.jobs import RecordingQueue
from tipline.routing.ack import acknowledge_dispatch
from tipline.routing.escalation import escalate_due
from tipline.tips.models import Severity, Tip

FIVE = timedelta(minutes=5)
PLAN = [
    StepSpec(("slps-roosevelt-counselor",), ack_within=FIVE),
    StepSpec(("slps-safety-desk",), ack_within=FIVE, delay=timedelta(minutes=30)),
    StepSpec(("slps-oncall",), ack_within=FIVE, delay=timedelta(minutes=60)),
]


def test_nothing_happens_before_the_deadline(db_session, vault, queue, demo_directory):
    r = route(db_session, vault, queue, PLAN)
    res = escalate_due(db_session, queue, r.now + FIVE - timedelta(seconds=1))
    assert (res.expired, res.activated, res.repeated) == (0, 0, 0)
    assert [d.status for d in dispatches(db_session, r.tip_id)] == [
        "active", "scheduled", "scheduled"]


def test_a_missed_deadline_moves_the_plan_to_the_next_step(db_session, vault, queue,
                                                           demo_directory):
    r = route(db_session, vault, queue, PLAN)
    before = len(queued_deliveries(queue))
    at = r.now + FIVE + timedelta(seconds=1)
    res = escalate_due(db_session, queue, at)
    assert (res.expired, res.activated) == (1, 1)
    first, second, third = dispatches(db_session, r.tip_id)
    assert first.status == "expired"
    assert second.status == "active" and contact_key(db_session, second) == "slps-safety-desk"
    assert second.activated_at == at and second.ack_deadline == at + FIVE
    assert third.status == "scheduled"
    new = queued_deliveries(queue)[before:]
    assert [d.id for d in deliveries(db_session, r.tip_id) if d.dispatch_id == second.id] == new
    # The run after that, with nothing due, does nothing; the next deadline moves on again.
    assert escalate_due(db_session, queue, at + timedelta(seconds=2)).activated == 0
    res = escalate_due(db_session, queue, at + FIVE + timedelta(seconds=1))
    assert (res.expired, res.activated) == (1, 1)
    assert [d.status for d in dispatches(db_session, r.tip_id)] == [
        "expired", "expired", "active"]


def test_escalating_twice_at_once_escalates_once(db_session, vault, queue, demo_directory):
    r = route(db_session, vault, queue, PLAN)
    at = r.now + FIVE + timedelta(seconds=1)
    a = escalate_due(db_session, queue, at)
    b = escalate_due(db_session, RecordingQueue(), at)
    assert (a.activated, b.activated, b.expired) == (1, 0, 0)
    second = dispatches(db_session, r.tip_id)[1]
    assert len([d for d in deliveries(db_session, r.tip_id) if d.dispatch_id == second.id]) == 1


def test_an_acknowledged_tip_does_not_escalate(db_session, vault, queue, demo_directory):
    r = route(db_session, vault, queue, PLAN)
    first = dispatches(db_session, r.tip_id)[0]
    acknowledge_dispatch(db_session, first.id, via="sms", now=r.now + timedelta(minutes=1))
    db_session.commit()
    res = escalate_due(db_session, queue, r.now + timedelta(hours=3))
    assert (res.expired, res.activated, res.repeated) == (0, 0, 0)
    assert [d.status for d in dispatches(db_session, r.tip_id)] == [
        "acknowledged", "cancelled", "cancelled"]


def test_a_tip_taken_in_the_dashboard_stops_escalating(db_session, vault, queue,
                                                       demo_directory):
    from tests.staffsupport import make_staff
    from tipline.triage.services import change_status

    r = route(db_session, vault, queue, PLAN)
    staff, _, _ = make_staff(db_session, vault, "school_staff", ["slps-roosevelt"])
    change_status(db_session, staff, db_session.get(Tip, r.tip_id), "in_progress", reason="",
                  outcome=None, now=r.now + timedelta(minutes=1))
    db_session.commit()
    res = escalate_due(db_session, queue, r.now + timedelta(hours=3))
    assert (res.activated, res.expired, res.repeated) == (0, 0, 0)
    assert {d.status for d in dispatches(db_session, r.tip_id)} == {"acknowledged"}
    assert db_session.get(Tip, r.tip_id).acknowledged_at == r.now + timedelta(minutes=1)


def test_a_tip_marked_acknowledged_without_an_answer_keeps_escalating(db_session, vault, queue,
                                                                       demo_directory):
    """Nobody of the chain's audience answered (say, staff took the tip before routing ran):
    the sweep cancels nothing; an alert too many beats a silenced one."""
    r = route(db_session, vault, queue, PLAN)
    db_session.get(Tip, r.tip_id).acknowledged_at = r.now + timedelta(minutes=1)
    db_session.commit()
    res = escalate_due(db_session, queue, r.now + FIVE + timedelta(seconds=1))
    assert (res.cancelled, res.expired, res.activated) == (0, 1, 1)


def test_life_safety_keeps_alerting_until_someone_acknowledges(db_session, vault, queue,
                                                               demo_directory):
    two = timedelta(minutes=2)
    r = route(db_session, vault, queue,
              [StepSpec(("slps-safety-desk", "slps-safety-supervisor"),
                        channels=("voice", "sms"), ack_within=two, repeat_every=two),
               StepSpec(("slps-oncall",), channels=("voice", "sms"), ack_within=two,
                        delay=two, repeat_every=two)],
              severity=Severity.LIFE_SAFETY)
    assert len(deliveries(db_session, r.tip_id)) == 4  # 2 people x voice + sms
    t = r.now
    rounds = []
    for _ in range(3):
        t += two + timedelta(seconds=1)
        rounds.append(escalate_due(db_session, queue, t))
    # Round 1: step 1 missed -> on-call activated, step 1 alerted again; then all repeat.
    assert [x.repeated for x in rounds] == [2, 3, 3]
    assert rounds[0].activated == 1
    ds = dispatches(db_session, r.tip_id)
    assert [d.alert_round for d in ds] == [3, 3, 2]
    rows = deliveries(db_session, r.tip_id)
    assert len(rows) == 4 + 2 + 2 * (2 + 2 + 2) + 2 * 2
    # Someone answers: nothing more goes out.
    assert acknowledge_dispatch(db_session, ds[2].id, via="voice", now=t)
    db_session.commit()
    sent_before = len(queued_deliveries(queue))
    later = escalate_due(db_session, queue, t + timedelta(minutes=30))
    assert (later.repeated, later.activated) == (0, 0)
    assert len(queued_deliveries(queue)) == sent_before
    assert {d.status for d in dispatches(db_session, r.tip_id)} == {"acknowledged",
                                                                    "cancelled"}


def test_the_scheduler_runs_escalation_every_few_seconds(settings):
    conf = celery_config(settings)
    beat = conf["beat_schedule"]
    assert beat["escalate"]["task"] == "tipline.escalate"
    assert beat["escalate"]["schedule"] == ESCALATE_INTERVAL <= 2.0
    # Escalation and its alerts have their own queue, which every worker consumes.
    assert conf["task_routes"]["tipline.escalate"] == {"queue": URGENT_QUEUE}
    assert conf["task_routes"]["tipline.deliver_urgent"] == {"queue": URGENT_QUEUE}
    assert URGENT_QUEUE in {q.name for q in conf["task_queues"]}


def test_escalation_alerts_go_to_the_urgent_queue(db_session, vault, queue, demo_directory):
    r = route(db_session, vault, queue, PLAN)
    assert queued_deliveries(queue, urgent=True) == []
    escalate_due(db_session, queue, r.now + FIVE + timedelta(seconds=1))
    second = dispatches(db_session, r.tip_id)[1]
    ids = [d.id for d in deliveries(db_session, r.tip_id) if d.dispatch_id == second.id]
    assert queued_deliveries(queue, urgent=True) == ids


def test_retriage_stops_the_old_plans_repeats(db_session, vault, queue, demo_directory):
    from tests.routing.delivery_support import StaticPlanner
    from tipline.routing.models import RoutingJob
    from tipline.routing.services import route_job

    two = timedelta(minutes=2)
    r = route(db_session, vault, queue,
              [StepSpec(("slps-safety-desk",), channels=("voice", "sms"), ack_within=two,
                        repeat_every=two)], severity=Severity.LIFE_SAFETY)
    escalate_due(db_session, queue, r.now + two + timedelta(seconds=1))  # expired, repeating
    job = RoutingJob(tip_id=r.tip_id, reason="retriage")
    db_session.add(job)
    db_session.commit()
    later = r.now + timedelta(minutes=3)
    route_job(db_session, job.id, StaticPlanner([StepSpec(("slps-roosevelt-counselor",))]),
              queue, later)
    old, new = dispatches(db_session, r.tip_id)
    assert old.status == "cancelled" and old.next_alert_at is None
    assert new.status == "active" and contact_key(db_session, new) == "slps-roosevelt-counselor"
    res = escalate_due(db_session, queue, later + timedelta(minutes=1))
    assert res.repeated == 0


def test_a_retriage_of_an_acknowledged_tip_still_escalates_and_repeats(db_session, vault,
                                                                       queue, demo_directory):
    from tests.routing.delivery_support import StaticPlanner
    from tipline.routing.models import RoutingJob
    from tipline.routing.services import route_job

    r = route(db_session, vault, queue, PLAN)
    first = dispatches(db_session, r.tip_id)[0]
    assert acknowledge_dispatch(db_session, first.id, via="sms", now=r.now + timedelta(minutes=1))
    later = r.now + timedelta(minutes=10)
    job = RoutingJob(tip_id=r.tip_id, reason="retriage", created_at=later)
    db_session.add(job)
    db_session.commit()
    two = timedelta(minutes=2)
    route_job(db_session, job.id, StaticPlanner([
        StepSpec(("slps-safety-desk",), channels=("voice", "sms"), ack_within=two,
                 repeat_every=two),
        StepSpec(("slps-oncall",), ack_within=two, delay=two),
    ]), queue, later)
    res = escalate_due(db_session, queue, later + two + timedelta(seconds=1))
    assert (res.cancelled, res.expired, res.activated, res.repeated) == (0, 1, 1, 1)
    new = [d for d in dispatches(db_session, r.tip_id) if d.job_id == job.id]
    assert [d.status for d in new] == ["expired", "active"]
    assert new[0].alert_round == 1
