"""telephony: SMS conversations, calls, recordings (issue: Twilio)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 17:00:00
"""

from alembic import op
import sqlalchemy as sa
import tipline.db


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
