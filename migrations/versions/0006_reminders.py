"""reminders: per-link reminder counter, last reminder time, opt-out; message kind

Revision ID: 0006
Revises: 0005
Create Date: 2027-02-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payment_link") as batch:
        batch.add_column(
            sa.Column("reminders_sent", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("last_reminder_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("reminders_stopped_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("message") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=8), server_default="link", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("payment_link") as batch:
        batch.drop_column("reminders_stopped_at")
        batch.drop_column("last_reminder_at")
        batch.drop_column("reminders_sent")
