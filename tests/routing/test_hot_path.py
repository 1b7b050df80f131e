"""The surge path: ``route_job`` and ``deliver_alert`` write exactly the plan, in few statements.

Both are written as plain multi-row statements for speed (see ``docs/alerts.md``,
"Benchmark"); these tests pin what that must not change: every dispatch row is the planned
contact, step, channels and deadline; each active dispatch gets the deliveries of its first
alert round, on the dispatch it belongs to, on PostgreSQL and on SQLite; and the number of
statements stays small and does not grow with the number of contacts in a plan.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import recorded_statements
from tests.factories import make_tip
from tipline.directory.models import Contact
from tipline.intake.services import Receipt
from tipline.jobs import RecordingQueue
from tipline.routing.engine import PolicyPlanner
from tipline.routing.models import AlertDelivery, Dispatch, RoutingJob
from tipline.routing.policy import active_policy, load_policy_file
from tipline.routing.senders import Alert
from tipline.routing.services import (
    URGENT_DELIVERY_TASK,
    Plan,
    deliver_alert,
    delivery_key,
    round_channels,
    route_job,
)
from tipline.tips.models import Category, Severity, Tip

POLICY_FILE = Path(__file__).resolve().parents[2] / "config" / "policy.demo.yaml"
TUESDAY_10AM = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)  # 10:00 in St. Louis


class PlanSpy:
    """Wraps a planner and keeps the plan it returned, to compare with the rows written."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.last: Plan | None = None

    def plan_for(self) -> Plan:
        assert self.last is not None
        return self.last

    def plan(self, session: Session, tip: Tip, now: datetime) -> Plan:
        self.last = self.inner.plan(session, tip, now)
        return self.last


class Sender:
    name = "test"

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def send(self, session: Session, alert: Alert) -> str:
        self.sent.append(alert)
        return f"ref-{alert.delivery_id}"


def first_words(statements: list[str]) -> list[str]:
    return [s.split(None, 1)[0].upper() for s in statements]


def check_rows_match_plan(session: Session, tip_id: int, job_id: int, plan: Plan,
                          now: datetime, queue: RecordingQueue) -> list[AlertDelivery]:
    rows = session.execute(
        select(Dispatch).where(Dispatch.tip_id == tip_id).order_by(Dispatch.id)
    ).scalars().all()
    expected = [(idx, e.contact_id, list(e.channels), e.include_content, step)
                for idx, step in enumerate(plan.steps) for e in step.entries]
    assert [(d.step_index, d.contact_id, d.channels, d.include_content) for d in rows] == \
        [x[:4] for x in expected]
    deliveries: list[AlertDelivery] = []
    for d, (_idx, _cid, _ch, _inc, step) in zip(rows, expected, strict=True):
        assert d.job_id == job_id and d.rule == plan.rule[:80]
        assert d.due_at == now + step.delay
        assert d.ack_deadline == (now + step.delay + step.ack_within if step.ack_within
                                  else None)
        repeat = int(step.repeat_every.total_seconds()) if step.repeat_every else None
        assert d.repeat_every_seconds == repeat
        assert d.ack_code is not None and len(d.ack_code) == 4
        mine = session.execute(
            select(AlertDelivery).where(AlertDelivery.dispatch_id == d.id)
            .order_by(AlertDelivery.id)
        ).scalars().all()
        if step.delay > timedelta(0):
            assert d.status == "scheduled" and d.activated_at is None and not mine
            continue
        assert d.status == "active" and d.activated_at == now
        assert [m.channel for m in mine] == round_channels(d.channels, repeat)
        for m in mine:
            assert m.idempotency_key == delivery_key(d.id, m.channel, 0)
            assert (m.status, m.alert_round, m.attempts) == ("pending", 0, 0)
        deliveries.extend(mine)
    sent = {a[0]: name for name, a in queue.sent if "deliver" in name}
    assert set(sent) == {m.id for m in deliveries}
    return deliveries


WEAPON_NOW = {"body": "He has a gun in his locker right now", "school_code": "slps-vashon",
              "category": Category.WEAPON, "severity": Severity.LIFE_SAFETY}


def policy_tip(session: Session, vault: Any, queue: RecordingQueue, **tip: Any
               ) -> tuple[Receipt, PlanSpy]:
    """Load the demo policy, make a tip, commit; a spying planner over the active policy."""
    load_policy_file(session, POLICY_FILE, loaded_by="test")
    session.commit()
    r = make_tip(session, vault, queue, **tip)
    session.commit()
    queue.sent.clear()
    policy = active_policy(session)
    assert policy is not None
    return r, PlanSpy(PolicyPlanner(policy))


