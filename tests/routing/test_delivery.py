"""Delivering alerts: once per task, fallbacks, retries, no content, Twilio callbacks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.routing.delivery_support import (
    FailingSender,
    RecordingSender,
    StepSpec,
    deliveries,
    dispatches,
    queued_deliveries,
    route,
)
from tests.twilio_support import TEST_AUTH_TOKEN, signed_post
from tipline.db import utcnow
from tipline.routing.ack import acknowledge_dispatch
from tipline.routing.models import AlertDelivery, OutboxMessage
from tipline.routing.senders import OutboxSender, TransientSendError
from tipline.routing.services import MAX_SEND_ATTEMPTS, deliver_alert
from tipline.tips.models import Severity

SECRET = "PANGOLIN-77 has a gun in locker 12"


@pytest.fixture
def settings(settings: Any) -> Any:
    return settings.with_overrides(twilio_auth_token=TEST_AUTH_TOKEN)


def _senders(**over: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"sms": RecordingSender(), "voice": RecordingSender(),
                           "email": RecordingSender()}
    out.update(over)
    return out


def test_a_delivery_task_run_twice_sends_once(db_session, vault, queue, demo_directory):
    r = route(db_session, vault, queue, [StepSpec(("slps-roosevelt-counselor",))])
    [dl_id] = queued_deliveries(queue)
    senders = _senders()
    first = deliver_alert(db_session, dl_id, senders, utcnow(), queue)
    second = deliver_alert(db_session, dl_id, senders, utcnow(), queue)
    assert (first.outcome, second.outcome) == ("sent", "skipped")
    assert len(senders["sms"].sent) == 1
    [dl] = deliveries(db_session, r.tip_id)
    assert dl.status == "sent" and dl.attempts == 1 and dl.provider_ref == f"ref-{dl_id}"


def test_a_permanent_failure_falls_back_to_the_next_channel(db_session, vault, queue,
                                                             demo_directory):
    r = route(db_session, vault, queue, [StepSpec(("slps-roosevelt-counselor",))])
    [dl_id] = queued_deliveries(queue)
    senders = _senders(sms=FailingSender(transient=False))
    assert deliver_alert(db_session, dl_id, senders, utcnow(), queue).outcome == "failed"
    sms, voice = deliveries(db_session, r.tip_id)
    assert sms.channel == "sms" and sms.status == "failed" and "permanent" in sms.last_error
    assert voice.channel == "voice" and voice.status == "pending"
    assert queued_deliveries(queue) == [dl_id, voice.id]
    assert deliver_alert(db_session, voice.id, senders, utcnow(), queue).outcome == "sent"
    assert [a.recipient for a in senders["voice"].sent] == ["+13145550101"]


def test_transient_failures_are_retried_then_the_next_channel_is_tried(
        db_session, vault, queue, demo_directory):
    r = route(db_session, vault, queue, [StepSpec(("slps-roosevelt-counselor",))])
    [dl_id] = queued_deliveries(queue)
    flaky = FailingSender(transient=True)
    senders = _senders(sms=flaky)
    for attempt in range(1, MAX_SEND_ATTEMPTS):
        with pytest.raises(TransientSendError):
            deliver_alert(db_session, dl_id, senders, utcnow(), queue)
        [dl] = deliveries(db_session, r.tip_id)
        assert dl.status == "pending" and dl.attempts == attempt
    assert deliver_alert(db_session, dl_id, senders, utcnow(), queue).outcome == "failed"
    assert flaky.attempts == MAX_SEND_ATTEMPTS
    sms, voice = deliveries(db_session, r.tip_id)
    assert sms.status == "failed" and voice.channel == "voice" and voice.status == "pending"


def test_a_contact_without_that_channel_gets_the_next_one(db_session, vault, queue,
                                                          demo_directory):
    # The social worker has no voice number: voice -> sms.
    r = route(db_session, vault, queue,
              [StepSpec(("slps-roosevelt-social",), channels=("voice", "sms"))])
    [dl_id] = queued_deliveries(queue)
    senders = _senders()
    assert deliver_alert(db_session, dl_id, senders, utcnow(), queue).outcome == "failed"
    voice, sms = deliveries(db_session, r.tip_id)
    assert voice.status == "failed" and "no voice route" in voice.last_error
    assert deliver_alert(db_session, sms.id, senders, utcnow(), queue).outcome == "sent"
    assert [a.recipient for a in senders["sms"].sent] == ["+13145550102"]


def test_when_every_channel_fails_nothing_more_is_opened(db_session, vault, queue,
                                                         demo_directory):
    r = route(db_session, vault, queue,
              [StepSpec(("slps-roosevelt-counselor",), channels=("sms", "email"))])
    bad = FailingSender(transient=False)
    senders = _senders(sms=bad, email=bad)
    deliver_alert(db_session, queued_deliveries(queue)[0], senders, utcnow(), queue)
    email = deliveries(db_session, r.tip_id)[1]
    assert deliver_alert(db_session, email.id, senders, utcnow(), queue).outcome == "failed"
    assert [d.status for d in deliveries(db_session, r.tip_id)] == ["failed", "failed"]
    assert bad.attempts == 2


def test_alerts_carry_no_tip_content_by_default(db_session, vault, queue, demo_directory):
    r = route(db_session, vault, queue, [StepSpec(("slps-roosevelt-counselor",))], body=SECRET)
    [dl_id] = queued_deliveries(queue)
    outbox = OutboxSender()
    senders = {"sms": outbox, "voice": outbox, "email": outbox}
    assert deliver_alert(db_session, dl_id, senders, utcnow(), queue).outcome == "sent"
    [row] = db_session.execute(select(OutboxMessage)).scalars().all()
    assert r.reference in row.body and "Roosevelt High School" in row.body
    assert "threat" in row.body and "ACK " in row.body
    assert "PANGOLIN" not in row.body and "locker" not in row.body


def test_content_only_when_the_rule_allows_it_and_never_by_voice(db_session, vault, queue,
                                                                  demo_directory):
    r = route(db_session, vault, queue,
              [StepSpec(("slps-roosevelt-counselor",), channels=("sms", "voice"),
                        include_content=True)], body=SECRET)
    senders = _senders(sms=FailingSender(transient=False))
    deliver_alert(db_session, queued_deliveries(queue)[0], senders, utcnow(), queue)
    voice = deliveries(db_session, r.tip_id)[1]
    deliver_alert(db_session, voice.id, senders, utcnow(), queue)
    [call] = senders["voice"].sent
    assert "PANGOLIN" not in call.text
    senders2 = _senders()
    r2 = route(db_session, vault, queue,
               [StepSpec(("slps-roosevelt-counselor",), include_content=True)], body=SECRET)
    deliver_alert(db_session, deliveries(db_session, r2.tip_id)[0].id, senders2, utcnow())
    [text] = senders2["sms"].sent
    assert SECRET in text.text


def test_an_acknowledged_dispatch_sends_nothing_more(db_session, vault, queue, demo_directory):
    r = route(db_session, vault, queue, [StepSpec(("slps-roosevelt-counselor",))])
    [dl_id] = queued_deliveries(queue)
    [d] = dispatches(db_session, r.tip_id)
    assert acknowledge_dispatch(db_session, d.id, via="dashboard", now=utcnow())
    db_session.commit()
    senders = _senders()
    assert deliver_alert(db_session, dl_id, senders, utcnow(), queue).outcome == "skipped"
    assert senders["sms"].sent == []
    [dl] = deliveries(db_session, r.tip_id)
    assert dl.status == "failed" and "acknowledged" in dl.last_error
    assert queued_deliveries(queue) == [dl_id]  # no fallback for an answered alert


def test_life_safety_calls_and_texts_at_once(db_session, vault, queue, demo_directory):
    r = route(db_session, vault, queue,
              [StepSpec(("slps-safety-desk", "slps-safety-supervisor"),
                        channels=("voice", "sms", "email"), ack_within=timedelta(minutes=2),
                        repeat_every=timedelta(minutes=2))],
              severity=Severity.LIFE_SAFETY)
    got = sorted((d.dispatch_id, d.channel) for d in deliveries(db_session, r.tip_id))
    ids = [d.id for d in dispatches(db_session, r.tip_id)]
    assert got == sorted((i, ch) for i in ids for ch in ("voice", "sms"))
    assert len(queued_deliveries(queue, urgent=True)) == 4  # never behind ordinary alerts
    assert queued_deliveries(queue, urgent=False) == []


# -- Twilio callbacks for outbound alerts -------------------------------------------------
def _sent_over_twilio(db_session, vault, queue, channel: str, body: str = SECRET):
    r = route(db_session, vault, queue, [StepSpec(("slps-roosevelt-counselor",),
                                                  channels=(channel, "email"))], body=body)
    [dl_id] = queued_deliveries(queue)[-1:]
    sender = RecordingSender(name="twilio")
    deliver_alert(db_session, dl_id, {channel: sender}, utcnow(), queue)
    return r, db_session.get(AlertDelivery, dl_id)


def test_alert_call_twiml_says_category_school_reference_and_gathers(
        client, db_session, vault, queue, demo_directory):
    r, dl = _sent_over_twilio(db_session, vault, queue, "voice")
    resp = signed_post(client, f"/twilio/alerts/call/{dl.id}", {"CallSid": dl.provider_ref})
    assert resp.status_code == 200 and resp.mimetype == "text/xml"
    xml = resp.get_data(as_text=True)
    assert "<Gather" in xml and 'numDigits="1"' in xml
    assert f'action="https://tips.example.org/twilio/alerts/call/{dl.id}/gather"' in xml
    assert "threat" in xml and "Roosevelt High School" in xml and "Press 1" in xml
    assert " ".join(r.reference.replace("-", "")) in xml
    assert "PANGOLIN" not in xml and "locker" not in xml


def test_unsigned_alert_callbacks_are_refused(client, db_session, vault, queue, demo_directory):
    _r, dl = _sent_over_twilio(db_session, vault, queue, "sms")
    for path, form in ((f"/twilio/alerts/call/{dl.id}", {}),
                       (f"/twilio/alerts/call/{dl.id}/gather", {"Digits": "1"}),
                       (f"/twilio/alerts/sms-status/{dl.id}", {"MessageStatus": "failed"})):
        assert client.post(path, data=form).status_code == 403
        bad = signed_post(client, path, form, token="not-the-token")
        assert bad.status_code == 403
    db_session.refresh(dl)
    assert dl.status == "sent"


def test_sms_status_callbacks_mark_delivered(client, db_session, vault, queue, demo_directory):
    _r, dl = _sent_over_twilio(db_session, vault, queue, "sms")
    resp = signed_post(client, f"/twilio/alerts/sms-status/{dl.id}",
                       {"MessageSid": dl.provider_ref, "MessageStatus": "delivered"})
    assert resp.status_code == 204
    db_session.refresh(dl)
    assert dl.status == "delivered" and dl.provider_status == "delivered"


def test_undelivered_sms_falls_back_once(client, db_session, vault, queue, demo_directory):
    r, dl = _sent_over_twilio(db_session, vault, queue, "sms")
    form = {"MessageSid": dl.provider_ref, "MessageStatus": "undelivered"}
    for _ in range(2):  # Twilio may repeat a callback
        assert signed_post(client, f"/twilio/alerts/sms-status/{dl.id}", form).status_code == 204
    rows = deliveries(db_session, r.tip_id)
    assert [(d.channel, d.status) for d in rows] == [("sms", "failed"), ("email", "pending")]
    assert queued_deliveries(queue)[-1] == rows[1].id


def test_a_callback_with_another_sid_changes_nothing(client, db_session, vault, queue,
                                                     demo_directory):
    _r, dl = _sent_over_twilio(db_session, vault, queue, "sms")
    signed_post(client, f"/twilio/alerts/sms-status/{dl.id}",
                {"MessageSid": "SM" + "f" * 32, "MessageStatus": "failed"})
    db_session.refresh(dl)
    assert dl.status == "sent"


def test_unanswered_alert_call_falls_back(client, db_session, vault, queue, demo_directory):
    r, dl = _sent_over_twilio(db_session, vault, queue, "voice")
    resp = signed_post(client, f"/twilio/alerts/call-status/{dl.id}",
                       {"CallSid": dl.provider_ref, "CallStatus": "no-answer"})
    assert resp.status_code == 204
    assert [(d.channel, d.status) for d in deliveries(db_session, r.tip_id)] == [
        ("voice", "failed"), ("email", "pending")]


def test_the_last_channel_is_never_given_up_on_a_transient_error(db_session, vault, queue,
                                                                 demo_directory):
    r = route(db_session, vault, queue, [StepSpec(("slps-roosevelt-counselor",),
                                                  channels=("email",))])
    [dl_id] = queued_deliveries(queue)
    down = FailingSender(transient=True)
    for _ in range(MAX_SEND_ATTEMPTS + 2):
        with pytest.raises(TransientSendError):
            deliver_alert(db_session, dl_id, _senders(email=down), utcnow(), queue)
    [dl] = deliveries(db_session, r.tip_id)
    assert dl.status == "pending" and dl.attempts == MAX_SEND_ATTEMPTS + 2
    up = RecordingSender()
    assert deliver_alert(db_session, dl_id, _senders(email=up), utcnow(), queue).outcome == "sent"
    assert len(up.sent) == 1


def test_the_sweep_does_not_multiply_a_backlog(db_session, vault, queue, demo_directory):
    from tipline.routing.services import sweep

    r = route(db_session, vault, queue, [StepSpec(("slps-roosevelt-counselor",))])
    [dl_id] = queued_deliveries(queue)
    grace = timedelta(seconds=20)

    def resent(after: float) -> int:
        before = len(queued_deliveries(queue))
        sweep(db_session, queue, r.now + timedelta(seconds=after), grace)
        return len(queued_deliveries(queue)) - before

    # Still queued behind a backlog: re-sent after the grace period, then only after waits
    # that double with its age, not on every run.
    assert [resent(t) for t in (10, 25, 30, 40, 45, 50, 60, 100)] == [0, 1, 0, 0, 0, 1, 0, 1]
    [dl] = deliveries(db_session, r.tip_id)
    assert dl.status == "pending" and dl.id == dl_id


def test_the_sweep_stamps_only_what_the_broker_took(db_session, vault, queue, demo_directory):
    from tipline.routing.services import sweep

    r = route(db_session, vault, queue, [StepSpec(("slps-roosevelt-counselor",))])
    grace = timedelta(seconds=20)
    queue.fail = True  # broker still down: nothing stamped, so the next run tries again
    assert sweep(db_session, queue, r.now + timedelta(seconds=25), grace).deliveries_resent == 0
    queue.fail = False
    assert sweep(db_session, queue, r.now + timedelta(seconds=27), grace).deliveries_resent == 1


def test_the_sweep_waits_longer_while_the_broker_has_a_backlog(db_session, vault, queue,
                                                               demo_directory):
    from tipline.routing.services import MAX_RESEND_SPACING, sweep

    r = route(db_session, vault, queue, [StepSpec(("slps-roosevelt-counselor",))])
    grace = timedelta(seconds=20)
    at = r.now + timedelta(seconds=60)
    assert sweep(db_session, queue, at, grace, backlog=500).deliveries_resent == 0
    later = r.now + MAX_RESEND_SPACING + timedelta(seconds=1)
    assert sweep(db_session, queue, later, grace, backlog=500).deliveries_resent == 1


def test_the_outbox_never_stores_tip_content_even_when_the_rule_allows_it(
        db_session, vault, queue, demo_directory):
    r = route(db_session, vault, queue,
              [StepSpec(("slps-roosevelt-counselor",), channels=("sms", "email"),
                        include_content=True)], body=SECRET)
    outbox = OutboxSender()
    senders = {"sms": outbox, "voice": outbox, "email": outbox}
    assert deliver_alert(db_session, queued_deliveries(queue)[0], senders, utcnow(),
                         queue).outcome == "sent"
    [row] = db_session.execute(select(OutboxMessage)).scalars().all()
    assert r.reference in row.body and "not stored" in row.body
    assert "PANGOLIN" not in row.body and "locker" not in row.body


def test_a_plan_whose_only_contact_has_no_channel_fails_the_job(db_session, vault, queue,
                                                                 demo_directory):
    from tests.factories import make_tip
    from tests.routing.delivery_support import StaticPlanner
    from tipline.routing.models import RoutingJob
    from tipline.routing.services import route_job

    t = make_tip(db_session, vault, queue, school_code="slps-roosevelt")
    db_session.commit()
    planner = StaticPlanner([StepSpec(("slps-roosevelt-counselor",), channels=())])
    assert route_job(db_session, t.job_id, planner, queue, utcnow()).dispatches == 0
    job = db_session.get(RoutingJob, t.job_id)
    db_session.refresh(job)
    assert job.status == "failed" and "no contact" in (job.last_error or "")
    assert dispatches(db_session, t.tip_id) == []


def test_the_default_planner_repeats_life_safety_alerts(db_session, vault, queue,
                                                        demo_directory):
    from tests.factories import make_tip
    from tipline.routing.services import DirectoryPlanner, route_job

    t = make_tip(db_session, vault, queue, school_code="slps-roosevelt",
                 severity=Severity.LIFE_SAFETY)
    db_session.commit()
    route_job(db_session, t.job_id, DirectoryPlanner(), queue, utcnow())
    ds = dispatches(db_session, t.tip_id)
    assert ds and all(d.repeat_every_seconds == 300 for d in ds)
    assert all(d.next_alert_at is not None for d in ds)


def test_the_sweep_resends_life_safety_alerts_on_the_urgent_queue(db_session, vault, queue,
                                                                   demo_directory):
    from tipline.routing.services import URGENT_DELIVERY_TASK, sweep

    r = route(db_session, vault, queue,
              [StepSpec(("slps-safety-desk",), channels=("voice", "sms"),
                        repeat_every=timedelta(minutes=2))], severity=Severity.LIFE_SAFETY)
    ids = sorted(dl.id for dl in deliveries(db_session, r.tip_id))
    queue.sent.clear()
    res = sweep(db_session, queue, r.now + timedelta(seconds=25), timedelta(seconds=20))
    assert res.deliveries_resent == 2
    assert sorted(args[0] for name, args in queue.sent if name == URGENT_DELIVERY_TASK) == ids
    assert queued_deliveries(queue, urgent=False) == []
