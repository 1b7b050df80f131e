"""When a tip's first alert went out (``tips.first_alert_at``), and an index for routed tips.

Revision ID: 0017
Revises: 0013

``tips.first_alert_at`` is set once, by the first delivery of the tip recorded as sent
(``UPDATE ... WHERE first_alert_at IS NULL``): the commit -> first alert metric is observed
by the delivery whose update matched, so each tip counts once even when two of its alerts
are recorded at the same moment, in one primary-key statement (it was a minimum over the
tip's deliveries, which a database without statistics answered by reading every delivery).
Existing tips get the earliest ``sent_at`` of their deliveries, so an old tip's later alert
is not taken for its first.

``ix_routing_jobs_done_tip`` (``tip_id`` of jobs whose status is ``done``) matches the
surge search's probe "has routing taken this tip" exactly; without it a table that had not
been analysed yet was probed through the whole ``status`` index once per candidate.
``ix_tip_signatures_school_created`` gives the same search a school's signatures in the
grouping window from one index.
"""

import sqlalchemy as sa
from alembic import op

import tipline.db

revision = '0017'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: a batch copy of ``tips`` on SQLite would lose its expression index.
    op.add_column('tips', sa.Column('first_alert_at', tipline.db.UTCDateTime(timezone=True),
                                    nullable=True))
    op.execute(
        "UPDATE tips SET first_alert_at = (SELECT min(d.sent_at) FROM alert_deliveries d "
        "JOIN dispatches p ON p.id = d.dispatch_id WHERE p.tip_id = tips.id) "
        "WHERE id IN (SELECT p.tip_id FROM dispatches p JOIN alert_deliveries d "
        "ON d.dispatch_id = p.id WHERE d.sent_at IS NOT NULL)"
    )
    op.create_index('ix_routing_jobs_done_tip', 'routing_jobs', ['tip_id'],
                    postgresql_where=sa.text("status = 'done'"),
                    sqlite_where=sa.text("status = 'done'"))
    op.create_index('ix_tip_signatures_school_created', 'tip_signatures',
                    ['school_id', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_tip_signatures_school_created', table_name='tip_signatures')
    op.drop_index('ix_routing_jobs_done_tip', table_name='routing_jobs')
    # SQLite drops a column by copying the table, which loses the expression index: dropped
    # first and made again after (as 0012 does).
    op.drop_index('ix_tips_queue_order', table_name='tips')
    with op.batch_alter_table('tips') as batch:
        batch.drop_column('first_alert_at')
    op.create_index('ix_tips_queue_order', 'tips', [
        sa.text('severity DESC'),
        sa.text('(acknowledged_at IS NOT NULL)'),
        'created_at', 'id',
    ], unique=False)
