"""Alert texts paced to the senders' rate: life-safety first, ordinary ones held in tipline,
a validity period on every text (``tipline.routing.pacing``, ``TwilioSmsSender``)."""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Any

import pytest

from tests.twilio_support import (
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    TEST_FROM_NUMBER,
    RecordingHttpClient,
    twilio_mock_url,
)
from tipline.routing.pacing import LocalPacer, Rate, RedisPacer, segments
from tipline.routing.senders import (
    Alert,
    PermanentSendError,
    SendHeld,
    TwilioSmsSender,
    TwilioVoiceSender,
    Validity,
)
from tipline.telephony.client import FakeTwilioGateway, RestTwilioGateway

__all__ = ["twilio_mock_url"]

PUBLIC = "https://tips.example.org"
TEXT = "tipline alert T-4821-KQ: weapon, severity high, Roosevelt High School. Reply ACK 4821."
SERVICE = "MG" + "b" * 32


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _alert(to: str, urgent: bool = False, age: float = 0.0, dl: int = 1,
           last: bool = False, channel: str = "sms") -> Alert:
    return Alert(channel, to, "s", TEXT, dl, "4821", urgent=urgent, age_seconds=age,
                 last_channel=last)


def test_segments_count_gsm_and_unicode() -> None:
    assert segments("a" * 160) == 1 and segments("a" * 161) == 2 and segments("a" * 307) == 3
    assert segments("ñ" * 160) == 1  # in the GSM set
    assert segments("€" * 80) == 1 and segments("€" * 81) == 2  # extension: two units each
    assert segments("č" * 70) == 1 and segments("č" * 71) == 2  # Bosnian: UCS-2


def test_ordinary_alerts_are_held_once_the_queue_is_full_and_life_safety_still_goes() -> None:
    clock = Clock()
    gw = FakeTwilioGateway()
    sender = TwilioSmsSender(gw, PUBLIC, LocalPacer(Rate(1.0, 1), clock), Validity(300, 30))
    for n in range(3):  # 0, 1 and 2 s of queue: within the 2 s headroom
        sender.send(None, _alert("+13145550101", dl=n))  # type: ignore[arg-type]
    with pytest.raises(SendHeld) as held:
        sender.send(None, _alert("+13145550101", dl=9))  # type: ignore[arg-type]
    assert 0.5 <= held.value.wait <= 10
    assert len(gw.sent) == 3
    # A life-safety text is handed over now, ahead of the held one.
    sender.send(None, _alert("+13145550101", urgent=True, dl=10))  # type: ignore[arg-type]
    assert len(gw.sent) == 4 and gw.sent[-1]["validity_period"] == 30
    # Once Twilio's queue has drained, the held one goes.
    clock.t += 4
    sender.send(None, _alert("+13145550101", age=4, dl=9))  # type: ignore[arg-type]
    assert gw.sent[-1]["validity_period"] == 296


def test_a_pool_of_five_takes_five_recipients_at_once_but_one_recipient_one_a_second() -> None:
    clock = Clock()
    pacer = LocalPacer(Rate(1.0, 5), clock)
    # Five texts to five people leave the pool's queue within a second (0.2 s each).
    assert all(pacer.admit(f"+1314555010{n}", 1, 0.9).ok for n in range(5))
    assert not pacer.admit("+13145550100", 1, 0.9).ok  # that recipient's number is busy
    clock.t += 1
    assert pacer.admit("+13145550100", 1, 0.9).ok


