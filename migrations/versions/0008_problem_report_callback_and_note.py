"""problem reports: a call-back number, the resolving note, indexes for open/resolved counts

Revision ID: 0008
Revises: 0007
Create Date: 2027-02-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("problem_report", schema=None) as batch_op:
        batch_op.add_column(sa.Column("callback_phone", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("note", sa.String(length=1000), server_default="", nullable=False)
        )
        batch_op.create_index(
            batch_op.f("ix_problem_report_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_problem_report_resolved_at"), ["resolved_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("problem_report", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_problem_report_resolved_at"))
        batch_op.drop_index(batch_op.f("ix_problem_report_created_at"))
        batch_op.drop_column("note")
        batch_op.drop_column("callback_phone")
