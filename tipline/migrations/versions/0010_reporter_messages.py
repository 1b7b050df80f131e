"""Reporter messages staff have not read, and reply wording per district and language.

Revision ID: 0010
Revises: 0009

``tips.reporter_message_at``: when the reporter last wrote after the tip itself (web
follow-up or SMS), so the queue can mark and sort up a tip with a message its staff have not
read. ``tip_reads``: when each staff member last opened each tip ("new since your last visit").
``reply_templates``: short reply wording a district admin keeps per language (staff-written,
no tip content).
"""

import sqlalchemy as sa
from alembic import op

import tipline.db

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: a batch copy of ``tips`` on SQLite would lose the expression index
    # ix_tips_queue_order.
    op.add_column('tips', sa.Column('reporter_message_at',
                                    tipline.db.UTCDateTime(timezone=True), nullable=True))
    op.create_index('ix_tips_reporter_message_at', 'tips', ['reporter_message_at'])
    op.create_table(
        'tip_reads',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tip_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('seen_at', tipline.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['tip_id'], ['tips.id'], name=op.f('fk_tip_reads_tip_id_tips'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['staff_users.id'],
                                name=op.f('fk_tip_reads_user_id_staff_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tip_reads')),
        sa.UniqueConstraint('user_id', 'tip_id', name=op.f('uq_tip_reads_user_id')),
    )
    with op.batch_alter_table('tip_reads') as batch:
        batch.create_index(batch.f('ix_tip_reads_tip_id'), ['tip_id'], unique=False)
    op.create_table(
        'reply_templates',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('district_id', sa.Integer(), nullable=False),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('text', sa.String(length=500), nullable=False),
        sa.Column('updated_at', tipline.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['district_id'], ['districts.id'],
                                name=op.f('fk_reply_templates_district_id_districts'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['updated_by_id'], ['staff_users.id'],
                                name=op.f('fk_reply_templates_updated_by_id_staff_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_reply_templates')),
        sa.UniqueConstraint('district_id', 'language', 'position',
                            name=op.f('uq_reply_templates_district_id')),
    )


def downgrade() -> None:
    op.drop_table('reply_templates')
    with op.batch_alter_table('tip_reads') as batch:
        batch.drop_index(batch.f('ix_tip_reads_tip_id'))
    op.drop_table('tip_reads')
    # SQLite drops a column by copying the table, which loses the expression index: dropped
    # first and made again after.
    op.drop_index('ix_tips_reporter_message_at', table_name='tips')
    op.drop_index('ix_tips_queue_order', table_name='tips')
    with op.batch_alter_table('tips') as batch:
        batch.drop_column('reporter_message_at')
    op.create_index('ix_tips_queue_order', 'tips', [
        sa.text('severity DESC'),
        sa.text('(acknowledged_at IS NOT NULL)'),
        'created_at', 'id',
    ], unique=False)
