"""payment wallet: which wallet button (Apple Pay, Google Pay) made a payment's token, so its
receipt can name it; NULL for a typed card

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ALTER TABLE (no batch copy on SQLite), so 0012's triggers on payment stay.
    op.add_column("payment", sa.Column("wallet", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_column("payment", "wallet")
