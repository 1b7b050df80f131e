"""Routing the way SLPS works: two categories, outside partners, contacts' languages, rotas.

Revision ID: 0014
Revises: 0012

Categories ``basic_needs`` and ``dating_violence`` are new values of ``tips.category``, a text
column: no row changes, so every existing tip keeps the category it was filed under.
``contacts.kind`` ("staff" or "partner") and ``contacts.agreement`` (what an outside partner
may receive; no content by default), ``contacts.languages`` (for rules on the reporter's
language), and ``oncall_rotas`` (weekly or nightly turns a district admin keeps).
"""

import sqlalchemy as sa
from alembic import op

import tipline.db

revision = '0014'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('contacts') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=20), nullable=False,
                                   server_default='staff'))
        batch.add_column(sa.Column('agreement', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('languages', sa.String(length=60), nullable=False,
                                   server_default=''))
    with op.batch_alter_table('contacts') as batch:
        batch.alter_column('kind', server_default=None)
        batch.alter_column('languages', server_default=None)
    op.create_table(
        'oncall_rotas',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=80), nullable=False),
        sa.Column('district_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('turn', sa.String(length=10), nullable=False),
        sa.Column('handover', sa.String(length=5), nullable=False),
        sa.Column('starts_on', sa.Date(), nullable=False),
        sa.Column('members', sa.JSON(), nullable=False),
        sa.Column('swaps', sa.JSON(), nullable=False),
        sa.Column('holidays', sa.JSON(), nullable=False),
        sa.Column('updated_at', tipline.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['district_id'], ['districts.id'],
                                name=op.f('fk_oncall_rotas_district_id_districts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_oncall_rotas')),
        sa.UniqueConstraint('key', name=op.f('uq_oncall_rotas_key')),
    )
    with op.batch_alter_table('oncall_rotas') as batch:
        batch.create_index(batch.f('ix_oncall_rotas_district_id'), ['district_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('oncall_rotas') as batch:
        batch.drop_index(batch.f('ix_oncall_rotas_district_id'))
    op.drop_table('oncall_rotas')
    with op.batch_alter_table('contacts') as batch:
        batch.drop_column('languages')
        batch.drop_column('agreement')
        batch.drop_column('kind')
