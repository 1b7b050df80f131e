"""Issue 12, the student's form and receipt over HTTP: search then Send, the danger question
with no default, Enter never sends, tappable safety lines, errors, language switch without
JavaScript, and a receipt that is true about where the tip went and when to come back."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import REPO
from tests.intake.helpers import nonce_from, open_form, post_tip, tip_fields
from tipline.intake import views
from tipline.routing.policy import load_policy_file
from tipline.tips.models import Severity, Tip

CODE = re.compile(r"[0-9A-Z]{4}(?:-[0-9A-Z]{4}){3}")
TITLE = re.compile(r"<title>(.*?)</title>", re.S)


def _tips(db_session: Any) -> list[Tip]:
    db_session.expire_all()
    return list(db_session.execute(select(Tip).order_by(Tip.id)).scalars())


# -- search, then Send ------------------------------------------------------------------------

@pytest.mark.parametrize(("school", "query", "expected"), [
    ("slps-soldan", "sold", "slps-soldan"),  # a school chosen: whatever is left in the box
    ("", "vashon", "slps-vashon"),  # none chosen, and the search finds exactly one
])
def test_send_after_a_search_sends(client, db_session, demo_directory, school, query,
                                   expected) -> None:
    resp = post_tip(client, school=school, school_q=query)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "Your tip was received" in html
    assert "not sent yet" not in html
    (tip,) = _tips(db_session)
    assert tip.school is not None and tip.school.code == expected
    assert tip.school.name in html  # the receipt says where it went


def test_send_with_a_search_that_finds_several_asks_for_the_school(
    client, db_session, demo_directory
) -> None:
    resp = post_tip(client, school="", school_q="high", body="Words kept SR-2")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert 'id="school-error"' in html and "Words kept SR-2" in html
    assert re.search(r"\d+ schools match “high”", html)
    assert _tips(db_session) == []


def test_find_never_sends_even_with_an_empty_box(client, db_session, demo_directory) -> None:
    token, html = open_form(client)
    for query in ("", "roos"):
        data = tip_fields(token, school_q=query, find_school="1", submission=nonce_from(html))
        data.pop("send")
        resp = client.post("/report", data=data)
        assert resp.status_code == 200
        assert "A student said he will start a fight" in resp.get_data(as_text=True)
    assert _tips(db_session) == []


# -- the danger question --------------------------------------------------------------------

def test_the_danger_question_has_no_answer_chosen(client, demo_directory) -> None:
    _token, html = open_form(client)
    radios = re.findall(r'<input[^>]*name="danger_now"[^>]*>', html)
    assert len(radios) == 3 and not any("checked" in r for r in radios)
    assert "If you skip this question, we count it as “I'm not sure”." in html


def test_no_danger_answer_is_not_sure_and_the_receipt_says_so(
    client, db_session, demo_directory
) -> None:
    resp = post_tip(client, danger_now="", category="bullying")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200, html
    assert "You did not say whether someone is in danger right now" in html
    (tip,) = _tips(db_session)
    assert not tip.danger_now and tip.severity >= Severity.HIGH  # as "not sure", never "no"
    assert tip.reporter_severity >= Severity.HIGH


def test_an_explicit_no_gets_no_note(client, db_session, demo_directory) -> None:
    html = post_tip(client, danger_now="no").get_data(as_text=True)
    assert "You did not say whether" not in html


# -- Enter does not send ---------------------------------------------------------------------

def test_the_forms_default_button_is_disabled(client, demo_directory) -> None:
    """HTML implicit submission (Enter, a phone's Go key) clicks the form's first submit
    button, and does nothing when it is disabled; the browser test presses the keys."""
    _token, html = open_form(client)
    buttons = re.findall(r"<button[^>]*>", html)
    tip_buttons = [b for b in buttons if 'type="submit"' in b and (
        'form="tipform"' in b or html.index(b) > html.index('<form id="tipform"'))]
    first = tip_buttons[0]
    assert 'form="tipform"' in first and " disabled" in first and " hidden" in first
    assert html.index(first) < html.index('<nav aria-label="Language"')


# -- safety lines ----------------------------------------------------------------------------

def test_local_safety_lines_are_tappable(client, demo_directory) -> None:
    html = client.get("/danger").get_data(as_text=True)
    assert '<a href="tel:+13148897233">(314) 889-SAFE</a>' in html
    assert '<a href="tel:+18667487047">(866) 748-7047</a>' in html
    assert 'href="tel:911"' in html and 'href="tel:988"' in html


# -- errors ------------------------------------------------------------------------------------

def test_an_error_page_says_so_in_its_title_and_focuses_the_summary(
    client, demo_directory
) -> None:
    resp = post_tip(client, category="", body="", where="x" * 301)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    title = TITLE.search(html)
    assert title and title.group(1).startswith("Error: Send a tip")
    summary = re.search(r'<div class="error-summary"[^>]*>', html)
    assert summary and "autofocus" in summary.group(0) and 'role="alert"' in summary.group(0)
    block = html[html.index('id="error-summary"'):html.index("</div>", html.index(
        'id="error-summary"'))]
    text = re.sub(r"<[^>]+>", "", block)
    assert "Where? Please keep this shorter." in text
    assert not re.search(r"[?.:!]\s*[?.:!]", text.replace("...", "")), text


def test_a_form_without_errors_has_the_plain_title(client, demo_directory) -> None:
    _token, html = open_form(client)
    title = TITLE.search(html)
    assert title and title.group(1).startswith("Send a tip")


# -- language switch without JavaScript --------------------------------------------------------

def test_the_language_buttons_keep_the_words_and_the_nonce(client, db_session,
                                                           demo_directory) -> None:
    token, html = open_form(client)
    assert re.search(r'<button type="submit" form="tipform" name="lang" value="es"', html)
    nonce = nonce_from(html)
    data = tip_fields(token, body="Half-written NJS-7", lang="es", submission=nonce)
    data.pop("send")  # a language button sends only its own name and value
    resp = client.post("/report", data=data)
    out = resp.get_data(as_text=True)
    assert resp.status_code == 200 and '<html lang="es">' in out
    assert "Half-written NJS-7" in out and "Bus stop on Arsenal St" in out
    assert nonce_from(out) == nonce  # the session-checked nonce is kept: still one tip
    assert _tips(db_session) == []


# -- the receipt ------------------------------------------------------------------------------

def test_the_receipt_shows_one_code_and_not_the_staff_reference(
    client, db_session, demo_directory
) -> None:
    html = post_tip(client).get_data(as_text=True)
    (tip,) = _tips(db_session)
    assert len(set(CODE.findall(html))) == 1
    assert tip.reference not in html and "Reference" not in html


def test_the_receipt_names_the_school_it_went_to(client, db_session, demo_directory) -> None:
    html = post_tip(client, school="slps-roosevelt").get_data(as_text=True)
    assert "people who handle tips for Roosevelt High School" in html
    assert "at the school are being alerted" not in html


def test_a_tip_without_a_school_does_not_say_the_school(client, db_session,
                                                        demo_directory) -> None:
    html = post_tip(client, school="none").get_data(as_text=True)
    assert "You did not name a school" in html and "safety team" in html
    assert "the school are being alerted" not in html and "for the school" not in html


@pytest.mark.parametrize("category", ["weapon", "self_harm"])
def test_an_urgent_tip_says_check_back_in_an_hour(client, demo_directory, category) -> None:
    html = post_tip(client, category=category).get_data(as_text=True)
    assert "Check back in about an hour" in html
    assert "a day or two" not in html


@pytest.mark.parametrize(("now", "expected"), [
    (datetime(2026, 12, 7, 16, 0, tzinfo=UTC), "Check back later today"),  # Mon 10:00 St. Louis
    (datetime(2026, 12, 12, 4, 0, tzinfo=UTC), "Check back on Monday after 7:00"),  # Fri 22:00
])
def test_a_bullying_tip_follows_the_districts_school_hours(
    client, db_session, demo_directory, monkeypatch, now, expected
) -> None:
    load_policy_file(db_session, REPO / "config" / "policy.demo.yaml", loaded_by="test")
    monkeypatch.setattr(views, "utcnow", lambda: now)
    html = post_tip(client, category="bullying", danger_now="no",
                    body="They keep making fun of my friend's clothes in class",
                    when="", where="", who="", how_known="").get_data(as_text=True)
    assert expected in html, html
    assert "Check back in about an hour" not in html


def test_the_receipt_in_spanish_and_bosnian(client, db_session, demo_directory) -> None:
    for lang, words in (("es", "Vuelve a revisar en una hora"), ("bs", "Provjeri ponovo za")):
        client.get(f"/report?lang={lang}")
        html = post_tip(client, category="weapon").get_data(as_text=True)
        assert words in html, lang


# -- coming back: the follow-up page stays as true as the receipt -------------------------------

def _follow_up(client: Any, receipt_html: str) -> str:
    (code,) = set(CODE.findall(receipt_html))
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"',
                      client.get("/followup").get_data(as_text=True))
    assert token is not None
    resp = client.post("/followup", data={"csrf_token": token.group(1), "code": code})
    assert resp.status_code == 303
    return str(client.get("/followup/tip").get_data(as_text=True))


def test_the_follow_up_of_a_tip_without_a_school_does_not_say_the_school(
    client, db_session, demo_directory
) -> None:
    html = _follow_up(client, post_tip(client, school="none").get_data(as_text=True))
    assert "The tip line's safety team has been alerted" in html.replace("&#39;", "'")
    assert "for the school" not in html and "school staff" not in html.lower()


def test_the_follow_up_of_a_tip_with_a_school_names_the_school(
    client, db_session, demo_directory
) -> None:
    html = _follow_up(client, post_tip(client, school="slps-roosevelt").get_data(as_text=True))
    assert "people who handle tips for the school have been alerted" in html
    assert "Reference for school staff" in html


def test_the_follow_up_of_an_urgent_tip_says_about_an_hour(client, demo_directory) -> None:
    html = _follow_up(client, post_tip(client, category="weapon").get_data(as_text=True))
    assert "No questions from staff yet. Please check again in about an hour." in html
    assert "day or two" not in html


def test_the_follow_up_of_a_bullying_tip_follows_school_hours(
    client, db_session, demo_directory, monkeypatch
) -> None:
    load_policy_file(db_session, REPO / "config" / "policy.demo.yaml", loaded_by="test")
    monkeypatch.setattr(views, "utcnow", lambda: datetime(2026, 12, 12, 4, 0, tzinfo=UTC))
    receipt = post_tip(client, category="bullying", danger_now="no",
                       body="They keep making fun of my friend's clothes in class",
                       when="", where="", who="", how_known="").get_data(as_text=True)
    html = _follow_up(client, receipt)
    assert "No questions from staff yet. Staff read tips like this during school hours. " \
           "Check back on Monday after 7:00" in html, html
    assert "day or two" not in html


def test_the_follow_up_in_spanish_and_bosnian_without_a_school(client, demo_directory) -> None:
    for lang, words in (("es", "equipo de seguridad de la línea de avisos"),
                        ("bs", "Sigurnosni tim linije za dojave")):
        client = client.application.test_client()  # a reporter of their own
        client.get(f"/report?lang={lang}")
        html = _follow_up(client, post_tip(client, school="none").get_data(as_text=True))
        assert words in html, lang
