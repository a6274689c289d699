"""refunds and webhooks: refund permission, refunded total, gateway versions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_user") as batch:
        batch.add_column(
            sa.Column("can_refund", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("payment") as batch:
        batch.add_column(
            sa.Column("refunded_cents", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("gateway_updated_at", sa.String(length=40), nullable=True))
    with op.batch_alter_table("refund") as batch:
        batch.add_column(sa.Column("gateway_updated_at", sa.String(length=40), nullable=True))
        batch.create_unique_constraint("uq_refund_gateway_refund_id", ["gateway_refund_id"])


def downgrade() -> None:
    with op.batch_alter_table("refund") as batch:
        batch.drop_constraint("uq_refund_gateway_refund_id", type_="unique")
        batch.drop_column("gateway_updated_at")
    with op.batch_alter_table("payment") as batch:
        batch.drop_column("gateway_updated_at")
        batch.drop_column("refunded_cents")
    with op.batch_alter_table("staff_user") as batch:
        batch.drop_column("can_refund")
