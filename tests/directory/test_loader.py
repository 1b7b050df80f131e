"""The directory loader: a contact's police agency must serve that contact's district."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from sqlalchemy.orm import Session

from tests.conftest import DEMO_DIRECTORY
from tipline.directory.loader import load_directory
from tipline.directory.validation import DirectoryError


def _demo() -> dict[str, Any]:
    return yaml.safe_load(DEMO_DIRECTORY.read_text(encoding="utf-8"))


def _contact(data: dict[str, Any], key: str) -> dict[str, Any]:
    return next(c for c in data["contacts"] if c["key"] == key)


def test_the_demo_directory_loads(db_session: Session) -> None:
    assert load_directory(db_session, _demo())["contacts"] == 28


def test_a_contact_under_an_agency_that_does_not_serve_its_district_is_refused(
        db_session: Session) -> None:
    """City police (tied to SLPS only) on a county contact would open county alerts to a
    liaison the city manages: refused, naming the contact."""
    data = _demo()
    _contact(data, "cty-oncall")["agency"] = "slpd"
    with pytest.raises(DirectoryError, match=r"cty-oncall.*agency 'slpd' does not serve "
                                             r"district 'stlco-demo'"):
        load_directory(db_session, data)


def test_a_police_contact_linked_to_a_school_its_agency_does_not_serve_is_refused(
        db_session: Session) -> None:
    data = _demo()
    _contact(data, "slpd-liaison")["schools"] = ["cty-northview"]
    with pytest.raises(DirectoryError, match=r"slpd-liaison.*agency 'slpd' does not serve "
                                             r"district 'stlco-demo' \(school cty-northview\)"):
        load_directory(db_session, data)


def test_an_agency_tied_to_the_district_by_the_same_file_is_accepted(
        db_session: Session) -> None:
    data = _demo()
    next(a for a in data["agencies"] if a["code"] == "slpd")["districts"] = ["slps",
                                                                             "stlco-demo"]
    _contact(data, "cty-oncall")["agency"] = "slpd"
    assert load_directory(db_session, data)["contacts"] == 28
