"""Square's ids at their documented lengths: a payment id up to 192 characters, a refund id up
to 255 (Square's refund ids are the payment's id and more, over 64). SQLite never enforced the
old 64; PostgreSQL refused the refund's id after the money had moved.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payment") as batch:
        batch.alter_column(
            "gateway_payment_id", type_=sa.String(length=192), existing_type=sa.String(length=64)
        )
    with op.batch_alter_table("refund") as batch:
        batch.alter_column(
            "gateway_refund_id", type_=sa.String(length=255), existing_type=sa.String(length=64)
        )


def downgrade() -> None:
    with op.batch_alter_table("refund") as batch:
        batch.alter_column(
            "gateway_refund_id", type_=sa.String(length=64), existing_type=sa.String(length=255)
        )
    with op.batch_alter_table("payment") as batch:
        batch.alter_column(
            "gateway_payment_id", type_=sa.String(length=64), existing_type=sa.String(length=192)
        )