def test_rows_and_tasks_are_exactly_the_plan_postgres(db_session, vault, demo_directory):
    queue = RecordingQueue()
    # A life-safety weapon tip at Vashon: several contacts, calls and texts at once, a
    # repeating first step and a later step.
    r, spy = policy_tip(db_session, vault, queue, **WEAPON_NOW)
    result = route_job(db_session, r.job_id, spy, queue, TUESDAY_10AM)
    plan = spy.plan_for()
    assert result.routed and result.dispatches == sum(len(s.entries) for s in plan.steps)
    assert len(plan.steps) >= 2 and len(plan.steps[0].entries) >= 3
    deliveries = check_rows_match_plan(db_session, r.tip_id, r.job_id, plan, TUESDAY_10AM,
                                       queue)
    assert result.deliveries == len(deliveries)
    assert {m.channel for m in deliveries} >= {"sms", "voice"}
    # Life-safety: every alert goes on the urgent queue.
    assert {name for name, _ in queue.sent} == {URGENT_DELIVERY_TASK}
    job = db_session.get(RoutingJob, r.job_id)
    db_session.refresh(job)
    assert job.status == "done" and job.attempts == 1
    assert job.explanation["rule"] == plan.rule
    assert job.explanation["contacts"] == plan.explanation["contacts"]


def test_an_ordinary_tip_goes_on_the_normal_queue(db_session, vault, demo_directory):
    queue = RecordingQueue()
    r, spy = policy_tip(db_session, vault, queue, body="kids picking on a boy at lunch",
                        school_code="slps-roosevelt", category=Category.BULLYING,
                        severity=Severity.MEDIUM)
    route_job(db_session, r.job_id, spy, queue, TUESDAY_10AM)
    check_rows_match_plan(db_session, r.tip_id, r.job_id, spy.plan_for(), TUESDAY_10AM, queue)
    assert queue.sent and {name for name, _ in queue.sent} == {"tipline.deliver_alert"}


def test_rows_and_tasks_are_exactly_the_plan_sqlite(sqlite_demo_db, vault):
    db = sqlite_demo_db
    queue = RecordingQueue()
    with db.session() as s:
        load_policy_file(s, POLICY_FILE, loaded_by="test")
    with db.session() as s:
        r = make_tip(s, vault, queue, **WEAPON_NOW)
    queue.sent.clear()
    with db.sessions() as s:
        policy = active_policy(s)
        assert policy is not None
        spy = PlanSpy(PolicyPlanner(policy))
        assert route_job(s, r.job_id, spy, queue, TUESDAY_10AM).routed
        assert not route_job(s, r.job_id, spy, queue, TUESDAY_10AM).routed  # routed once
    with db.sessions() as s:
        deliveries = check_rows_match_plan(s, r.tip_id, r.job_id, spy.plan_for(),
                                           TUESDAY_10AM, queue)
        sender = Sender()
        senders = {"sms": sender, "voice": sender, "email": sender}
        outcomes = [deliver_alert(s, m.id, senders, TUESDAY_10AM).outcome for m in deliveries]
    assert outcomes == ["sent"] * len(deliveries)
    with db.sessions() as s:
        for m in deliveries:
            got = s.get(AlertDelivery, m.id)
            assert got is not None
            assert (got.status, got.provider_ref, got.attempts) == ("sent", f"ref-{m.id}", 1)
            contact = s.get(Contact, s.get(Dispatch, got.dispatch_id).contact_id)
            alert = next(a for a in sender.sent if a.delivery_id == m.id)
            assert alert.recipient == {"sms": contact.sms_number, "voice": contact.voice_number,
                                       "email": contact.email}[m.channel]


def test_statement_counts_stay_small(pg_engine, db_session, vault, demo_directory):
    """Routing reads the directory once per plan, not once per rule target; a delivery is
    two statements on PostgreSQL. A change that loops queries per contact fails here."""
    queue = RecordingQueue()
    r, _ = policy_tip(db_session, vault, queue, **WEAPON_NOW)
    # The district's grouping options are read once per 10 s per process (surge.OPTIONS_TTL):
    # in a surge they are cached, as here.
    from tipline.surge import services as surge

    surge._options.clear()
    surge.district_options(db_session, db_session.get(Tip, r.tip_id).district_id)
    with recorded_statements(pg_engine) as sent:
        policy = active_policy(db_session)
        spy = PlanSpy(PolicyPlanner(policy))
        result = route_job(db_session, r.job_id, spy, queue, TUESDAY_10AM)
    assert result.dispatches >= 5
    # policy head, tip, contacts, claim with explanation, dispatches, deliveries (+ savepoint
    # bookkeeping of the test session); surge grouping (tipline.surge): the school's lock, the
    # tip's signature and one read of the school's recent signatures
    seen = first_words(sent)
    work = [s for s in seen if s not in ("SAVEPOINT", "RELEASE", "ROLLBACK")]
    assert len(work) <= 9, seen
    dl_id = queue.sent[0][1][0]
    sender = Sender()
    with recorded_statements(pg_engine) as sent:
        out = deliver_alert(db_session, dl_id, {"sms": sender, "voice": sender,
                                                "email": sender}, TUESDAY_10AM)
    assert out.outcome == "sent"
    seen = first_words(sent)
    work = [s for s in seen if s not in ("SAVEPOINT", "RELEASE", "ROLLBACK")]
    assert work == ["WITH", "UPDATE"], seen  # claim and read in one; the result
    from tipline.ops import hooks

    with recorded_statements(pg_engine) as sent:
        hooks.delivery_done(db_session, out)
    seen = first_words(sent)
    work = [s for s in seen if s not in ("SAVEPOINT", "RELEASE", "ROLLBACK")]
    assert work == ["UPDATE"], seen  # the metrics: the tip's first alert, on its primary key


