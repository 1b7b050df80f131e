"""Surge groups: a similarity signature per tip, and groups of tips about one threat.

Revision ID: 0013
Revises: 0016

``tip_signatures``: the keyed MinHash made at intake from the text in memory (never the text),
keyed digests of the life-safety rules that fired, and the tip's group. ``tip_groups``: one
threat at one school, with its lead tip, what was alerted and the "N more tips" counter.
"""

import sqlalchemy as sa
from alembic import op

import tipline.db

revision = '0013'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'tip_groups',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('uid', sa.String(length=32), nullable=False),
        sa.Column('school_id', sa.Integer(), nullable=True),
        sa.Column('district_id', sa.Integer(), nullable=True),
        sa.Column('lead_tip_id', sa.Integer(), nullable=True),
        sa.Column('created_at', tipline.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('newest_at', tipline.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('tip_count', sa.Integer(), nullable=False),
        sa.Column('alerted_severity', sa.Integer(), nullable=False),
        sa.Column('alerted_signals', sa.JSON(), nullable=False),
        sa.Column('unnoticed', sa.Integer(), nullable=False),
        sa.Column('last_notice_at', tipline.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['school_id'], ['schools.id'],
                                name=op.f('fk_tip_groups_school_id_schools')),
        sa.ForeignKeyConstraint(['district_id'], ['districts.id'],
                                name=op.f('fk_tip_groups_district_id_districts')),
        sa.ForeignKeyConstraint(['lead_tip_id'], ['tips.id'],
                                name=op.f('fk_tip_groups_lead_tip_id_tips'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tip_groups')),
        sa.UniqueConstraint('uid', name=op.f('uq_tip_groups_uid')),
    )
    with op.batch_alter_table('tip_groups') as batch:
        batch.create_index(batch.f('ix_tip_groups_school_id'), ['school_id'], unique=False)
        batch.create_index(batch.f('ix_tip_groups_district_id'), ['district_id'], unique=False)
        batch.create_index(batch.f('ix_tip_groups_newest_at'), ['newest_at'], unique=False)
        batch.create_index(batch.f('ix_tip_groups_unnoticed'), ['unnoticed'], unique=False)
    op.create_table(
        'tip_signatures',
        sa.Column('tip_id', sa.Integer(), nullable=False),
        sa.Column('school_id', sa.Integer(), nullable=True),
        sa.Column('created_at', tipline.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('minhash', sa.LargeBinary(), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('signals', sa.JSON(), nullable=False),
        sa.Column('group_id', sa.Integer(), nullable=True),
        sa.Column('folded', sa.Boolean(), nullable=False),
        sa.Column('split', sa.Boolean(), nullable=False),
        sa.Column('grouped_at', tipline.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['tip_id'], ['tips.id'],
                                name=op.f('fk_tip_signatures_tip_id_tips'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['school_id'], ['schools.id'],
                                name=op.f('fk_tip_signatures_school_id_schools')),
        sa.ForeignKeyConstraint(['group_id'], ['tip_groups.id'],
                                name=op.f('fk_tip_signatures_group_id_tip_groups'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('tip_id', name=op.f('pk_tip_signatures')),
    )
    with op.batch_alter_table('tip_signatures') as batch:
        batch.create_index(batch.f('ix_tip_signatures_school_id'), ['school_id'], unique=False)
        batch.create_index(batch.f('ix_tip_signatures_created_at'), ['created_at'],
                           unique=False)
        batch.create_index(batch.f('ix_tip_signatures_group_id'), ['group_id'], unique=False)


def downgrade() -> None:
    op.drop_table('tip_signatures')
    op.drop_table('tip_groups')
