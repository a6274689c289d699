"""Square's ids at their documented lengths: a payment id up to 192 characters, a refund id up
to 255 (Square's refund ids are the payment's id and more, over 64). SQLite never enforced the
old 64; PostgreSQL refused the refund's id after the money had moved.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_widen()
        return
    op.alter_column(
        "payment", "gateway_payment_id", type_=sa.String(length=192), existing_type=sa.String(64)
    )
    op.alter_column(
        "refund", "gateway_refund_id", type_=sa.String(length=255), existing_type=sa.String(64)
    )


def _sqlite_widen() -> None:
    """SQLite never enforces a VARCHAR's length, and rebuilding these tables (Alembic's batch
    mode) fails once refunds and messages point at payments (foreign keys are on). So only the
    declared type in the stored CREATE TABLE text changes, as SQLite documents for changes that
    leave every stored row valid (https://www.sqlite.org/lang_altertable.html, "otherwise")."""
    conn = op.get_bind()
    conn.exec_driver_sql("PRAGMA writable_schema=ON")
    for table, column, width in (
        ("payment", "gateway_payment_id", 192),
        ("refund", "gateway_refund_id", 255),
    ):
        conn.exec_driver_sql(
            "UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = ?",
            (f"{column} VARCHAR(64)", f"{column} VARCHAR({width})", table),
        )
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar()
    conn.exec_driver_sql(f"PRAGMA schema_version={int(version) + 1}")
    conn.exec_driver_sql("PRAGMA writable_schema=OFF")


def downgrade() -> None:
    with op.batch_alter_table("refund") as batch:
        batch.alter_column(
            "gateway_refund_id", type_=sa.String(length=64), existing_type=sa.String(length=255)
        )
    with op.batch_alter_table("payment") as batch:
        batch.alter_column(
            "gateway_payment_id", type_=sa.String(length=64), existing_type=sa.String(length=192)
        )
