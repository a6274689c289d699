"""texting for real: Twilio's message id and delivery status on each message, and the numbers
that replied STOP

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("provider_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("delivery_status", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("error_code", sa.String(length=8), nullable=True))
        batch.create_index("ix_message_provider_id", ["provider_id"], unique=True)
        batch.create_index("ix_message_status", ["status"], unique=False)
    op.create_table(
        "sms_opt_out",
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("keyword", sa.String(length=16), nullable=False),
        sa.Column("opted_out_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("phone"),
    )


def downgrade() -> None:
    op.drop_table("sms_opt_out")
    with op.batch_alter_table("message") as batch:
        batch.drop_index("ix_message_status")
        batch.drop_index("ix_message_provider_id")
        batch.drop_column("error_code")
        batch.drop_column("delivery_status")
        batch.drop_column("provider_id")
