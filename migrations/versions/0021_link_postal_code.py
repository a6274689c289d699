"""link postal code: the patient's ZIP code, so /pay finds a bill by statement number and ZIP

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: existing links have no ZIP and are found by last name only. A plain
    # ALTER TABLE (never a batch copy of payment_link on SQLite), so 0012/0013's triggers stay.
    op.add_column("payment_link", sa.Column("postal_code", sa.String(10), nullable=True))


def downgrade() -> None:
    op.drop_column("payment_link", "postal_code")
