"""one spelling: payments stored as "canceled" become "cancelled", like links (payapp/states.py)

Revision ID: 0005
Revises: 0004
Create Date: 2027-01-15
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("UPDATE payment SET status = 'cancelled' WHERE status = 'canceled'"))


def downgrade() -> None:
    op.execute(sa.text("UPDATE payment SET status = 'canceled' WHERE status = 'cancelled'"))
