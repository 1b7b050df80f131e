"""Revision 0007 ties each police agency to the districts its contacts already serve."""

from __future__ import annotations

from sqlalchemy import pool, text

from tipline import migrations
from tipline.db import make_engine


def test_upgrade_ties_agencies_to_the_districts_their_contacts_serve(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    migrations.upgrade(url, "0006")
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        for sql in (
            "INSERT INTO districts (id, code, name, timezone, hotline_text, police_involvement)"
            " VALUES (1, 'a', 'A', 'America/Chicago', '', 'limited'),"
            " (2, 'b', 'B', 'America/Chicago', '', 'limited'),"
            " (3, 'c', 'C', 'America/Chicago', '', 'limited')",
            "INSERT INTO schools (id, district_id, code, name, aliases, active)"
            " VALUES (1, 2, 'b-high', 'B High', '', 1)",
            "INSERT INTO police_agencies (id, code, name, non_emergency_text)"
            " VALUES (1, 'county', 'County', ''), (2, 'city', 'City', '')",
            # one contact in district A, one of no district linked to a school of B
            "INSERT INTO contacts (id, key, district_id, agency_id, name, role, active,"
            " priority) VALUES (1, 'a-desk', 1, 1, 'A desk', 'police_liaison', 1, 100),"
            " (2, 'county-liaison', NULL, 1, 'Liaison', 'police_liaison', 1, 100),"
            " (3, 'city-liaison', NULL, 2, 'City', 'police_liaison', 1, 100)",
            "INSERT INTO contact_schools (contact_id, school_id) VALUES (2, 1)",
        ):
            conn.execute(text(sql))
    migrations.upgrade(url, "0007")
    with engine.connect() as conn:
        ties = conn.execute(text("SELECT agency_id, district_id FROM agency_districts "
                                 "ORDER BY 1, 2")).all()
    assert [tuple(t) for t in ties] == [(1, 1), (1, 2)]
    migrations.downgrade(url, "0006")
    engine.dispose()
