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
    op.create_table('sms_conversations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('phone_hash', sa.String(length=64), nullable=False),
    sa.Column('tip_id', sa.Integer(), nullable=True),
    sa.Column('step', sa.String(length=12), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('school_tries', sa.Integer(), nullable=False),
    sa.Column('category_tries', sa.Integer(), nullable=False),
    sa.Column('candidates', sa.String(length=200), nullable=True),
    sa.Column('created_at', tipline.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_inbound_at', tipline.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tip_id'], ['tips.id'], name=op.f('fk_sms_conversations_tip_id_tips'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_conversations')),
    sa.UniqueConstraint('phone_hash', name=op.f('uq_sms_conversations_phone_hash'))
    )
    with op.batch_alter_table('sms_conversations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sms_conversations_tip_id'), ['tip_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sms_conversations_last_inbound_at'), ['last_inbound_at'], unique=False)

    op.create_table('sms_opt_outs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('phone_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', tipline.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_opt_outs')),
    sa.UniqueConstraint('phone_hash', name=op.f('uq_sms_opt_outs_phone_hash'))
    )

    op.create_table('telephony_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('sid', sa.String(length=64), nullable=False),
    sa.Column('parent_sid', sa.String(length=64), nullable=True),
    sa.Column('tip_id', sa.Integer(), nullable=True),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('content_type', sa.String(length=100), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=200), nullable=True),
    sa.Column('created_at', tipline.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tipline.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_telephony_tasks_message_id_messages'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tip_id'], ['tips.id'], name=op.f('fk_telephony_tasks_tip_id_tips'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_telephony_tasks')),
    sa.UniqueConstraint('kind', 'sid', name=op.f('uq_telephony_tasks_kind'))
    )
    with op.batch_alter_table('telephony_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_telephony_tasks_tip_id'), ['tip_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_telephony_tasks_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_telephony_tasks_updated_at'), ['updated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('telephony_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_telephony_tasks_updated_at'))
        batch_op.drop_index(batch_op.f('ix_telephony_tasks_status'))
        batch_op.drop_index(batch_op.f('ix_telephony_tasks_tip_id'))
    op.drop_table('telephony_tasks')
    op.drop_table('sms_opt_outs')
    with op.batch_alter_table('sms_conversations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sms_conversations_last_inbound_at'))
        batch_op.drop_index(batch_op.f('ix_sms_conversations_tip_id'))
    op.drop_table('sms_conversations')
