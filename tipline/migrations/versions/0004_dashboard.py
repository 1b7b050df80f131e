"""dashboard: sign-in, sessions, triage (issue: dashboard)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 17:00:00
"""

import sqlalchemy as sa
from alembic import op

import tipline.db

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locked_until', tipline.db.UTCDateTime(timezone=True),
                                      nullable=True))
    op.create_table('tip_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uid', sa.String(length=32), nullable=False),
    sa.Column('tip_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('from_value', sa.String(length=40), nullable=True),
    sa.Column('to_value', sa.String(length=40), nullable=True),
    sa.Column('reason_ct', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', tipline.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tip_id'], ['tips.id'], name=op.f('fk_tip_events_tip_id_tips'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['staff_users.id'],
                            name=op.f('fk_tip_events_user_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tip_events')),
    sa.UniqueConstraint('uid', name=op.f('uq_tip_events_uid'))
    )
    with op.batch_alter_table('tip_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tip_events_tip_id'), ['tip_id'], unique=False)
    op.create_table('mandated_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tip_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('reported_at', tipline.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tip_id'], ['tips.id'], name=op.f('fk_mandated_reports_tip_id_tips'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['staff_users.id'],
                            name=op.f('fk_mandated_reports_user_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mandated_reports')),
    sa.UniqueConstraint('tip_id', 'user_id', name=op.f('uq_mandated_reports_tip_id'))
    )
    with op.batch_alter_table('mandated_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mandated_reports_tip_id'), ['tip_id'], unique=False)
    # The dashboard queue's order: severity, unacknowledged first, then age.
    op.create_index('ix_tips_queue_order', 'tips', [
        sa.text('severity DESC'),
        sa.text('(acknowledged_at IS NOT NULL)'),
        'created_at', 'id',
    ], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tips_queue_order', table_name='tips')
    with op.batch_alter_table('mandated_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mandated_reports_tip_id'))
    op.drop_table('mandated_reports')
    with op.batch_alter_table('tip_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tip_events_tip_id'))
    op.drop_table('tip_events')
    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.drop_column('locked_until')