def test_a_job_routed_by_someone_else_writes_nothing(db_session, vault, demo_directory):
    queue = RecordingQueue()
    r, spy = policy_tip(db_session, vault, queue, school_code="slps-soldan")
    assert route_job(db_session, r.job_id, spy, queue, TUESDAY_10AM).routed
    n = db_session.execute(select(Dispatch.id).where(Dispatch.tip_id == r.tip_id)).all()
    assert not route_job(db_session, r.job_id, spy, queue, TUESDAY_10AM).routed
    assert db_session.execute(select(Dispatch.id).where(Dispatch.tip_id == r.tip_id)).all() == n


def test_a_district_that_does_not_group_is_not_searched_for_a_group(
        pg_engine, db_session, vault, demo_directory, tmp_path):
    """With ``surge_grouping: false`` routing reads no other tip's signature: that search
    probed routing_jobs once per candidate (up to 400 per tip), and on a table without
    statistics each probe read the whole status index (the routing benchmark's PostgreSQL
    CPU grew to a whole CPU by the end of a surge)."""
    import yaml

    from tipline.surge import services as surge

    data = yaml.safe_load(POLICY_FILE.read_text("utf-8"))
    for body in data["districts"].values():
        body["surge_grouping"] = False
    off = tmp_path / "policy.off.yaml"
    off.write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
    load_policy_file(db_session, off, loaded_by="test")
    db_session.commit()
    surge._options.clear()  # the district options cached by earlier tests
    queue = RecordingQueue()
    first = make_tip(db_session, vault, queue, **WEAPON_NOW)
    db_session.commit()
    policy = active_policy(db_session)
    assert route_job(db_session, first.job_id, PolicyPlanner(policy), queue,
                     TUESDAY_10AM).routed
    r = make_tip(db_session, vault, queue, **WEAPON_NOW)  # the same words, same school
    db_session.commit()
    with recorded_statements(pg_engine) as sent:
        result = route_job(db_session, r.job_id, PolicyPlanner(policy), queue, TUESDAY_10AM)
    surge._options.clear()
    assert result.routed and result.dispatches >= 5  # alerted on its own, not folded
    reads = [s for s in sent if "tip_signatures" in s]
    assert len(reads) == 1 and "routing_jobs" not in reads[0], reads  # its own row only


def test_the_surge_search_probes_each_candidate_from_its_own_index(db_session):
    """The surge search asks "has routing taken this tip" once per signature of the school
    (a SubPlan on the partial index ``ix_routing_jobs_done_tip``), never as a join that starts
    from every done job: on tables without statistics PostgreSQL chose that join, and each
    tip's search read all the jobs routed before it (docs/performance.md)."""
    from sqlalchemy import text

    from tipline.surge.services import candidates

    db_session.execute(text("SET LOCAL enable_seqscan = off"))
    compiled = candidates(1, 1, TUESDAY_10AM).compile(dialect=db_session.get_bind().dialect)
    plan = "\n".join(r[0] for r in db_session.connection().exec_driver_sql(
        f"EXPLAIN {compiled}", compiled.params))
    assert "SubPlan" in plan and "Semi Join" not in plan, plan
    assert "ix_routing_jobs_done_tip" in plan and "ix_routing_jobs_status" not in plan, plan
    assert "ix_tip_signatures_school_created" in plan, plan


def test_no_index_holds_every_routing_jobs_status(db_session):
    """Each status read has its own partial index (migration 0018): an index of every job's
    status let PostgreSQL, on tables without statistics, answer the probe above by reading
    all of it (405 million entries in one 3,000-tip benchmark with grouping on)."""
    from sqlalchemy import text

    defs = db_session.execute(text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'routing_jobs'")).all()
    assert {"ix_routing_jobs_done_tip", "ix_routing_jobs_pending",
            "ix_routing_jobs_failed"} <= {name for name, _ in defs}
    for name, definition in defs:
        head = definition.split(" WHERE ", 1)[0]
        assert "(status" not in head and ", status" not in head, (name, definition)
