"""Key tables for sealing tips to staff keys.

Revision ID: 0011
Revises: 0010

``read_keys``: a district's or police agency's read key pair (public half and key id).
``staff_keys``: a staff member's personal X25519 key, the private half wrapped under an
Argon2id key from their password. ``recovery_keys``: a district's offline recovery public
key. ``key_grants``: a read key's private half sealed to a staff member or a recovery key.
``key_sessions``: a signed-in session's personal key under a key only its cookie holds.
"""

import sqlalchemy as sa
from alembic import op

import tipline.db

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, tipline.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        'read_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('owner', sa.String(length=10), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=False),
        sa.Column('key_id', sa.String(length=16), nullable=False),
        sa.Column('public_key', sa.LargeBinary(), nullable=False),
        _when('created_at'),
        _when('retired_at', nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_read_keys')),
        sa.UniqueConstraint('owner', 'owner_id', 'key_id', name=op.f('uq_read_keys_owner')),
    )
    with op.batch_alter_table('read_keys') as batch:
        batch.create_index(batch.f('ix_read_keys_owner_id'), ['owner_id'], unique=False)
    op.create_table(
        'staff_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('public_key', sa.LargeBinary(), nullable=False),
        sa.Column('wrapped_private', sa.LargeBinary(), nullable=False),
        sa.Column('salt', sa.LargeBinary(), nullable=False),
        sa.Column('kdf', sa.String(length=200), nullable=False),
        _when('created_at'),
        sa.ForeignKeyConstraint(['user_id'], ['staff_users.id'],
                                name=op.f('fk_staff_keys_user_id_staff_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_keys')),
        sa.UniqueConstraint('user_id', name=op.f('uq_staff_keys_user_id')),
    )
    op.create_table(
        'recovery_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('district_id', sa.Integer(), nullable=False),
        sa.Column('public_key', sa.LargeBinary(), nullable=False),
        _when('created_at'),
        sa.ForeignKeyConstraint(['district_id'], ['districts.id'],
                                name=op.f('fk_recovery_keys_district_id_districts'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_keys')),
        sa.UniqueConstraint('district_id', name=op.f('uq_recovery_keys_district_id')),
    )
    op.create_table(
        'key_grants',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('read_key_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('recovery_key_id', sa.Integer(), nullable=True),
        sa.Column('sealed', sa.Text(), nullable=False),
        sa.Column('granted_by_id', sa.Integer(), nullable=True),
        _when('created_at'),
        sa.ForeignKeyConstraint(['read_key_id'], ['read_keys.id'],
                                name=op.f('fk_key_grants_read_key_id_read_keys'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['staff_users.id'],
                                name=op.f('fk_key_grants_user_id_staff_users'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['recovery_key_id'], ['recovery_keys.id'],
                                name=op.f('fk_key_grants_recovery_key_id_recovery_keys'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['granted_by_id'], ['staff_users.id'],
                                name=op.f('fk_key_grants_granted_by_id_staff_users'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_key_grants')),
    )
    with op.batch_alter_table('key_grants') as batch:
        batch.create_index(batch.f('ix_key_grants_read_key_id'), ['read_key_id'], unique=False)
        batch.create_index(batch.f('ix_key_grants_user_id'), ['user_id'], unique=False)
        batch.create_index(batch.f('ix_key_grants_recovery_key_id'), ['recovery_key_id'],
                           unique=False)
    op.create_table(
        'key_sessions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('sid', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('ct', sa.LargeBinary(), nullable=False),
        sa.Column('pending', sa.Boolean(), nullable=False),
        _when('expires_at'),
        _when('created_at'),
        sa.ForeignKeyConstraint(['user_id'], ['staff_users.id'],
                                name=op.f('fk_key_sessions_user_id_staff_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_key_sessions')),
        sa.UniqueConstraint('sid', name=op.f('uq_key_sessions_sid')),
    )
    with op.batch_alter_table('key_sessions') as batch:
        batch.create_index(batch.f('ix_key_sessions_user_id'), ['user_id'], unique=False)
        batch.create_index(batch.f('ix_key_sessions_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('key_sessions') as batch:
        batch.drop_index(batch.f('ix_key_sessions_expires_at'))
        batch.drop_index(batch.f('ix_key_sessions_user_id'))
    op.drop_table('key_sessions')
    with op.batch_alter_table('key_grants') as batch:
        batch.drop_index(batch.f('ix_key_grants_recovery_key_id'))
        batch.drop_index(batch.f('ix_key_grants_user_id'))
        batch.drop_index(batch.f('ix_key_grants_read_key_id'))
    op.drop_table('key_grants')
    op.drop_table('recovery_keys')
    op.drop_table('staff_keys')
    with op.batch_alter_table('read_keys') as batch:
        batch.drop_index(batch.f('ix_read_keys_owner_id'))
    op.drop_table('read_keys')
