"""dashboard: payment_link.first_sent_at, and indexes on what payapp/metrics.py filters and sums on

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

INDEXES = (
    (
        "ix_payment_link_created_funnel",
        "payment_link",
        ["created_at", "status", "sent_at", "first_viewed_at", "paid_at"],
    ),
    ("ix_payment_link_paid_at", "payment_link", ["paid_at", "first_sent_at"]),
    ("ix_payment_link_expires_at", "payment_link", ["expires_at", "status"]),
    ("ix_payment_status_completed", "payment", ["status", "completed_at", "amount_cents"]),
    ("ix_payment_status_created", "payment", ["status", "created_at", "error_code"]),
    ("ix_payment_created_at", "payment", ["created_at"]),
    ("ix_refund_created_at", "refund", ["created_at", "status", "amount_cents"]),
    ("ix_message_link_sent", "message", ["link_id", "status", "sent_at"]),
)


def upgrade() -> None:
    with op.batch_alter_table("payment_link") as batch:
        batch.add_column(sa.Column("first_sent_at", sa.DateTime(), nullable=True))
    op.execute(
        sa.text(
            "UPDATE payment_link SET first_sent_at = (SELECT min(message.sent_at) FROM message"
            " WHERE message.link_id = payment_link.id AND message.status = 'sent')"
        )
    )
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("payment_link") as batch:
        batch.drop_column("first_sent_at")
