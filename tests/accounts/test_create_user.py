"""``accounts.create_user`` holds every caller (CLI, admin pages, scripts) to the role rules."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tipline.accounts.models import StaffUser
from tipline.accounts.services import AccountError, create_user
from tipline.crypto import Vault

PASSWORD = "correct horse battery staple"


def _create(session: Session, vault: Vault, **kw: Any) -> StaffUser:
    return create_user(session, vault, email=kw.pop("email", "x@staff.example.org"),
                       password=PASSWORD, **kw)


@pytest.mark.parametrize("scope", [{"district_code": "slps"},
                                   {"school_codes": ["slps-roosevelt"]},
                                   {"contact_key": "slpd-liaison"}])
def test_an_installation_admin_belongs_to_no_district_school_or_contact(
        db_session: Session, vault: Vault, demo_directory: Any, scope: dict[str, Any]) -> None:
    with pytest.raises(AccountError, match="installation administrator"):
        _create(db_session, vault, role="installation_admin", **scope)
    assert db_session.execute(select(func.count(StaffUser.id))).scalar_one() == 0
    assert _create(db_session, vault, role="installation_admin").district_id is None


def test_school_staff_schools_must_be_of_the_accounts_district(
        db_session: Session, vault: Vault, demo_directory: Any) -> None:
    """``--district slps --school cty-northview`` would give an SLPS account a county school."""
    with pytest.raises(AccountError, match="cty-northview is not a school of district slps"):
        _create(db_session, vault, role="school_staff", district_code="slps",
                school_codes=["slps-roosevelt", "cty-northview"])
    with pytest.raises(AccountError, match="cty-northview is not a school of district slps"):
        _create(db_session, vault, role="school_staff",
                school_codes=["slps-roosevelt", "cty-northview"])
    user = _create(db_session, vault, role="school_staff", school_codes=["cty-northview"])
    assert user.district_id == user.schools[0].district_id