def test_held_alerts_get_turns_in_order_and_each_comes_back_once() -> None:
    """First come, first served: each held alert has its own turn, one text's time apart, so
    a surge of held alerts costs one retry each, not a poll every few seconds."""
    clock = Clock()
    pacer = LocalPacer(Rate(1.0, 5), clock)
    people = [f"+131455501{n:02d}" for n in range(20)]
    for n, who in enumerate(people[:10]):  # 10 texts fill 2 s of the pool's queue
        assert pacer.admit(who, 1, 2.0, ticket=f"a{n}", max_wait=300).ok
    turns = []
    for n, who in enumerate(people[10:]):
        got = pacer.admit(who, 1, 2.0, ticket=f"b{n}", max_wait=300)
        assert got.held
        turns.append(got.wait)
    assert turns == sorted(turns) and turns[-1] - turns[0] == pytest.approx(9 * 0.2)
    # A newcomer may not jump the line while turns are waiting.
    assert pacer.admit("+13145559999", 1, 2.0, ticket="c", max_wait=300).held
    # Coming back early is told to wait; at its turn it goes.
    assert pacer.admit(people[15], 1, 2.0, ticket="b5", max_wait=300).held
    clock.t += turns[5]
    assert pacer.admit(people[15], 1, 2.0, ticket="b5", max_wait=300).ok


def test_an_ordinary_alert_whose_turn_is_past_its_validity_fails_at_once() -> None:
    clock = Clock()
    gw = FakeTwilioGateway()
    sender = TwilioSmsSender(gw, PUBLIC, LocalPacer(Rate(1.0, 1), clock), Validity(300, 30))
    for n in range(20):  # life-safety texts: 20 s of queue
        sender.send(None, _alert(f"+1314555{n:04d}", urgent=True, dl=n))  # type: ignore[arg-type]
    with pytest.raises(PermanentSendError, match="validity"):  # 10 s left: no waiting 18 s
        sender.send(None, _alert("+13145550101", age=290, dl=99))  # type: ignore[arg-type]
    assert len(gw.sent) == 20


def test_an_ordinary_alert_past_its_validity_fails_and_is_never_handed_over() -> None:
    gw = FakeTwilioGateway()
    sender = TwilioSmsSender(gw, PUBLIC, LocalPacer(Rate()), Validity(300, 30))
    with pytest.raises(PermanentSendError, match="validity"):
        sender.send(None, _alert("+13145550101", age=297))  # type: ignore[arg-type]
    assert gw.sent == []


def test_a_life_safety_alert_that_would_wait_past_its_validity_fails_at_once() -> None:
    clock = Clock()
    gw = FakeTwilioGateway()
    sender = TwilioSmsSender(gw, PUBLIC, LocalPacer(Rate(1.0, 1), clock), Validity(300, 10))
    # It may join a queue up to its validity less 5 s long: 0..5 s.
    for n in range(6):
        sender.send(None, _alert("+13145550101", urgent=True, dl=n))  # type: ignore[arg-type]
    with pytest.raises(PermanentSendError, match="validity"):
        sender.send(None, _alert("+13145550101", urgent=True, dl=7))  # type: ignore[arg-type]
    assert len(gw.sent) == 6


def test_a_life_safety_text_on_its_last_channel_goes_ahead_of_held_ordinary_ones() -> None:
    """The routing benchmark's 28 s: a life-safety dispatch's ``[voice, sms]`` text is its last
    channel, and it used to take a turn at the back of the ordinary alerts' line."""
    clock = Clock()
    gw = FakeTwilioGateway()
    sender = TwilioSmsSender(gw, PUBLIC, LocalPacer(Rate(1.0, 5), clock), Validity(300, 30))
    people = [f"+131455502{n:02d}" for n in range(60)]
    held = 0
    for n, who in enumerate(people):  # a surge of ordinary texts: 2 s in Twilio, 10 s held
        try:
            sender.send(None, _alert(who, dl=n))  # type: ignore[arg-type]
        except SendHeld:
            held += 1
    assert held >= 49 and len(gw.sent) == 60 - held
    sender.send(None, _alert("+13145550101", urgent=True, last=True, dl=100))  # type: ignore[arg-type]
    assert len(gw.sent) == 61 - held and gw.sent[-1]["to"] == "+13145550101"


