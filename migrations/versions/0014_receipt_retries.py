"""receipt retries: which payment or refund a receipt or refund notice is for, and when run-jobs
tries a failed one again

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("payment_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("refund_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("retry_at", sa.DateTime(), nullable=True))
        batch.create_foreign_key("fk_message_payment_id_payment", "payment", ["payment_id"], ["id"])
        batch.create_foreign_key("fk_message_refund_id_refund", "refund", ["refund_id"], ["id"])
        batch.create_index("ix_message_retry_at", ["retry_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.drop_index("ix_message_retry_at")
        batch.drop_constraint("fk_message_refund_id_refund", type_="foreignkey")
        batch.drop_constraint("fk_message_payment_id_payment", type_="foreignkey")
        batch.drop_column("retry_at")
        batch.drop_column("refund_id")
        batch.drop_column("payment_id")
