"""link requests: a patient's "Send me a new link" on an expired or locked link

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "link_request",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("link_id", sa.Integer(), sa.ForeignKey("payment_link.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("handled_by_id", sa.Integer(), sa.ForeignKey("staff_user.id"), nullable=True),
        sa.Column("handled_at", sa.DateTime(), nullable=True),
        sa.Column("new_link_id", sa.Integer(), sa.ForeignKey("payment_link.id"), nullable=True),
    )
    op.create_index("ix_link_request_link_id", "link_request", ["link_id"])
    op.create_index("ix_link_request_state", "link_request", ["state"])
    # One open request per link: a second "Send me a new link" finds the first (one statement).
    op.create_index(
        "uq_link_request_open_link",
        "link_request",
        ["link_id"],
        unique=True,
        sqlite_where=sa.text("state = 'open'"),
        postgresql_where=sa.text("state = 'open'"),
    )


def downgrade() -> None:
    op.drop_table("link_request")
