"""statement lookup index: /pay finds a link by lower(reference) from an index, not a scan

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_payment_link_reference_lower",
        "payment_link",
        [sa.text("lower(reference)"), "status", "expires_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_payment_link_reference_lower", table_name="payment_link")
