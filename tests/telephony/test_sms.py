"""The SMS conversation through the signed webhook: first text, guided questions, threading,
retries, carrier keywords, Spanish, odd bodies, staff numbers."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.telephony.helpers import (
    OTHER_REPORTER,
    REPORTER,
    count,
    counts,
    new_sid,
    reply_text,
    send_sms,
    tip_messages,
)
from tipline.directory.models import School
from tipline.routing.models import RoutingJob
from tipline.telephony.models import SmsConversation, SmsOptOut, SmsStep
from tipline.tips.models import Channel, Message, Status, Tip


def only_tip(db_session) -> Tip:
    tips = db_session.execute(select(Tip)).scalars().all()
    assert len(tips) == 1
    return tips[0]


def conversation(db_session, vault, number: str = REPORTER) -> SmsConversation | None:
    return db_session.execute(select(SmsConversation).where(
        SmsConversation.phone_hash == vault.lookup_hash("phone", number))).scalar_one_or_none()


def retriage_jobs(db_session, tip_id: int) -> int:
    return len(db_session.execute(select(RoutingJob).where(
        RoutingJob.tip_id == tip_id, RoutingJob.reason == "retriage")).scalars().all())


def test_first_text_opens_a_sealed_tip_and_asks_which_school(tw_client, db_session, vault,
                                                               demo_directory, queue) -> None:
    text = reply_text(send_sms(tw_client, "someone says they will jump someone after class"))
    assert text is not None
    assert "911" in text and "988" in text
    assert "Which school" in text
    tip = only_tip(db_session)
    assert tip.channel == Channel.SMS.value
    assert tip.school_id is None
    assert tip.phone == REPORTER
    assert tip.phone_hash == vault.lookup_hash("phone", REPORTER)
    assert tip_messages(db_session, tip.id) == ["someone says they will jump someone after class"]
    assert ("tipline.route_job", (tip.id and db_session.execute(
        select(RoutingJob.id).where(RoutingJob.tip_id == tip.id)).scalar_one(),)) in queue.sent
    assert conversation(db_session, vault).step == SmsStep.SCHOOL


def test_school_named_in_first_text_is_not_asked_again(tw_client, db_session,
                                                        demo_directory) -> None:
    text = reply_text(send_sms(tw_client, "A kid at Soldan is selling pills in the bathroom"))
    tip = only_tip(db_session)
    assert tip.school.code == "slps-soldan"
    assert text is not None and "Which school" not in text
    assert "School: Soldan International Studies High School." in text


def test_school_reply_with_a_typo_sets_the_school_and_reroutes(tw_client, db_session, vault,
                                                                demo_directory) -> None:
    send_sms(tw_client, "someone keeps threatening my friend")
    text = reply_text(send_sms(tw_client, "roosvelt hihg"))
    tip = only_tip(db_session)
    assert tip.school.code == "slps-roosevelt"
    assert retriage_jobs(db_session, tip.id) == 1
    assert text is not None and "911" in text
    assert conversation(db_session, vault).step in (SmsStep.CATEGORY, SmsStep.OPEN)


def test_ambiguous_school_is_asked_again_with_numbered_choices(tw_client, db_session, vault,
                                                                demo_directory) -> None:
    send_sms(tw_client, "my friend is being hurt at home")
    text = reply_text(send_sms(tw_client, "high school"))
    assert text is not None and "Reply with a number" in text
    assert "1 " in text and "2 " in text and "988" in text
    conv = conversation(db_session, vault)
    first_id = int(conv.candidates.split(",")[0])
    reply_text(send_sms(tw_client, "1"))
    tip = only_tip(db_session)
    assert tip.school_id == first_id


def test_unknown_school_is_asked_once_more_then_the_flow_moves_on(
        tw_client, db_session, vault, demo_directory) -> None:
    send_sms(tw_client, "there is something wrong")
    again = reply_text(send_sms(tw_client, "Hogwarts"))
    assert again is not None and "could not find" in again
    menu = reply_text(send_sms(tw_client, "Xavier Institute"))
    assert menu is not None and "1 Weapon" in menu and "10 Something else" in menu
    tip = only_tip(db_session)
    assert tip.school_id is None
    assert conversation(db_session, vault).step == SmsStep.CATEGORY


def test_skip_moves_past_the_school_question(tw_client, db_session, vault,
                                             demo_directory) -> None:
    send_sms(tw_client, "something happened")
    reply_text(send_sms(tw_client, "skip"))
    assert conversation(db_session, vault).step == SmsStep.CATEGORY


def test_category_menu_number_sets_the_category(tw_client, db_session, vault,
                                                demo_directory) -> None:
    send_sms(tw_client, "something is going on")
    send_sms(tw_client, "vashon")
    assert conversation(db_session, vault).step == SmsStep.CATEGORY
    text = reply_text(send_sms(tw_client, "4"))
    tip = only_tip(db_session)
    assert tip.category == "bullying"
    assert conversation(db_session, vault).step == SmsStep.OPEN
    assert text is not None and "Thank you" in text and "988" in text


@pytest.mark.parametrize("answer", ["\u00b2", "\u2460", "9" * 5000])
def test_a_menu_answer_no_number_can_be_read_from_is_kept_as_words(
        tw_client, db_session, vault, demo_directory, answer) -> None:
    """A superscript or circled digit ("²", "①") passes str.isdigit() and int() refuses it,
    as it refuses 5,000 digits: such a reply to the category menu was lost with an error and
    the texter told to try later. It is now a reply in words, stored like any other."""
    send_sms(tw_client, "something is going on")
    send_sms(tw_client, "vashon")
    before = count(db_session, Message)
    text = reply_text(send_sms(tw_client, answer))
    assert text is not None and "could not save" not in text
    tip = only_tip(db_session)
    assert count(db_session, Message) == before + 1
    assert tip_messages(db_session, tip.id)[-1] == answer
    assert tip.category == "other"


def test_a_menu_number_in_another_script_s_digits_is_read(tw_client, db_session, vault,
                                                          demo_directory) -> None:
    send_sms(tw_client, "something is going on")
    send_sms(tw_client, "vashon")
    reply_text(send_sms(tw_client, "\u0664"))  # Arabic-Indic four
    assert only_tip(db_session).category == "bullying"


def test_a_circled_digit_for_a_numbered_school_is_kept_as_words(tw_client, db_session, vault,
                                                                  demo_directory) -> None:
    send_sms(tw_client, "my friend is being hurt at home")
    send_sms(tw_client, "high school")
    before = count(db_session, Message)
    text = reply_text(send_sms(tw_client, "\u2460"))
    assert text is not None and "could not save" not in text
    assert count(db_session, Message) == before + 1
    assert only_tip(db_session).school_id is None


def test_later_texts_thread_into_the_open_tip(tw_client, db_session, vault,
                                              demo_directory) -> None:
    send_sms(tw_client, "there will be a fight at vashon friday")
    send_sms(tw_client, "4")
    text = reply_text(send_sms(tw_client, "it is behind the gym at 3pm"))
    assert text is not None and "911" in text
    tip = only_tip(db_session)
    assert tip_messages(db_session, tip.id)[-1] == "it is behind the gym at 3pm"
    # Another reporter's text opens another tip.
    send_sms(tw_client, "my friend talks about killing himself", frm=OTHER_REPORTER)
    assert count(db_session, Tip) == 2


def test_twilio_retry_of_the_same_message_stores_nothing_new(tw_client, db_session,
                                                             demo_directory) -> None:
    sid = new_sid("SM")
    first = reply_text(send_sms(tw_client, "gun in a locker at roosevelt", sid=sid))
    before = counts(db_session)
    for _ in range(3):
        again = reply_text(send_sms(tw_client, "gun in a locker at roosevelt", sid=sid))
        assert again is not None and "911" in again and "988" in again
    assert counts(db_session) == before
    assert first is not None
    # A retry of a later message is not stored twice either.
    sid2 = new_sid("SM")
    send_sms(tw_client, "locker 114", sid=sid2)
    send_sms(tw_client, "locker 114", sid=sid2)
    tip = only_tip(db_session)
    assert tip_messages(db_session, tip.id).count("locker 114") == 1


@pytest.mark.parametrize("body", [
    "Ya me cansé 😢🔪 — someone at Vashon said «te voy a matar» 你好",
    "e\u0301\u0301 combining marks and RTL \u202e text",
])
def test_unicode_and_emoji_bodies_are_kept_exactly(tw_client, db_session, demo_directory,
                                                   body) -> None:
    assert reply_text(send_sms(tw_client, body)) is not None
    tip = only_tip(db_session)
    assert tip_messages(db_session, tip.id) == [body.strip()]


def test_a_1600_character_body_is_kept_whole(tw_client, db_session, demo_directory) -> None:
    body = ("There is going to be a fight at Vashon after school. " * 40)[:1600]
    assert len(body) == 1600
    assert reply_text(send_sms(tw_client, body)) is not None
    tip = only_tip(db_session)
    assert tip_messages(db_session, tip.id) == [body.strip()]


def test_an_empty_text_opens_no_tip_but_explains(tw_client, db_session, demo_directory) -> None:
    text = reply_text(send_sms(tw_client, ""))
    assert text is not None and "what is happening" in text and "988" in text
    assert count(db_session, Tip) == 0
    text = reply_text(send_sms(tw_client, "   "))
    assert count(db_session, Tip) == 0


@pytest.mark.parametrize("word", ["STOP", "stop", "Stop.", "STOPALL", "UNSUBSCRIBE", "cancel",
                                  "END", "quit", " Stop "])
def test_stop_variants_opt_out_and_erase_the_number(tw_client, db_session, vault,
                                                     demo_directory, word) -> None:
    send_sms(tw_client, "someone is bullying me at soldan")
    text = reply_text(send_sms(tw_client, word))
    assert text is not None and "no more texts" in text and "START" in text
    tip = only_tip(db_session)
    assert tip.phone_ct is None and tip.phone_hash is None
    assert conversation(db_session, vault) is None
    assert count(db_session, SmsOptOut) == 1
    assert tip_messages(db_session, tip.id) == ["someone is bullying me at soldan"]


def test_stop_inside_a_sentence_is_a_tip_not_a_keyword(tw_client, db_session,
                                                       demo_directory) -> None:
    reply_text(send_sms(tw_client, "please stop the bullying at soldan"))
    assert count(db_session, SmsOptOut) == 0
    assert count(db_session, Tip) == 1


def test_opted_out_number_still_reports_but_gets_no_reply(tw_client, db_session,
                                                          demo_directory) -> None:
    send_sms(tw_client, "STOP")
    assert reply_text(send_sms(tw_client, "a gun at roosevelt right now")) is None
    assert count(db_session, Tip) == 1  # the tip is never lost
    tip = db_session.execute(select(Tip)).scalar_one()
    assert tip.phone_ct is None and tip.phone_hash is None  # opted out: number not kept
    text = reply_text(send_sms(tw_client, "START"))
    assert text is not None and "on again" in text
    assert count(db_session, SmsOptOut) == 0
    assert reply_text(send_sms(tw_client, "it is in locker 12")) is not None


@pytest.mark.parametrize("word", ["UNSTOP", "start"])
def test_start_variants_opt_back_in(tw_client, db_session, demo_directory, word) -> None:
    send_sms(tw_client, "STOPALL")
    assert reply_text(send_sms(tw_client, word)) is not None
    assert count(db_session, SmsOptOut) == 0


@pytest.mark.parametrize("word", ["HELP", "help", "Info", "HELP!"])
def test_help_gives_the_purpose_and_emergency_numbers(tw_client, db_session,
                                                      demo_directory, word) -> None:
    text = reply_text(send_sms(tw_client, word))
    assert text is not None
    assert "safety tip line" in text and "911" in text and "988" in text and "STOP" in text
    assert count(db_session, Tip) == 0


def test_spanish_is_detected_from_the_first_text(tw_client, db_session, demo_directory) -> None:
    text = reply_text(send_sms(tw_client, "hay un estudiante con una pistola en la escuela"))
    assert text is not None and "escuela" in text and "911" in text and "988" in text
    assert only_tip(db_session).language == "es"


def test_spanish_can_be_chosen_with_a_keyword(tw_client, db_session, vault,
                                              demo_directory) -> None:
    text = reply_text(send_sms(tw_client, "ESPAÑOL"))
    assert text is not None and "español" in text and "988" in text
    assert count(db_session, Tip) == 0
    text = reply_text(send_sms(tw_client, "there is a fight planned"))
    assert text is not None and "¿De qué escuela" in text
    assert only_tip(db_session).language == "es"
    text = reply_text(send_sms(tw_client, "ayuda"))
    assert text is not None and "Línea de avisos" in text


def test_a_closed_tip_does_not_take_new_texts(tw_client, db_session, demo_directory) -> None:
    send_sms(tw_client, "fight at vashon")
    tip = only_tip(db_session)
    tip.status = Status.CLOSED.value
    db_session.commit()
    send_sms(tw_client, "another thing happened at vashon")
    assert count(db_session, Tip) == 2


def test_staff_number_is_handled_before_reporter_handling(tw_client, db_session,
                                                          demo_directory, monkeypatch) -> None:
    seen = []

    def fake_staff(session, number, body, now):
        seen.append((number, body))
        return "Acknowledged T-XXXX-XX" if number == "+13145550101" else None

    monkeypatch.setattr("tipline.telephony.views.staff_handler", lambda: fake_staff)
    text = reply_text(send_sms(tw_client, "ACK 1234", frm="+13145550101"))
    assert text == "Acknowledged T-XXXX-XX"
    assert count(db_session, Tip) == 0
    reply_text(send_sms(tw_client, "gun at vashon"))
    assert count(db_session, Tip) == 1
    # A number that is no directory contact's never reaches the staff handler (its check
    # rides on the webhook's first statement, so a reporter's text costs no staff lookup).
    assert seen == [("+13145550101", "ACK 1234")]


@pytest.mark.parametrize("sender", ["+13145550101", "3145550101", "(314) 555-0101",
                                    "314.555.0101", "whatsapp:+13145550101"])
def test_a_contacts_number_in_any_form_the_staff_handler_takes_reaches_it(
        tw_client, db_session, demo_directory, sender) -> None:
    from tipline.routing.ack import SMS_HOWTO

    assert reply_text(send_sms(tw_client, "on my way", frm=sender)) == SMS_HOWTO
    assert count(db_session, Tip) == 0


def test_messages_from_the_directory_are_real_schools(db_session, demo_directory) -> None:
    # Guards the fixtures the flow tests rely on.
    codes = set(db_session.execute(select(School.code)).scalars())
    assert {"slps-roosevelt", "slps-soldan", "slps-vashon"} <= codes


def test_message_rows_carry_the_message_sid_for_dedup(tw_client, db_session,
                                                      demo_directory) -> None:
    send_sms(tw_client, "fight at vashon")
    sid = new_sid("SM")
    send_sms(tw_client, "more details", sid=sid)
    assert db_session.execute(select(Message).where(Message.external_id == sid)
                              ).scalar_one().body == "more details"


def test_retry_to_an_opted_out_number_sends_nothing(tw_client, db_session,
                                                    demo_directory) -> None:
    send_sms(tw_client, "STOP")
    sid = new_sid("SM")
    assert reply_text(send_sms(tw_client, "gun at vashon", sid=sid)) is None
    assert reply_text(send_sms(tw_client, "gun at vashon", sid=sid)) is None
    assert count(db_session, Tip) == 1


def test_a_failing_staff_handler_never_costs_a_tip(tw_client, db_session, demo_directory,
                                                   monkeypatch) -> None:
    def broken(session, number, body, now):
        session.execute(select(Tip).where(Tip.id == -1))
        raise RuntimeError("bug in staff handling")

    monkeypatch.setattr("tipline.telephony.views.staff_handler", lambda: broken)
    text = reply_text(send_sms(tw_client, "fight at vashon friday", frm="+13145550101"))
    assert text is not None and "received" in text
    assert count(db_session, Tip) == 1


def test_retry_of_a_staff_text_is_not_answered_as_a_reporter(tw_client, db_session,
                                                             demo_directory,
                                                             monkeypatch) -> None:
    calls = []

    def fake_staff(session, number, body, now):
        calls.append(body)
        return "Acknowledged"

    monkeypatch.setattr("tipline.telephony.views.staff_handler", lambda: fake_staff)
    sid = new_sid("SM")
    assert reply_text(send_sms(tw_client, "ACK 1234", frm="+13145550101", sid=sid)) == \
        "Acknowledged"
    assert reply_text(send_sms(tw_client, "ACK 1234", frm="+13145550101", sid=sid)) is None
    assert calls == ["ACK 1234"]


def test_a_later_text_marks_the_tip_but_answers_to_the_questions_do_not(
        tw_client, db_session, vault, demo_directory) -> None:
    send_sms(tw_client, "someone keeps threatening my friend")
    send_sms(tw_client, "roosvelt hihg")  # the school question: part of the tip itself
    db_session.expire_all()
    assert only_tip(db_session).reporter_message_at is None
    while conversation(db_session, vault).step != SmsStep.OPEN:
        send_sms(tw_client, "skip")
        db_session.expire_all()
    assert only_tip(db_session).reporter_message_at is None
    send_sms(tw_client, "it is behind the gym at 3pm")
    db_session.expire_all()
    assert only_tip(db_session).reporter_message_at is not None


def test_category_menu_offers_basic_needs_and_dating_violence(tw_client, db_session, vault,
                                                              demo_directory) -> None:
    send_sms(tw_client, "my friend needs help")
    text = reply_text(send_sms(tw_client, "vashon"))
    assert text is not None
    assert "8 No safe place to sleep, food or housing" in text
    assert "9 Dating violence" in text and "10 Something else" in text
    reply_text(send_sms(tw_client, "8"))
    assert only_tip(db_session).category == "basic_needs"
