"""failure surges: one row per incident of a surge of failures (payapp/alerts.py)

Revision ID: 0007
Revises: 0006
Create Date: 2027-02-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "failure_surge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("open_kind", sa.String(length=10), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("baseline_rate", sa.Float(), nullable=False),
        sa.Column("threshold_rate", sa.Float(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("recovered_at", sa.DateTime(), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("acknowledged_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["acknowledged_by_id"], ["staff_user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("open_kind"),
    )
    with op.batch_alter_table("failure_surge") as batch:
        batch.create_index("ix_failure_surge_started_at", ["started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("failure_surge") as batch:
        batch.drop_index("ix_failure_surge_started_at")
    op.drop_table("failure_surge")
