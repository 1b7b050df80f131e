"""In Chromium: the tip form goes URL-encoded when no picture is chosen (cheaper for the server
to parse), multipart when one is, and always multipart without JavaScript."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.livesupport import LiveServer

pytestmark = pytest.mark.browser


def _is_report_post(request: Any) -> bool:
    return request.method == "POST" and request.url.split("#")[0].endswith("/report")


def _send(page: Any, body: str) -> str:
    """Fill the form, press Send, wait for the receipt; the content type that was posted."""
    page.select_option("#school", "slps-roosevelt")
    page.check("input[name=category][value=bullying]")
    page.fill("#body", body)
    with page.expect_request(_is_report_post) as posted:
        page.click("button.send")
    page.wait_for_selector("#receipt-code")
    return str(posted.value.headers.get("content-type", ""))


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "shot.png"
    Image.new("RGB", (40, 30), (10, 200, 10)).save(path, "PNG")
    return path


def test_no_picture_is_sent_urlencoded(live_server: LiveServer, page: Any) -> None:
    page.goto(live_server.url + "/report")
    assert _send(page, "Sent without a picture FE-1") == "application/x-www-form-urlencoded"


def test_a_picture_is_sent_multipart_and_clearing_it_goes_back(
        live_server: LiveServer, page: Any, picture: Path) -> None:
    page.goto(live_server.url + "/report")
    page.set_input_files("#attachments", str(picture))
    assert _send(page, "Sent with a picture FE-2").startswith("multipart/form-data")
    page.goto(live_server.url + "/report")
    page.set_input_files("#attachments", str(picture))
    page.set_input_files("#attachments", [])
    assert _send(page, "Picture chosen then removed FE-3") == (
        "application/x-www-form-urlencoded")


def test_without_javascript_the_form_is_multipart(live_server: LiveServer,
                                                  nojs_page: Any) -> None:
    nojs_page.goto(live_server.url + "/report")
    assert _send(nojs_page, "Sent without JavaScript FE-4").startswith("multipart/form-data")
