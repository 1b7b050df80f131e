"""alert delivery, acknowledgement and escalation (issue: routing)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 17:00:00
"""

import sqlalchemy as sa
from alembic import op

import tipline.db

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('dispatches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('activated_at', tipline.db.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('repeat_every_seconds', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('next_alert_at', tipline.db.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('alert_round', sa.Integer(), server_default='0',
                                      nullable=False))
        batch_op.create_index(batch_op.f('ix_dispatches_next_alert_at'), ['next_alert_at'],
                              unique=False)
    with op.batch_alter_table('alert_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('alert_round', sa.Integer(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('provider_status', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alert_deliveries', schema=None) as batch_op:
        batch_op.drop_column('provider_status')
        batch_op.drop_column('alert_round')
    with op.batch_alter_table('dispatches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dispatches_next_alert_at'))
        batch_op.drop_column('alert_round')
        batch_op.drop_column('next_alert_at')
        batch_op.drop_column('repeat_every_seconds')
        batch_op.drop_column('activated_at')