def test_a_life_safety_alert_that_may_not_fail_keeps_its_place_ahead_of_the_line() -> None:
    """Past its limit it is held, not failed, with its place in Twilio's queue taken at once:
    ordinary alerts asking meanwhile are behind it, and at its turn it goes."""
    clock = Clock()
    pacer = LocalPacer(Rate(1.0, 1), clock)
    for n in range(5):  # 5 s of Twilio's queue already
        assert pacer.admit("calls", 1, 5.0, ticket=f"u{n}", ahead=True, max_wait=1e9).ok
    got = pacer.admit("calls", 1, 2.0, ticket="late", ahead=True, max_wait=1e9)
    assert got.held and got.wait == pytest.approx(3.0)
    # An ordinary call asking now waits behind it (its place was taken: 6 s of queue).
    ordinary = pacer.admit("calls", 1, 2.0, ticket="o1", max_wait=300)
    assert ordinary.held and ordinary.wait == pytest.approx(4.0)
    assert pacer.admit("calls", 1, 2.0, ticket="late", ahead=True, max_wait=1e9).held
    clock.t += 3.0
    assert pacer.admit("calls", 1, 2.0, ticket="late", ahead=True, max_wait=1e9).ok
    # Its place is not taken twice: the ordinary one goes at its own turn.
    clock.t += 1.0
    assert pacer.admit("calls", 1, 2.0, ticket="o1", max_wait=300).ok


def test_a_life_safety_call_past_the_accounts_rate_is_held_not_failed() -> None:
    clock = Clock()
    gw = FakeTwilioGateway()
    sender = TwilioVoiceSender(gw, PUBLIC, LocalPacer(Rate(1.0, 1), clock), Validity(300, 30))
    for n in range(26):  # 0..25 s of calls ahead: within its 30 s less 5
        sender.send(None, _alert(f"+1314555{n:04d}", urgent=True, channel="voice", dl=n))  # type: ignore[arg-type]
    with pytest.raises(SendHeld) as held:
        sender.send(None, _alert("+13145550999", urgent=True, channel="voice", dl=99))  # type: ignore[arg-type]
    assert held.value.wait == pytest.approx(1.0)
    clock.t += 40  # older than its text's validity: a call still goes
    sender.send(None, _alert("+13145550999", urgent=True, channel="voice", dl=99, age=40))  # type: ignore[arg-type]
    assert len(gw.calls) == 27


