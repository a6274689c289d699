"""partial payments: payment_link.min_payment_cents (NULL: only the whole balance) and
payment_link.paid_cents (the sum of the link's completed charges)

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLEs (no batch copy of payment_link on SQLite): 0012's dashboard triggers and
    # 0013's search triggers stay.
    op.add_column("payment_link", sa.Column("min_payment_cents", sa.Integer(), nullable=True))
    op.add_column(
        "payment_link",
        sa.Column("paid_cents", sa.Integer(), nullable=False, server_default="0"),
    )
    # Existing links: what their completed charges add up to (a link paid twice holds both).
    op.execute(
        sa.text(
            "UPDATE payment_link SET paid_cents = (SELECT COALESCE(SUM(payment.amount_cents), 0)"
            " FROM payment WHERE payment.link_id = payment_link.id"
            " AND payment.status = 'completed')"
            " WHERE EXISTS (SELECT 1 FROM payment WHERE payment.link_id = payment_link.id"
            " AND payment.status = 'completed')"
        )
    )
    # Outstanding money is now the balance: keep the dashboard's live count on the index alone.
    op.drop_index("ix_payment_link_status_expires", table_name="payment_link")
    op.create_index(
        "ix_payment_link_status_expires",
        "payment_link",
        ["status", "expires_at", "paid_at", "amount_cents", "paid_cents"],
    )


def downgrade() -> None:
    op.drop_index("ix_payment_link_status_expires", table_name="payment_link")
    op.create_index(
        "ix_payment_link_status_expires",
        "payment_link",
        ["status", "expires_at", "paid_at", "amount_cents"],
    )
    op.drop_column("payment_link", "paid_cents")
    op.drop_column("payment_link", "min_payment_cents")
