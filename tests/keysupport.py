"""Reading sealed tips in tests: a staff member's keychain, and a district reader set up.

A tip is sealed once its district has a read key (the first staff account of the district
makes one); test code that reads its content must then run ``with using(staff_chain(...))``,
as a staff request does.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tests import staffsupport
from tipline.accounts import keys
from tipline.accounts.models import StaffUser
from tipline.crypto import Keychain


def staff_chain(session: Session, user: StaffUser) -> Keychain:
    """The keychain a signed-in session of ``user`` (made by ``make_staff``) holds."""
    password = staffsupport._passwords[user.email]
    personal = keys.unlock_personal_key(session, user, password)
    assert personal is not None, "the account has no personal key"
    return keys.keychain_for(session, user.id, personal)


def reader(session: Session, vault: Any, district: str = "slps", role: str = "district_admin",
           **kw: Any) -> tuple[StaffUser, Keychain]:
    """A staff account of ``district`` with access (its district gets a read key), and its
    keychain: from here on, that district's tips are sealed."""
    user, _password, _secret = staffsupport.make_staff(session, vault, role, district=district,
                                                       **kw)
    session.flush()
    return user, staff_chain(session, user)
