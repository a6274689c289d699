"""alert banner index: the newest audit event of one action, read from the index alone

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_event_action_created", "audit_event", ["action", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_event_action_created", table_name="audit_event")
