"""Browser fixtures: a live server on PostgreSQL and a real headless Chromium (Playwright)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import DEMO_DIRECTORY, PG_URL
from tests.livesupport import (
    LiveServer,
    create_fresh_database,
    launch_chromium,
    live_database_url,
    start_live_server,
    truncate_all,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def live_db_url() -> str:
    url = live_database_url(PG_URL)
    create_fresh_database(url)
    return url


@pytest.fixture(scope="module")
def live_server(live_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A running tipline with the demo directory loaded; emptied before each module."""
    truncate_all(live_db_url)
    server = start_live_server(live_db_url, tmp_path_factory.mktemp("live"))
    svc = server.app.extensions["tipline"]
    from tipline.directory.loader import load_directory_file

    with svc.db.session() as session:
        load_directory_file(session, DEMO_DIRECTORY)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_instance: Any) -> Iterator[Any]:
    b = launch_chromium(playwright_instance)
    yield b
    b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(locale="en-US")
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def phone_page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True,
                                  has_touch=True, device_scale_factor=2, locale="en-US")
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def nojs_page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(java_script_enabled=False, locale="en-US")
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def live_services(live_server: LiveServer) -> Any:
    """The live server's services, with its vault installed for factories in this process."""
    from tipline import crypto

    svc = live_server.app.extensions["tipline"]
    crypto.install(svc.vault)
    return svc
