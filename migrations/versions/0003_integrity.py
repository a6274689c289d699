"""integrity: CSP violation reports and site settings (the integrity baseline)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "csp_report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_uri", sa.String(length=500), nullable=False),
        sa.Column("violated_directive", sa.String(length=200), nullable=False),
        sa.Column("blocked_uri", sa.String(length=500), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("csp_report") as batch:
        batch.create_index("ix_csp_report_created_at", ["created_at"], unique=False)
    op.create_table(
        "site_setting",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("site_setting")
    with op.batch_alter_table("csp_report") as batch:
        batch.drop_index("ix_csp_report_created_at")
    op.drop_table("csp_report")