def test_redis_pacer_is_shared_and_keeps_no_number() -> None:
    url = os.environ.get("TIPLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    prefix = f"tipline:test-pace:{uuid.uuid4().hex}"
    a = RedisPacer(Rate(1.0, 1), url, prefix=prefix)
    b = RedisPacer(Rate(1.0, 1), url, prefix=prefix)  # another worker process
    assert a.admit("+13145550101", 1, 1.5).ok
    assert b.admit("+13145550101", 1, 1.5).ok
    got = b.admit("+13145550101", 1, 1.5)
    assert not got.ok and got.wait > 0
    # An ordinary one gets a turn, and the turn is the same one when it asks again.
    turn = a.admit("+13145550101", 1, 0.2, ticket="77", max_wait=60)
    again = b.admit("+13145550101", 1, 0.2, ticket="77", max_wait=60)
    assert turn.held and again.held and abs(again.wait - turn.wait) < 0.5
    # Life-safety that may not fail: its place taken now, ahead of that turn; held till then.
    urgent = a.admit("+13145550101", 1, 0.2, ticket="78", max_wait=1e9, ahead=True)
    assert urgent.held and urgent.wait < turn.wait
    again = b.admit("+13145550101", 1, 0.2, ticket="78", max_wait=1e9, ahead=True)
    assert again.held and abs(again.wait - urgent.wait) < 0.5
    keys = [k.decode() for k in a._redis.keys(f"{prefix}:*")]
    assert keys and not any("5550101" in k for k in keys)
    a._redis.delete(*keys)


def test_an_unreachable_pacer_sends_rather_than_holds() -> None:
    gw = FakeTwilioGateway()
    pacer = RedisPacer(Rate(), "redis://127.0.0.1:9/0")
    TwilioSmsSender(gw, PUBLIC, pacer).send(None, _alert("+13145550101"))  # type: ignore[arg-type]
    assert len(gw.sent) == 1


def test_messaging_service_and_validity_period_against_twilios_contract(
        twilio_mock_url: str) -> None:
    """Through a Messaging Service the text names the service, not a From; ValidityPeriod
    is sent; Prism checks both against Twilio's contract."""
    http = RecordingHttpClient()
    gw = RestTwilioGateway(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM_NUMBER,
                           api_base=twilio_mock_url, http_client=http,
                           messaging_service_sid=SERVICE, voice_from_number="+13145550199")
    sid = TwilioSmsSender(gw, PUBLIC).send(None, _alert("+13145550101", age=10))  # type: ignore[arg-type]
    assert sid.startswith("SM")
    sent: Any = http.last()
    assert sent.data["MessagingServiceSid"] == SERVICE and "From" not in sent.data
    assert sent.data["ValidityPeriod"] == 290
    gw.start_call("+13145550101", url=f"{PUBLIC}/twilio/alerts/call/1")
    assert http.last().data["From"] == "+13145550199"
    gw.find_messages("+13145550101")  # any number of the pool may have sent it: To only
    asked = http.last()
    assert asked.params.get("To") == "+13145550101" and "From" not in asked.params


def _pacers(rate: Rate) -> list[Any]:
    """The same rule in both pacers: this process's clocks and Redis's (a fresh prefix)."""
    url = os.environ.get("TIPLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    return [LocalPacer(rate, Clock()),
            RedisPacer(rate, url, prefix=f"tipline:test-pace:{uuid.uuid4().hex}")]


def _forget(pacer: Any) -> None:
    if isinstance(pacer, RedisPacer):
        keys = pacer._redis.keys(f"{pacer.prefix}:*")
        if keys:
            pacer._redis.delete(*keys)


@pytest.mark.parametrize("which", [0, 1], ids=["local", "redis"])
def test_a_life_safety_tips_first_text_goes_before_the_later_texts_of_tips_alerted_before(
        which: int) -> None:
    """Issue 18's missed target: a later life-safety tip's first text waited in Twilio's
    first-in-first-out queues behind every text of the tips before it (10.5-12.6 s to the
    phone). A tip's later texts now take their place ahead of ordinary alerts but are handed
    over only near the front, so the next tip's first text finds the queue short."""
    pacer = _pacers(Rate(1.0, 1))[which]
    try:
        # Tip A's first text (two segments: 2 s of the queue) goes at once.
        assert pacer.admit("+13145550101", 2, 25.0, ticket="1", max_wait=25.0,
                           group="tipA").ok
        # Its text to another contact has its place, held until 1 s from the front.
        later = pacer.admit("+13145550102", 1, 25.0, ticket="2", max_wait=25.0, group="tipA")
        assert later.held and later.wait == pytest.approx(1.0, abs=0.2)
        # Tip B's first text is not behind it: handed over now.
        first = pacer.admit("+13145550103", 1, 25.0, ticket="3", max_wait=25.0, group="tipB")
        assert first.ok and first.wait == pytest.approx(3.0, abs=0.2)
        # Asking again before its turn, tip A's later text is still held.
        assert pacer.admit("+13145550102", 1, 25.0, ticket="2", max_wait=25.0,
                           group="tipA").held
        # An ordinary text is behind both (the places are taken: 4 s of queue).
        ordinary = pacer.admit("+13145550104", 1, 2.0, ticket="9", max_wait=300.0)
        assert ordinary.held and ordinary.wait == pytest.approx(2.0, abs=0.2)
        # A later text that would wait past its validity fails at once (its call carries it).
        late = pacer.admit("+13145550105", 1, 25.0, ticket="4", max_wait=2.0, group="tipA")
        assert not late.ok and not late.held
    finally:
        _forget(pacer)


@pytest.mark.parametrize("which", [0, 1], ids=["local", "redis"])
def test_a_tips_first_text_to_a_busy_contact_lets_a_less_busy_one_go_first(which: int) -> None:
    """The routing benchmark's delivery tasks of one tip ask in the same order every time, so
    without this the same contact's number carried every tip's first text."""
    pacer = _pacers(Rate(1.0, 5))[which]
    busy, free = "+13145550201", "+13145550202"
    try:
        for _n in range(3):  # 3 s of texts to one contact already handed to Twilio
            assert pacer.admit(busy, 1, 25.0).ok
        # Tip C's text to the busy contact asks first: held a moment, not yet the first.
        wait = pacer.admit(busy, 1, 25.0, ticket="c1", max_wait=25.0, group="tipC")
        assert wait.held and wait.wait == pytest.approx(0.5)
        # Its text to a free contact goes first.
        assert pacer.admit(free, 1, 25.0, ticket="c2", max_wait=25.0, group="tipC").ok
        # Back, the busy one is a later text now: its place taken, held near the front.
        again = pacer.admit(busy, 1, 25.0, ticket="c1", max_wait=25.0, group="tipC")
        assert again.held and again.wait > 1.0
        # Tip D has only the busy contact: after the moment it goes anyway.
        assert pacer.admit(busy, 1, 25.0, ticket="d1", max_wait=25.0, group="tipD").held
        assert pacer.admit(busy, 1, 25.0, ticket="d1", max_wait=25.0, group="tipD").ok
        # Tip E's contacts are all busy: the one that waited goes first, though another
        # of its texts has taken a place meanwhile (a place held in tipline is not a text
        # on a phone; the routing benchmark's tips waited 3-4 s for their first before this).
        other = "+13145550203"
        for _n in range(2):
            assert pacer.admit(other, 1, 25.0).ok
        assert pacer.admit(busy, 1, 25.0, ticket="e1", max_wait=25.0, group="tipE").held
        assert pacer.admit(other, 1, 25.0, ticket="e2", max_wait=25.0, group="tipE").held
        assert pacer.admit(busy, 1, 25.0, ticket="e1", max_wait=25.0, group="tipE").ok
    finally:
        _forget(pacer)


def test_a_held_later_text_goes_at_its_turn_without_taking_its_place_twice() -> None:
    clock = Clock()
    pacer = LocalPacer(Rate(1.0, 1), clock)
    assert pacer.admit("+13145550101", 3, 25.0, ticket="1", max_wait=25.0, group="tipA").ok
    later = pacer.admit("+13145550102", 1, 25.0, ticket="2", max_wait=25.0, group="tipA")
    assert later.held and later.wait == pytest.approx(2.0)
    clock.t += 2.0
    assert pacer.admit("+13145550102", 1, 25.0, ticket="2", max_wait=25.0, group="tipA").ok
    # Its place was taken when it first asked: the queue is 3 s + 1 s long from the start.
    assert pacer.admit("+13145550103", 1, 25.0, ticket="3", max_wait=25.0,
                       group="tipB").wait == pytest.approx(2.0)
    # After GROUP_TTL a tip's next text (a repeat round) is a first again.
    clock.t += 61.0
    assert pacer.admit("+13145550104", 1, 25.0, ticket="5", max_wait=25.0, group="tipA").ok


def test_a_life_safety_tips_texts_after_its_first_wait_in_the_sender() -> None:
    clock = Clock()
    gw = FakeTwilioGateway()
    sender = TwilioSmsSender(gw, PUBLIC, LocalPacer(Rate(1.0, 1), clock), Validity(300, 30))

    def text(to: str, dl: int, tip: int) -> Alert:
        return Alert("sms", to, "s", TEXT, dl, "4821", urgent=True, last_channel=True,
                     tip_id=tip)

    for n in range(3):  # tip 1's first text, then two more to its other contacts
        with contextlib.suppress(SendHeld):
            sender.send(None, text(f"+131455503{n:02d}", n, 1))  # type: ignore[arg-type]
    assert len(gw.sent) == 2  # the first, and one within 1 s of the front
    sender.send(None, text("+13145550399", 9, 2))  # type: ignore[arg-type]
    assert gw.sent[-1]["to"] == "+13145550399"  # tip 2's first: before tip 1's third
