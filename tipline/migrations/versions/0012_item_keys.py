"""Per-item data keys for content that arrives after intake, and what workers may hold.

Revision ID: 0012
Revises: 0011

A message, attachment or note that a worker or webhook adds after intake (an SMS reporter's
later text, MMS media, a voice recording or its transcript) cannot use the tip's data key once
that key is sealed to staff keys only: the server cannot open it. Such a row gets its own data
key, sealed to the tip's audience (``data_key_uid``; an attachment's transcript has its own,
``transcript_key_uid``); a row without one keeps using the tip's key.

``messages.placeholder``: the first message of a voice tip says "transcript pending" until the
transcript comes (a state flag, so nothing compares sealed bodies). ``messages.relay_payload_ct``:
a staff reply to an SMS reporter, with the reporter's number, sealed under a per-job key that
only the relay task's broker message carries; cleared once the relay is settled.
``tips.alert_content_ct``: the tip text for alerts whose rule says ``include_content``, composed
at intake before sealing, under the key file's alert subkey (the documented exception).
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs: a batch copy of ``tips`` on SQLite would lose its expression index.
    op.add_column('tips', sa.Column('alert_content_ct', sa.LargeBinary(), nullable=True))
    op.add_column('messages', sa.Column('data_key_uid', sa.String(length=32), nullable=True))
    op.add_column('messages', sa.Column('placeholder', sa.Boolean(), nullable=False,
                                        server_default=sa.false()))
    op.add_column('messages', sa.Column('relay_payload_ct', sa.LargeBinary(), nullable=True))
    op.add_column('attachments', sa.Column('data_key_uid', sa.String(length=32), nullable=True))
    op.add_column('attachments', sa.Column('transcript_key_uid', sa.String(length=32),
                                           nullable=True))
    op.add_column('notes', sa.Column('data_key_uid', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('notes') as batch:
        batch.drop_column('data_key_uid')
    with op.batch_alter_table('attachments') as batch:
        batch.drop_column('transcript_key_uid')
        batch.drop_column('data_key_uid')
    with op.batch_alter_table('messages') as batch:
        batch.drop_column('relay_payload_ct')
        batch.drop_column('placeholder')
        batch.drop_column('data_key_uid')
    # SQLite drops a column by copying the table, which loses the expression index: dropped
    # first and made again after.
    op.drop_index('ix_tips_queue_order', table_name='tips')
    with op.batch_alter_table('tips') as batch:
        batch.drop_column('alert_content_ct')
    op.create_index('ix_tips_queue_order', 'tips', [
        sa.text('severity DESC'),
        sa.text('(acknowledged_at IS NOT NULL)'),
        'created_at', 'id',
    ], unique=False)
