"""When an alert reached the phone: ``alert_deliveries.delivered_at``.

Revision ID: 0016
Revises: 0014

Set from the provider's status callback (a text ``delivered``, a call answered or
completed), so the statistics page and the routing benchmark report tip commit -> first alert
delivered per channel, not only "handed to Twilio" (issue 18).
"""

import sqlalchemy as sa
from alembic import op

import tipline.db

revision = '0016'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('alert_deliveries', sa.Column('delivered_at',
                                                tipline.db.UTCDateTime(timezone=True),
                                                nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alert_deliveries') as batch:
        batch.drop_column('delivered_at')
