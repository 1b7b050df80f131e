"""The tip form over HTTP: submission, receipt, school search, pictures, and never losing words."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select, text

from tests.intake.helpers import (
    csrf_from,
    jpeg_with_gps,
    nonce_from,
    open_form,
    png_bytes,
    post_tip,
    tip_fields,
)
from tipline.intake import triage
from tipline.routing.models import RoutingJob
from tipline.tips.models import Severity, Tip
from tipline.tips.receipts import RECEIPT_PURPOSE, normalize_code

CODE = re.compile(r'id="receipt-code"[^>]*><code>([0-9A-Z-]+)</code>')


def _code(html: str) -> str:
    m = CODE.search(html)
    assert m, "no receipt code on the page"
    return m.group(1)


def _tips(db_session: Any) -> list[Tip]:
    db_session.expire_all()
    return list(db_session.execute(select(Tip).order_by(Tip.id)).scalars())


def test_start_danger_privacy_and_form_pages_render(client, demo_directory) -> None:
    for url in ("/", "/danger", "/privacy", "/report", "/followup"):
        resp = client.get(url)
        html = resp.get_data(as_text=True)
        assert resp.status_code == 200, url
        assert "911" in html and "988" in html, url  # emergency guidance on every page
    form = client.get("/report").get_data(as_text=True)
    assert '<optgroup label="Saint Louis Public Schools">' in form
    assert '<optgroup label="County Partnership Demo School District">' in form
    assert 'value="none"' in form  # "I don't know / not about a school"


def test_submission_is_sealed_committed_routed_and_receipted(
    client, db_session, vault, queue, demo_directory
) -> None:
    resp = post_tip(client)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200, html
    assert "Your tip was received" in html
    code = _code(html)
    assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}", code)  # 80 bits, Crockford base32
    (tip,) = _tips(db_session)
    assert tip.receipt_hash == vault.lookup_hash(RECEIPT_PURPOSE, normalize_code(code))
    assert tip.school is not None and tip.school.code == "slps-roosevelt"
    assert tip.category == "threat"
    assert tip.channel == "web" and tip.language == "en"
    assert tip.messages[0].body.startswith("A student said he will start a fight")
    assert json.loads(tip.details_json or "{}") == {
        "when": "Friday after school", "where": "Bus stop on Arsenal St", "who": "a junior",
        "how_known": "I heard him say it",
    }
    job = db_session.execute(select(RoutingJob).where(RoutingJob.tip_id == tip.id)).scalar_one()
    assert queue.sent == [("tipline.route_job", (job.id,))]  # enqueued after the commit
    raw = db_session.execute(text("SELECT body_ct FROM messages WHERE tip_id=:t"),
                             {"t": tip.id}).scalar_one()
    assert b"fight" not in bytes(raw)
    assert code not in json.dumps([tip.receipt_hash, tip.reference, tip.external_id])


def test_the_same_page_sent_twice_makes_one_tip_and_the_same_receipt(
    client, db_session, demo_directory
) -> None:
    token, html = open_form(client)
    data = tip_fields(token, submission=nonce_from(html))
    first = client.post("/report", data=dict(data), content_type="multipart/form-data")
    again = client.post("/report", data=dict(data), content_type="multipart/form-data")
    assert first.status_code == again.status_code == 200
    code1 = _code(first.get_data(as_text=True))
    code2 = _code(again.get_data(as_text=True))
    assert code1 == code2
    assert len(_tips(db_session)) == 1


def test_two_pages_make_two_tips_with_different_codes(client, db_session, demo_directory) -> None:
    a = _code(post_tip(client).get_data(as_text=True))
    b = _code(post_tip(client).get_data(as_text=True))
    assert a != b and len(_tips(db_session)) == 2


def test_no_school_is_accepted_and_still_routed(client, db_session, queue, demo_directory) -> None:
    resp = post_tip(client, school="none", category="self_harm",
                    body="My friend keeps saying she wants to die")
    assert resp.status_code == 200
    (tip,) = _tips(db_session)
    assert tip.school_id is None and tip.district_id is None
    assert tip.severity >= Severity.HIGH
    assert [name for name, _args in queue.sent] == ["tipline.route_job"]


def test_danger_path_preselects_yes_and_raises_to_life_safety(
    client, db_session, demo_directory
) -> None:
    danger = client.get("/danger").get_data(as_text=True)
    assert 'href="tel:911"' in danger and "/report?danger=yes" in danger
    form = client.get("/report?danger=yes").get_data(as_text=True)
    assert re.search(r'<input[^>]*checked[^>]*value="yes"|<input[^>]*value="yes"[^>]*checked', form)
    assert "call 911 first" in form
    token, html = open_form(client, "/report?danger=yes")
    data = tip_fields(token, danger_now="yes", category="bullying", submission=nonce_from(html))
    assert client.post("/report", data=data).status_code == 200
    (tip,) = _tips(db_session)
    assert tip.danger_now and tip.severity == Severity.LIFE_SAFETY


def test_validation_error_keeps_every_word(client, db_session, demo_directory) -> None:
    resp = post_tip(client, category="", body="", when="Tomorrow 7:40am",
                    where="Gym locker room", who="Two seniors", how_known="Snapchat story")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    for kept in ("Tomorrow 7:40am", "Gym locker room", "Two seniors", "Snapchat story"):
        assert kept in html
    assert 'selected>Roosevelt High School' in html or 'value="slps-roosevelt" selected' in html
    assert 'id="body-error"' in html and 'aria-describedby="body-hint body-error"' in html
    assert 'aria-invalid="true"' in html and 'id="error-summary"' in html
    assert _tips(db_session) == []


def test_long_text_is_refused_but_kept(client, db_session, demo_directory) -> None:
    body = "word " * 2001 + "END-MARKER"
    resp = post_tip(client, body=body)
    assert resp.status_code == 400
    assert "END-MARKER" in resp.get_data(as_text=True)
    assert _tips(db_session) == []


def test_school_search_without_javascript(client, demo_directory) -> None:
    html = client.get("/report?school_q=roos").get_data(as_text=True)
    assert "Roosevelt High School" in html and "Vashon" not in html and "Northview" not in html
    assert "1 school matches" in html
    # A single match is chosen for them.
    assert re.search(r'value="slps-roosevelt" selected', html)
    # Accents and case do not matter; district names match too.
    html = client.get("/report?school_q=COUNTY").get_data(as_text=True)
    assert "Northview" in html and "Roosevelt" not in html


def test_school_search_inside_the_form_keeps_what_was_typed(client, db_session,
                                                            demo_directory) -> None:
    token, html = open_form(client)
    data = tip_fields(token, school="", school_q="soldan", body="Kept words QX-17",
                      find_school="1", submission=nonce_from(html))
    data.pop("send")
    resp = client.post("/report", data=data)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "Kept words QX-17" in html and "Soldan International" in html
    assert "Vashon" not in html
    assert re.search(r'value="slps-soldan" selected', html)
    assert _tips(db_session) == []  # a search never sends
    # "Show all schools" brings the full list back, still keeping the words.
    data = tip_fields(token, school="slps-soldan", all_schools="1", body="Kept words QX-17")
    data.pop("send")
    html = client.post("/report", data=data).get_data(as_text=True)
    assert "Vashon" in html and "Kept words QX-17" in html


def test_unknown_school_code_is_a_form_error(client, db_session, demo_directory) -> None:
    resp = post_tip(client, school="no-such-school")
    assert resp.status_code == 400
    assert "A student said he will start a fight" in resp.get_data(as_text=True)
    assert _tips(db_session) == []


def test_image_is_stripped_of_gps_and_sealed(client, db_session, demo_directory) -> None:
    resp = post_tip(client, attachments=[(io.BytesIO(jpeg_with_gps()), "IMG_0001.JPG",
                                          "image/jpeg")])
    assert resp.status_code == 200, resp.get_data(as_text=True)
    (tip,) = _tips(db_session)
    (att,) = tip.attachments
    assert att.kind == "image" and att.content_type == "image/jpeg"
    data = att.data
    img = Image.open(io.BytesIO(data))
    img.load()
    assert img.size == (80, 60) and not img.getexif()
    assert b"SpyPhone" not in data and b"Exif" not in data
    raw = db_session.execute(text("SELECT data_ct FROM attachments WHERE id=:i"),
                             {"i": att.id}).scalar_one()
    assert bytes(raw)[:3] != b"\xff\xd8\xff"  # sealed, not a JPEG at rest


def test_a_non_image_is_refused_and_the_words_kept(client, db_session, demo_directory) -> None:
    resp = post_tip(client, body="Words to keep ZZ-41",
                    attachments=[(io.BytesIO(b"%PDF-1.7 fake"), "notes.pdf", "application/pdf")])
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "Only pictures can be attached" in html and "Words to keep ZZ-41" in html
    assert 'id="attachments-error"' in html
    assert _tips(db_session) == []


def test_an_oversize_picture_is_refused_and_the_words_kept(app, client, db_session,
                                                          demo_directory) -> None:
    limit = app.extensions["tipline"].settings.max_upload_bytes
    big = b"\xff\xd8\xff" + b"0" * (limit + 10)
    resp = post_tip(client, body="Words to keep BIG-1",
                    attachments=[(io.BytesIO(big), "huge.jpg", "image/jpeg")])
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400, html[:500]
    assert "must be smaller than 10 MB" in html and "Words to keep BIG-1" in html
    assert _tips(db_session) == []


def test_too_many_pictures_are_refused_and_the_words_kept(client, db_session,
                                                         demo_directory) -> None:
    files = [(io.BytesIO(png_bytes()), f"s{i}.png", "image/png") for i in range(5)]
    resp = post_tip(client, body="Words to keep MANY-5", attachments=files)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "up to 4 pictures" in html and "Words to keep MANY-5" in html
    assert _tips(db_session) == []


def test_four_pictures_are_accepted(client, db_session, demo_directory) -> None:
    files = [(io.BytesIO(png_bytes()), f"s{i}.png", "image/png") for i in range(4)]
    assert post_tip(client, attachments=files).status_code == 200
    (tip,) = _tips(db_session)
    assert len(tip.attachments) == 4


def test_a_request_beyond_the_hard_cap_gets_the_413_page(app, client, demo_directory) -> None:
    limit = app.extensions["tipline"].settings.max_upload_bytes
    app.extensions["tipline"] = app.extensions["tipline"]  # same services
    huge = b"0" * (limit * 10 + 10)
    resp = post_tip(client, attachments=[(io.BytesIO(huge), "video.mov", "video/quicktime")])
    html = resp.get_data(as_text=True)
    assert resp.status_code == 413
    assert "too large" in html and "911" in html and "988" in html


def test_honeypot_stores_nothing_and_lets_a_person_recover(client, db_session,
                                                         demo_directory) -> None:
    resp = post_tip(client, website="http://spam.example", body="Real words HP-2")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert _tips(db_session) == []
    assert "Please leave this box empty" in html and "Real words HP-2" in html
    assert 'class="hp"' not in html  # the box is shown so a person can empty it
    assert post_tip(client, website="", body="Real words HP-2").status_code == 200
    assert len(_tips(db_session)) == 1


def test_expired_csrf_token_keeps_the_text(app, client, db_session, demo_directory) -> None:
    app.config["WTF_CSRF_ENABLED"] = True
    client.get("/report")
    data = tip_fields("not-a-valid-token", body="Words after a long pause CS-9",
                      where="Cafeteria", ui_lang="en")
    resp = client.post("/report", data=data)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "open for a long time" in html
    assert "Words after a long pause CS-9" in html and 'value="Cafeteria"' in html
    assert _tips(db_session) == []
    # The page carries a fresh token: pressing Send again works.
    data["csrf_token"] = csrf_from(html)
    assert client.post("/report", data=data).status_code == 200
    assert len(_tips(db_session)) == 1


def test_expired_session_keeps_the_language(app, demo_directory) -> None:
    client = app.test_client()  # a browser whose session cookie is gone
    data = tip_fields("stale", body="Palabras", ui_lang="es")
    html = client.post("/report", data=data).get_data(as_text=True)
    assert '<html lang="es">' in html and "Palabras" in html


def test_spanish_is_kept_across_the_post(client, db_session, demo_directory) -> None:
    html = client.get("/report?lang=es").get_data(as_text=True)
    assert '<html lang="es">' in html and "Enviar mi aviso" in html
    resp = client.post("/report", data=tip_fields(csrf_from(html), body="Hay una pistola",
                                                  submission=nonce_from(html)))
    out = resp.get_data(as_text=True)
    assert resp.status_code == 200 and '<html lang="es">' in out
    assert "Gracias" in out
    (tip,) = _tips(db_session)
    assert tip.language == "es"


def test_language_switch_on_a_form_keeps_the_words(client, db_session, demo_directory) -> None:
    token, html = open_form(client)
    data = tip_fields(token, body="Half-written words LS-3", lang="es", lang_switch="1",
                      submission=nonce_from(html))
    data.pop("send")
    resp = client.post("/report", data=data)
    out = resp.get_data(as_text=True)
    assert resp.status_code == 200 and '<html lang="es">' in out
    assert "Half-written words LS-3" in out
    assert _tips(db_session) == []


class _FakeClassification:
    def __init__(self, category: str | None, floor: int | None) -> None:
        self.category = category
        self.severity_floor = floor
        self.signals = ("test",)


@pytest.fixture
def fake_classifier(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []

    def classify(text: str, language: str) -> _FakeClassification:
        seen.append((text, language))
        if "gun" in text:
            return _FakeClassification("weapon", int(Severity.LIFE_SAFETY))
        return _FakeClassification(None, int(Severity.LOW))

    monkeypatch.setattr(triage, "_classify", classify)
    return seen


def test_triage_raises_severity_and_fills_in_something_else(
    client, db_session, demo_directory, fake_classifier
) -> None:
    post_tip(client, category="other", body="He showed a gun in the bathroom", where="2nd floor")
    post_tip(client, category="bullying", body="They keep calling her names")
    first, second = _tips(db_session)
    assert first.category == "weapon" and first.severity == Severity.LIFE_SAFETY
    assert second.category == "bullying" and second.severity == Severity.MEDIUM  # never lowered
    text, lang = fake_classifier[0]
    assert "gun" in text and "2nd floor" in text and lang == "en"


def test_a_failing_classifier_never_costs_a_tip(client, db_session, demo_directory,
                                                monkeypatch) -> None:
    def broken(text: str, language: str) -> Any:
        raise RuntimeError("classifier bug")

    monkeypatch.setattr(triage, "_classify", broken)
    assert post_tip(client).status_code == 200
    assert len(_tips(db_session)) == 1


@pytest.mark.parametrize("url", ["/report", "/followup", "/followup/tip"])
def test_a_file_under_a_text_fields_name_is_a_form_error_not_a_500(
        app, db_session, vault, queue, demo_directory, url) -> None:
    """A file sent as the tip's words (or any text field) reached a text validator (a 500).
    Only the picture fields read files; the rest of the form is checked as usual."""
    from tests.factories import make_tip

    client = app.test_client()
    token = csrf_from(client.get("/report").get_data(as_text=True))
    if url == "/followup/tip":  # signed in to a tip: the reply form reads the body
        receipt = make_tip(db_session, vault, queue, body="Words already sent")
        db_session.commit()
        client.post("/followup", data={"csrf_token": token, "code": receipt.receipt_code})
    data = tip_fields(token)
    for name in ("body", "school", "category", "danger_now", "when", "code", "submission"):
        data[name] = (io.BytesIO(b"not words"), "words.txt")
    resp = client.post(url, data=data, content_type="multipart/form-data")
    assert resp.status_code < 500
    assert "911" in resp.get_data(as_text=True)
