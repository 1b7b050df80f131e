"""police agencies tied to the districts they serve

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 10:00:00

A district administrator may attach a contact only to a police agency tied to their district.
Existing installations get the ties their directory already implies: an agency is tied to a
district when one of its contacts belongs to that district or is linked to one of its schools.
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'agency_districts',
        sa.Column('agency_id', sa.Integer(), nullable=False),
        sa.Column('district_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['agency_id'], ['police_agencies.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['district_id'], ['districts.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('agency_id', 'district_id'),
    )
    op.execute(
        "INSERT INTO agency_districts (agency_id, district_id) "
        "SELECT agency_id, district_id FROM contacts "
        "WHERE agency_id IS NOT NULL AND district_id IS NOT NULL "
        "UNION "
        "SELECT c.agency_id, s.district_id FROM contacts c "
        "JOIN contact_schools cs ON cs.contact_id = c.id "
        "JOIN schools s ON s.id = cs.school_id "
        "WHERE c.agency_id IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table('agency_districts')
