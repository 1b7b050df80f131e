"""Delivery measured at the phone, and paced deliveries through ``deliver_alert`` (issue 18):
``delivered_at`` from the status callback; a held text goes back to ``pending`` uncounted; an
ordinary text past its validity opens the next channel; the last channel is never given up."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.routing.delivery_support import (
    RecordingSender,
    StepSpec,
    deliveries,
    route,
)
from tipline.db import utcnow
from tipline.routing.models import AlertDelivery
from tipline.routing.pacing import Admission
from tipline.routing.senders import SendHeld, TwilioSmsSender, TwilioVoiceSender, Validity
from tipline.routing.services import deliver_alert, record_provider_status
from tipline.telephony.client import FakeTwilioGateway
from tipline.tips.models import Severity

PUBLIC = "https://tips.example.org"


class FullPacer:
    """Twilio's queue is always full; an alert that may wait gets a turn 30 s away."""

    def __init__(self) -> None:
        self.groups: list[str | None] = []

    def admit(self, recipient: str, segments: int, limit: float, *, ticket: str | None = None,
              max_wait: float = 0.0, ahead: bool = False, group: str | None = None
              ) -> Admission:
        self.groups.append(group)
        return Admission(False, 30.0, held=ticket is not None and max_wait >= 30.0)


VALIDITY = Validity(300, 30)


def _senders(pacer: Any = None, validity: Validity = VALIDITY) -> dict[str, Any]:
    gw = FakeTwilioGateway()
    return {"sms": TwilioSmsSender(gw, PUBLIC, pacer, validity),
            "voice": TwilioVoiceSender(gw, PUBLIC, pacer, validity),
            "email": RecordingSender(), "gw": gw}


def _get(db_session: Any, dl_id: int) -> AlertDelivery:
    db_session.expire_all()
    dl = db_session.get(AlertDelivery, dl_id)
    assert dl is not None
    return dl


def test_delivered_callback_records_when_and_keeps_the_first(db_session, vault, queue,
                                                             demo_directory) -> None:
    r = route(db_session, vault, queue, [StepSpec(("slps-roosevelt-counselor",), ("sms",))])
    dl = deliveries(db_session, r.tip_id)[0]
    senders = _senders()
    assert deliver_alert(db_session, dl.id, senders, utcnow()).outcome == "sent"
    ref = _get(db_session, dl.id).provider_ref
    assert _get(db_session, dl.id).delivered_at is None
    first = utcnow() + timedelta(seconds=3)
    assert record_provider_status(db_session, dl.id, ref, "delivered", None, first)
    record_provider_status(db_session, dl.id, ref, "delivered", None, first + timedelta(seconds=9))
    got = _get(db_session, dl.id)
    assert got.status == "delivered" and got.delivered_at == first


def test_an_answered_call_is_delivered_at_the_answer(db_session, vault, queue,
                                                     demo_directory) -> None:
    r = route(db_session, vault, queue, [StepSpec(("slps-roosevelt-counselor",), ("voice",))])
    dl = deliveries(db_session, r.tip_id)[0]
    deliver_alert(db_session, dl.id, _senders(), utcnow())
    ref = _get(db_session, dl.id).provider_ref
    answered = utcnow() + timedelta(seconds=6)
    record_provider_status(db_session, dl.id, ref, "ringing", None, answered - timedelta(seconds=4))
    assert _get(db_session, dl.id).delivered_at is None
    record_provider_status(db_session, dl.id, ref, "in-progress", None, answered)
    record_provider_status(db_session, dl.id, ref, "completed", None,
                           answered + timedelta(seconds=20))
    assert _get(db_session, dl.id).delivered_at == answered


def test_a_held_text_goes_back_to_pending_without_counting_an_attempt(
        db_session, vault, queue, demo_directory) -> None:
    r = route(db_session, vault, queue,
              [StepSpec(("slps-roosevelt-counselor",), ("sms", "email"))])
    dl = deliveries(db_session, r.tip_id)[0]
    senders = _senders(FullPacer())
    with pytest.raises(SendHeld):
        deliver_alert(db_session, dl.id, senders, utcnow(), queue)
    got = _get(db_session, dl.id)
    assert got.status == "pending" and got.attempts == 0
    assert senders["gw"].sent == []
    # Stamped with its turn: the sweep leaves it alone until then (plus its grace).
    assert got.updated_at > utcnow() + timedelta(seconds=25)


def test_an_ordinary_text_past_its_validity_opens_the_next_channel(
        db_session, vault, queue, demo_directory) -> None:
    r = route(db_session, vault, queue,
              [StepSpec(("slps-roosevelt-counselor",), ("sms", "email"))])
    dl = deliveries(db_session, r.tip_id)[0]
    senders = _senders(FullPacer())
    later = utcnow() + timedelta(seconds=299)
    assert deliver_alert(db_session, dl.id, senders, later, queue).outcome == "failed"
    rows = deliveries(db_session, r.tip_id)
    assert [(d.channel, d.status) for d in rows] == [("sms", "failed"), ("email", "pending")]
    assert "validity" in (rows[0].last_error or "")
    assert senders["gw"].sent == []


def test_the_last_channel_is_held_not_given_up(db_session, vault, queue,
                                               demo_directory) -> None:
    r = route(db_session, vault, queue, [StepSpec(("slps-roosevelt-counselor",), ("sms",))])
    dl = deliveries(db_session, r.tip_id)[0]
    with pytest.raises(SendHeld):
        deliver_alert(db_session, dl.id, _senders(FullPacer()),
                      utcnow() + timedelta(hours=1), queue)
    assert _get(db_session, dl.id).status == "pending"


def test_a_life_safety_text_that_cannot_go_in_time_fails_at_once_while_its_call_goes(
        db_session, vault, queue, demo_directory) -> None:
    r = route(db_session, vault, queue,
              [StepSpec(("slps-roosevelt-counselor",), ("sms", "voice", "email"),
                        repeat_every=timedelta(minutes=2))], severity=Severity.LIFE_SAFETY)
    by_channel = {d.channel: d for d in deliveries(db_session, r.tip_id)}
    assert set(by_channel) == {"sms", "voice"}  # life-safety: call and text at once
    pacer = FullPacer()
    senders = _senders(pacer)
    out = deliver_alert(db_session, by_channel["sms"].id, senders, utcnow(), queue)
    assert out.outcome == "failed"  # no wait in tipline: the next channel opens now
    assert "validity" in (_get(db_session, by_channel["sms"].id).last_error or "")
    # The text named its tip to the pacer (a tip's first text goes first: routing.pacing).
    assert pacer.groups == [f"tip{r.tip_id}"]
