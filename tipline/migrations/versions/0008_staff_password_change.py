"""staff password change: a password someone else chose must be replaced (issue 10, item 8)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 10:00:00

Existing accounts are marked ``must_change_password``: until now nobody could change a
password, so every stored one was chosen by an administrator or typed at the command line.
They keep working (no expiry) until the holder signs in and picks their own.
"""

from alembic import op
import sqlalchemy as sa
import tipline.db


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('staff_users') as batch:
        batch.add_column(sa.Column('must_change_password', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column('password_expires_at', tipline.db.UTCDateTime(timezone=True),
                                   nullable=True))
    op.execute(sa.text('UPDATE staff_users SET must_change_password = :yes')
               .bindparams(yes=True))


def downgrade() -> None:
    with op.batch_alter_table('staff_users') as batch:
        batch.drop_column('password_expires_at')
        batch.drop_column('must_change_password')
