"""Issue 17: the categories "basic needs" and "dating violence" as a student picks them, on a
phone in Chromium, in English, Spanish and Bosnian: worded on the student's terms in their
language, the tip stored with that category and language, the page accessible."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from tests.livesupport import LiveServer, axe_violations
from tipline.tips.models import Tip

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
WORDING = {
    "en": {"basic_needs": "No safe place to sleep, not enough food, or losing a home",
           "dating_violence": "A boyfriend or girlfriend who hurts, scares or controls someone"},
    "es": {"basic_needs": "Sin un lugar seguro para dormir, sin suficiente comida o a punto de "
                          "perder la casa",
           "dating_violence": "Un novio o una novia que lastima, asusta o controla a alguien"},
    "bs": {"basic_needs": "Nema sigurnog mjesta za spavanje, nema dovoljno hrane ili gubi dom",
           "dating_violence": "Momak ili djevojka koji nekoga povređuje, plaši ili kontroliše"},
}
BODY = {
    "en": "My friend has been sleeping in the car since his family got evicted NEWCAT",
    "es": "Mi amiga y su mamá duermen en el carro desde el mes pasado NEWCAT",
    "bs": "Moj drug nema gdje spavati, izbacili su ih iz stana NEWCAT",
}
LOCALES = {"en": "en-US", "es": "es-MX", "bs": "bs-BA"}


@pytest.fixture(params=list(WORDING))
def student(request: pytest.FixtureRequest, browser: Any) -> Iterator[tuple[str, Any]]:
    lang = request.param
    context = browser.new_context(locale=LOCALES[lang], **PHONE)
    page = context.new_page()
    yield lang, page
    context.close()


def _last_tip(server: LiveServer) -> Tip:
    with server.app.extensions["tipline"].db.session() as s:
        tip = s.execute(select(Tip).order_by(Tip.id.desc()).limit(1)).scalar_one()
        s.expunge_all()
        return tip


@pytest.mark.parametrize("category", ["basic_needs", "dating_violence"])
def test_new_category_in_the_students_language_on_a_phone(
        live_server: LiveServer, student: tuple[str, Any], category: str) -> None:
    lang, page = student
    page.goto(live_server.url + f"/report?lang={lang}")
    page.wait_for_selector(f"html[lang={lang}]")
    radio = f"input[name=category][value={category}]"
    label = page.locator(f"label[for='{page.get_attribute(radio, 'id')}']")
    assert label.inner_text().strip() == WORDING[lang][category]
    # each choice is tappable and readable on a 390 px screen (no horizontal overflow)
    box = label.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.select_option("#school", "slps-roosevelt")
    label.tap()
    assert page.is_checked(radio)
    page.check("input[name=danger_now][value=no]")
    page.fill("#body", BODY[lang])
    page.tap("button.send")
    page.wait_for_selector("#receipt-code")
    tip = _last_tip(live_server)
    assert (tip.category, tip.language) == (category, lang)
    problems = axe_violations(page)
    assert problems == [], [(v["id"], v["impact"]) for v in problems]


def test_form_page_with_new_categories_is_accessible(live_server: LiveServer,
                                                     student: tuple[str, Any]) -> None:
    lang, page = student
    page.goto(live_server.url + f"/report?lang={lang}")
    page.wait_for_selector("input[name=category][value=dating_violence]")
    problems = axe_violations(page)
    assert problems == [], [(v["id"], v["impact"]) for v in problems]
