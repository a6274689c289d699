"""link language: the language a patient reads a link's pages in ("en" or "es")

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing links keep reading English. A plain ALTER TABLE (no batch copy of the table on
    # SQLite), so 0013's search triggers stay.
    op.add_column(
        "payment_link", sa.Column("language", sa.String(2), nullable=False, server_default="en")
    )


def downgrade() -> None:
    op.drop_column("payment_link", "language")
