"""alert delivery, acknowledgement and escalation (issue: routing)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 17:00:00
"""

from alembic import op
import sqlalchemy as sa
import tipline.db


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
