"""``routing_jobs``: partial indexes per status instead of one index of every job's status.

Revision ID: 0018
Revises: 0017

On tables autovacuum had not analysed yet (a new database, a surge in its first minutes),
PostgreSQL answered the surge search's probe "is this tip's job done" (``tip_id = ? AND
status = 'done'``) with a bitmap AND of the ``tip_id`` index and the whole ``status`` index,
in part of a 3,000-tip benchmark even with ``ix_routing_jobs_done_tip`` there (405 million
``status`` index entries read). No statement needs every job by status: the sweep reads
pending jobs (``ix_routing_jobs_pending``, by age), health and re-triage read failed ones
(``ix_routing_jobs_failed``), the probe reads done ones (``ix_routing_jobs_done_tip``); each
index now holds only its status, so none of them can stand in for another.
"""

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_routing_jobs_pending', 'routing_jobs', ['created_at'],
                    postgresql_where=sa.text("status = 'pending'"),
                    sqlite_where=sa.text("status = 'pending'"))
    op.create_index('ix_routing_jobs_failed', 'routing_jobs', ['tip_id'],
                    postgresql_where=sa.text("status = 'failed'"),
                    sqlite_where=sa.text("status = 'failed'"))
    op.drop_index('ix_routing_jobs_status', table_name='routing_jobs')


def downgrade() -> None:
    op.create_index('ix_routing_jobs_status', 'routing_jobs', ['status'])
    op.drop_index('ix_routing_jobs_failed', table_name='routing_jobs')
    op.drop_index('ix_routing_jobs_pending', table_name='routing_jobs')
