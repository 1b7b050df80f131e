"""Grouping at routing: later tips of a threat add to its alert chain; anything more severe,
a new life-safety reason, a re-triage or a closed lead alerts on its own."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.factories import make_tip
from tipline.db import utcnow
from tipline.routing.models import Dispatch, DispatchStatus, OutboxMessage, RoutingJob
from tipline.routing.senders import OutboxSender
from tipline.routing.services import DirectoryPlanner, deliver_alert, route_job
from tipline.surge import services as surge
from tipline.surge.models import TipGroup, TipSignature
from tipline.surge.signature import SIZE
from tipline.tips.models import Category, Severity, Status, Tip

SCHOOL = "slps-roosevelt"
FIRST = "Someone posted on snapchat they are going to shoot up Roosevelt on Friday"
SAME = "a snapchat post says someone will shoot up roosevelt friday, everyone is scared"
OTHER = "Kids are vaping in the second floor bathroom every period"


def _tip(db, vault, queue, body, severity=Severity.HIGH, school=SCHOOL, **kw):
    r = make_tip(db, vault, queue, body=body, school_code=school, severity=severity,
                 category=kw.pop("category", Category.THREAT), **kw)
    db.commit()
    return r


def _route(db, queue, r, now=None):
    return route_job(db, r.job_id, DirectoryPlanner(), queue, now or utcnow())


def _dispatches(db, tip_id):
    return db.execute(select(Dispatch).where(Dispatch.tip_id == tip_id)).scalars().all()


def test_signature_is_stored_at_intake_and_holds_no_words(db_session, vault, queue,
                                                          demo_directory):
    r = _tip(db_session, vault, queue, "PANGOLIN-77 will shoot up roosevelt friday")
    sig = db_session.get(TipSignature, r.tip_id)
    assert sig is not None and len(sig.minhash) == SIZE == 128 and sig.size > 0
    assert b"PANGOLIN" not in sig.minhash and b"pango" not in sig.minhash
    assert all(len(s) == 16 and "weapon" not in s for s in sig.signals)


def test_later_tip_of_a_threat_folds_into_the_first_alert(db_session, vault, queue,
                                                          demo_directory):
    a = _tip(db_session, vault, queue, FIRST)
    assert _route(db_session, queue, a).dispatches > 0
    b = _tip(db_session, vault, queue, SAME)
    res = _route(db_session, queue, b)
    assert res.routed and res.dispatches == 0
    assert _dispatches(db_session, b.tip_id) == []
    job = db_session.get(RoutingJob, b.job_id)
    assert job.status == "done" and job.explanation["grouped"] is True
    group = surge.group_of(db_session, b.tip_id)
    assert group is not None and group.lead_tip_id == a.tip_id and group.tip_count == 2
    assert group.unnoticed == 1
    assert surge.member_ids(db_session, group.id) == [a.tip_id, b.tip_id]


def test_different_threat_at_the_same_school_alerts_alone(db_session, vault, queue,
                                                          demo_directory):
    a = _tip(db_session, vault, queue, FIRST)
    _route(db_session, queue, a)
    c = _tip(db_session, vault, queue, OTHER, severity=Severity.MEDIUM,
             category=Category.SUBSTANCE)
    assert _route(db_session, queue, c).dispatches > 0
    assert surge.group_of(db_session, c.tip_id) is None


def test_same_words_at_another_school_do_not_group(db_session, vault, queue, demo_directory):
    a = _tip(db_session, vault, queue, FIRST)
    _route(db_session, queue, a)
    b = _tip(db_session, vault, queue, SAME, school="slps-soldan")
    assert _route(db_session, queue, b).dispatches > 0


def test_higher_severity_alerts_at_once(db_session, vault, queue, demo_directory):
    a = _tip(db_session, vault, queue, FIRST, severity=Severity.MEDIUM)
    _route(db_session, queue, a)
    b = _tip(db_session, vault, queue, SAME, severity=Severity.LIFE_SAFETY)
    assert _route(db_session, queue, b).dispatches > 0
    group = surge.group_of(db_session, b.tip_id)
    assert group is not None and group.alerted_severity == Severity.LIFE_SAFETY
    # ... and a later one at that level folds again.
    c = _tip(db_session, vault, queue, FIRST + " please", severity=Severity.HIGH)
    assert _route(db_session, queue, c).dispatches == 0


def test_new_life_safety_reason_alerts_at_once(db_session, vault, queue, demo_directory):
    a = _tip(db_session, vault, queue, FIRST, severity=Severity.LIFE_SAFETY)
    _route(db_session, queue, a)
    # Same threat, same severity, but the classifier now finds a suicide risk too.
    b = _tip(db_session, vault, queue,
             SAME + " and my friend said she wants to kill herself", severity=Severity.LIFE_SAFETY)
    sig_a = db_session.get(TipSignature, a.tip_id)
    sig_b = db_session.get(TipSignature, b.tip_id)
    assert set(sig_b.signals) - set(sig_a.signals)
    assert _route(db_session, queue, b).dispatches > 0


def test_closed_lead_means_a_new_alert(db_session, vault, queue, demo_directory):
    a = _tip(db_session, vault, queue, FIRST)
    _route(db_session, queue, a)
    db_session.get(Tip, a.tip_id).status = Status.CLOSED.value
    db_session.commit()
    b = _tip(db_session, vault, queue, SAME)
    assert _route(db_session, queue, b).dispatches > 0
    group = surge.group_of(db_session, b.tip_id)
    assert group is not None and group.lead_tip_id == b.tip_id


def test_retriage_of_a_folded_tip_routes_it(db_session, vault, queue, demo_directory):
    a = _tip(db_session, vault, queue, FIRST)
    _route(db_session, queue, a)
    b = _tip(db_session, vault, queue, SAME)
    _route(db_session, queue, b)
    job = RoutingJob(tip_id=b.tip_id, reason="retriage")
    db_session.add(job)
    db_session.commit()
    assert route_job(db_session, job.id, DirectoryPlanner(), queue, utcnow()).dispatches > 0


def test_split_tip_never_regroups(db_session, vault, queue, demo_directory):
    a = _tip(db_session, vault, queue, FIRST)
    _route(db_session, queue, a)
    b = _tip(db_session, vault, queue, SAME)
    _route(db_session, queue, b)
    group = surge.split_tip(db_session, b.tip_id)
    db_session.commit()
    assert group is not None and group.tip_count == 1
    assert surge.group_of(db_session, b.tip_id) is None
    assert db_session.get(TipSignature, b.tip_id).split


def test_more_tips_notice_once_per_interval_without_content(db_session, vault, queue,
                                                            demo_directory):
    a = _tip(db_session, vault, queue, "PANGOLIN-12 " + FIRST)
    now = utcnow()
    _route(db_session, queue, a, now)
    for i in range(3):
        _route(db_session, queue, _tip(db_session, vault, queue, f"{SAME} ({i})"), now)
    assert surge.notify_groups(db_session, queue, now) == 1
    notices = db_session.execute(select(Dispatch).where(
        Dispatch.tip_id == a.tip_id, Dispatch.status == DispatchStatus.NOTICE.value)
    ).scalars().all()
    assert notices and all(d.rule == "surge-group:3" for d in notices)
    # Nothing more until the interval passed and more tips came.
    assert surge.notify_groups(db_session, queue, now + timedelta(minutes=1)) == 0
    _route(db_session, queue, _tip(db_session, vault, queue, SAME + " again"), now)
    assert surge.notify_groups(db_session, queue, now + timedelta(minutes=5)) == 0
    assert surge.notify_groups(db_session, queue, now + surge.NOTICE_EVERY) == 1
    senders = {"sms": OutboxSender(), "voice": OutboxSender(), "email": OutboxSender()}
    for d in notices:
        for dl in d.deliveries:
            deliver_alert(db_session, dl.id, senders, utcnow())
    out = db_session.execute(select(OutboxMessage)).scalars().all()
    texts = [o.body for o in out if "more tips" in o.body]
    assert texts and all("3 more tips" in t and "PANGOLIN" not in t for t in texts)
    assert db_session.execute(select(TipGroup)).scalars().one().unnoticed == 0


def test_statistics_count_tips_and_groups(db_session, vault, queue, demo_directory):
    from tipline.admin import stats
    from tipline.directory.models import School

    for text in (FIRST, SAME, SAME + " for real"):
        _route(db_session, queue, _tip(db_session, vault, queue, text))
    _route(db_session, queue, _tip(db_session, vault, queue, OTHER, severity=Severity.MEDIUM))
    district = db_session.execute(select(School.district_id).where(School.code == SCHOOL)
                                  ).scalar_one()
    s = stats.district_stats(db_session, stats.StatsQuery(district))
    assert (s.total, s.grouped_tips, s.groups) == (4, 3, 1)
    csv_text = stats.stats_csv(s)
    assert "tips_in_groups_of_related_tips,all,3" in csv_text
    assert "groups_of_related_tips,all,1" in csv_text


def test_grouping_off_in_the_policy_alerts_every_tip(db_session, vault, queue, demo_directory,
                                                      monkeypatch):
    monkeypatch.setattr(surge, "district_options",
                        lambda session, district_id: (False, surge.NOTICE_EVERY))
    _route(db_session, queue, _tip(db_session, vault, queue, FIRST))
    b = _tip(db_session, vault, queue, SAME)
    assert _route(db_session, queue, b).dispatches > 0
    assert surge.group_of(db_session, b.tip_id) is None


def test_retention_erases_the_signature_and_keeps_the_group(db_session, vault, queue,
                                                            demo_directory):
    from tipline.tips.retention import purge_expired

    a = _tip(db_session, vault, queue, FIRST)
    _route(db_session, queue, a)
    b = _tip(db_session, vault, queue, SAME)
    _route(db_session, queue, b)
    tip = db_session.get(Tip, b.tip_id)
    tip.status, tip.closed_at = Status.CLOSED.value, utcnow() - timedelta(days=400)
    db_session.commit()
    assert purge_expired(db_session, utcnow(), 365).shredded == 1
    db_session.expire_all()
    sig = db_session.get(TipSignature, b.tip_id)
    assert sig.minhash == b"" and sig.signals == [] and sig.group_id is not None


def test_grouping_and_notices_on_sqlite(sqlite_demo_db, vault, queue):
    """The embedded default: no advisory lock (one writer), the same decisions."""
    with sqlite_demo_db.session() as s:
        a = _tip(s, vault, queue, FIRST)
        now = utcnow()
        assert _route(s, queue, a, now).dispatches > 0
        b = _tip(s, vault, queue, SAME)
        assert _route(s, queue, b, now).dispatches == 0
        group = surge.group_of(s, b.tip_id)
        assert group is not None and group.tip_count == 2
        assert surge.notify_groups(s, queue, now) == 1


def test_signatures_older_than_the_window_are_erased(db_session, vault, queue, demo_directory):
    """A copy of the server holds at most a window's worth of signatures: older ones are
    erased by the periodic surge task; the group and its count stay."""
    from tipline.surge.match import WINDOW

    a = _tip(db_session, vault, queue, FIRST)
    _route(db_session, queue, a)
    b = _tip(db_session, vault, queue, SAME)
    _route(db_session, queue, b)
    c = _tip(db_session, vault, queue, OTHER)
    old = db_session.get(TipSignature, a.tip_id)
    old.created_at = utcnow() - WINDOW - timedelta(minutes=1)
    db_session.commit()
    assert surge.forget_signatures(db_session, utcnow()) == 1
    assert surge.forget_signatures(db_session, utcnow()) == 0  # idempotent
    db_session.expire_all()
    gone = db_session.get(TipSignature, a.tip_id)
    assert gone.minhash == b"" and gone.size == 0 and gone.signals == []
    assert gone.group_id is not None and surge.group_of(db_session, b.tip_id).tip_count == 2
    for kept in (b.tip_id, c.tip_id):
        assert len(db_session.get(TipSignature, kept).minhash) == SIZE


def test_the_periodic_surge_task_erases_old_signatures(app, db_session, vault, queue,
                                                       demo_directory):
    from tipline.surge.match import WINDOW
    from tipline.surge.tasks import run_surge_notices

    a = _tip(db_session, vault, queue, FIRST)
    db_session.get(TipSignature, a.tip_id).created_at = utcnow() - WINDOW - timedelta(hours=1)
    db_session.commit()
    with app.app_context():
        run_surge_notices()
    db_session.expire_all()
    assert db_session.get(TipSignature, a.tip_id).minhash == b""


def test_an_erased_or_full_width_signature_starts_no_group(db_session, vault, queue,
                                                           demo_directory):
    """Signatures of another length (erased, or the 1,024-byte full-width ones stored before
    b-bit signatures) are comparable with nothing: the tip alerts on its own."""
    a = _tip(db_session, vault, queue, FIRST)
    _route(db_session, queue, a)
    db_session.get(TipSignature, a.tip_id).minhash = b"\x00" * 1024
    db_session.commit()
    b = _tip(db_session, vault, queue, FIRST)
    assert _route(db_session, queue, b).dispatches > 0
    assert surge.group_of(db_session, b.tip_id) is None


def test_forgetting_signatures_on_sqlite(sqlite_demo_db, vault, queue):
    from tipline.surge.match import WINDOW

    with sqlite_demo_db.session() as s:
        a = _tip(s, vault, queue, FIRST)
        s.get(TipSignature, a.tip_id).created_at = utcnow() - WINDOW - timedelta(minutes=1)
        s.commit()
        assert surge.forget_signatures(s, utcnow()) == 1
        s.expire_all()
        assert s.get(TipSignature, a.tip_id).minhash == b""
