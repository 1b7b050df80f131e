"""A small district for the admin tests: two schools, a contact, an admin and a neighbour."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from tests.factories import ContactFactory, DistrictFactory, SchoolFactory, bind
from tests.staffsupport import make_staff
from tipline.accounts.models import StaffUser
from tipline.crypto import Vault
from tipline.directory.models import Contact, District, School


@dataclass
class World:
    district: District
    schools: list[School]
    contact: Contact
    other_district: District
    other_school: School
    other_contact: Contact
    admin: StaffUser
    admin_password: str
    admin_secret: str


def make_world(session: Session, vault: Vault) -> World:
    bind(session)
    d = DistrictFactory()
    other = DistrictFactory()
    schools = [SchoolFactory(district=d, name="Alpha High"), SchoolFactory(district=d,
                                                                           name="Beta Middle")]
    other_school = SchoolFactory(district=other, name="Gamma Elementary")
    contact = ContactFactory(district_id=d.id, schools=[schools[0]])
    other_contact = ContactFactory(district_id=other.id, schools=[other_school])
    session.flush()
    admin, password, secret = make_staff(session, vault, "district_admin", district=d.code)
    return World(d, schools, contact, other, other_school, other_contact, admin, password,
                 secret)
