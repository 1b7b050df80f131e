"""Routing jobs and alert deliveries remember that their task never reached the broker.

Revision ID: 0009
Revises: 0008

The sweep holds back pending items while the broker has a backlog (they are most likely
waiting in it). An item whose publish failed is not in the broker at all; ``publish_failed``
lets the sweep re-send it at its next run, backlog or not.
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('routing_jobs', 'alert_deliveries'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('publish_failed', sa.Boolean(), nullable=False,
                                       server_default=sa.false()))


def downgrade() -> None:
    for table in ('routing_jobs', 'alert_deliveries'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('publish_failed')
