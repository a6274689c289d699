"""staff security: lockout, forced password change, TOTP state, recovery codes, session generation

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_user") as batch:
        batch.add_column(sa.Column("locked_at", sa.DateTime(), nullable=True))
        batch.add_column(
            sa.Column(
                "password_must_change", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch.add_column(sa.Column("mfa_enabled_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("totp_last_counter", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("recovery_codes", sa.Text(), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("staff_user") as batch:
        batch.drop_column("session_generation")
        batch.drop_column("recovery_codes")
        batch.drop_column("totp_last_counter")
        batch.drop_column("mfa_enabled_at")
        batch.drop_column("password_must_change")
        batch.drop_column("locked_at")
