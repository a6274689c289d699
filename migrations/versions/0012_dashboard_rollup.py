"""dashboard rollup: daily totals per clinic-local day, kept exact by triggers that mark the
UTC hours a write touched (payapp/metrics.py, "The rollup")

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

# ruff: noqa: S608 - the SQL is built from the constant table and column names below only

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# table -> {timestamp: the columns whose change alters a figure counted by that timestamp's day}.
# A payment also marks its link's created_at hour (the funnel's "tried to pay" counts by creation
# day); for payments and refunds any watched change marks every timestamp.
FUNNEL = ("created_at", "status", "sent_at", "first_viewed_at", "paid_at")
WATCHED = {
    "payment_link": {
        "created_at": FUNNEL,
        "paid_at": ("paid_at", "first_sent_at"),
        "expires_at": ("expires_at", "paid_at", "status"),
    },
    "payment": dict.fromkeys(
        ("created_at", "completed_at", "link_created_at"),
        ("created_at", "completed_at", "status", "error_code", "amount_cents", "link_id"),
    ),
    "refund": {"created_at": ("created_at", "status", "amount_cents")},
}
LINK_CREATED = "(SELECT created_at FROM payment_link WHERE payment_link.id = {row}.link_id)"


def _stamp(stamp: str, row: str) -> str:
    return LINK_CREATED.format(row=row) if stamp == "link_created_at" else f"{row}.{stamp}"


def _watched_columns(table: str) -> list[str]:
    return sorted({c for columns in WATCHED[table].values() for c in columns})


def _sqlite_triggers() -> list[str]:
    statements = []
    for table, stamps in WATCHED.items():
        for event, rows in (("INSERT", ("NEW",)), ("UPDATE", ("OLD", "NEW")), ("DELETE", ("OLD",))):
            selects = []
            for row in rows:
                for stamp, columns in stamps.items():
                    changed = ""
                    if event == "UPDATE":
                        changed = " WHERE " + " OR ".join(
                            f"OLD.{c} IS NOT NEW.{c}" for c in columns
                        )
                    selects.append(f"SELECT {_stamp(stamp, row)} AS t{changed}")
            when = ""
            if event == "UPDATE":
                when = " WHEN " + " OR ".join(
                    f"OLD.{c} IS NOT NEW.{c}" for c in _watched_columns(table)
                )
            statements.append(
                f"CREATE TRIGGER dashboard_mark_{table}_{event.lower()} AFTER {event} ON {table}"
                f"{when} BEGIN INSERT INTO dashboard_dirty (hour, n)"
                f" SELECT substr(t, 1, 13), 1 FROM ({' UNION ALL '.join(selects)})"
                " WHERE t IS NOT NULL ON CONFLICT (hour) DO UPDATE SET n = n + 1; END"
            )
    return statements


def _postgresql_triggers() -> list[str]:
    statements = []
    for table, stamps in WATCHED.items():
        selects = []
        for stamp, columns in stamps.items():
            changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)
            selects.append(
                f"SELECT {_stamp(stamp, 'NEW')} WHERE TG_OP = 'INSERT' OR"
                f" (TG_OP = 'UPDATE' AND ({changed}))"
            )
            selects.append(
                f"SELECT {_stamp(stamp, 'OLD')} WHERE TG_OP = 'DELETE' OR"
                f" (TG_OP = 'UPDATE' AND ({changed}))"
            )
        statements.append(
            f"CREATE FUNCTION dashboard_mark_{table}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n"
            "  INSERT INTO dashboard_dirty (hour, n)\n"
            "  SELECT to_char(t, 'YYYY-MM-DD HH24'), count(*) FROM (\n    "
            + "\n    UNION ALL ".join(selects)
            + "\n  ) AS marks (t) WHERE t IS NOT NULL GROUP BY 1\n"
            "  ON CONFLICT (hour) DO UPDATE SET n = dashboard_dirty.n + EXCLUDED.n;\n"
            "  RETURN NULL;\n"
            "END $$"
        )
        statements.append(
            f"CREATE TRIGGER dashboard_mark_{table} AFTER INSERT OR UPDATE OR DELETE ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION dashboard_mark_{table}()"
        )
    return statements


def mark_every_hour_sql(dialect: str) -> str:
    """Marks every UTC hour that holds a timestamp the dashboard counts by."""
    hour = "substr({}, 1, 13)" if dialect == "sqlite" else "to_char({}, 'YYYY-MM-DD HH24')"
    parts = [
        f"SELECT DISTINCT {hour.format(c)} AS h FROM {table} WHERE {c} IS NOT NULL"
        for table, stamps in WATCHED.items()
        for c in stamps
        if c != "link_created_at"
    ]
    return (
        "INSERT INTO dashboard_dirty (hour, n) SELECT h, 1 FROM ("
        + " UNION ".join(parts)
        + ") AS hours WHERE h IS NOT NULL ON CONFLICT (hour) DO UPDATE SET n = dashboard_dirty.n + 1"
    )


def upgrade() -> None:
    op.create_table(
        "dashboard_dirty",
        sa.Column("hour", sa.String(length=13), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("hour"),
    )
    op.create_table(
        "dashboard_day",
        sa.Column("day", sa.Date(), nullable=False),
        *[
            sa.Column(name, sa.Integer(), nullable=False)
            for name in (
                "created",
                "sent",
                "opened",
                "attempted",
                "paid",
                "cancelled",
                "paid_count",
                "paid_cents",
                "refunded_cents",
                "waits",
                "first_attempts",
                "first_attempt_successes",
                "unknown_outcomes",
                "expired_unpaid",
            )
        ],
        sa.PrimaryKeyConstraint("day"),
    )
    op.create_table(
        "dashboard_day_decline",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("code", sa.String(length=80), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "code"),
    )
    for table in ("dashboard_day_wait", "dashboard_day_wait_minute"):
        op.create_table(
            table,
            sa.Column("day", sa.Date(), nullable=False),
            sa.Column("minutes", sa.Integer(), nullable=False),
            sa.Column("n", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("day", "minutes"),
        )
    op.create_index(
        "ix_dashboard_day_wait_minute_minutes",
        "dashboard_day_wait_minute",
        ["minutes", "day", "n"],
    )
    # Outstanding and today's expiries are counted live: read them from the index alone.
    # A day's first attempts (and their outcome) read from the index alone.
    op.create_index("ix_payment_created_link", "payment", ["created_at", "link_id", "status"])
    op.create_index(
        "ix_payment_link_status_expires",
        "payment_link",
        ["status", "expires_at", "paid_at", "amount_cents"],
    )
    dialect = op.get_bind().dialect.name
    for statement in _sqlite_triggers() if dialect == "sqlite" else _postgresql_triggers():
        op.execute(sa.text(statement))
    # An upgraded database is exact from the first view: every hour with data is recomputed then
    # (or by the next run-jobs).
    op.execute(sa.text(mark_every_hour_sql(dialect)))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in WATCHED:
        if dialect == "sqlite":
            for event in ("insert", "update", "delete"):
                op.execute(sa.text(f"DROP TRIGGER dashboard_mark_{table}_{event}"))
        else:
            op.execute(sa.text(f"DROP TRIGGER dashboard_mark_{table} ON {table}"))
            op.execute(sa.text(f"DROP FUNCTION dashboard_mark_{table}()"))
    op.drop_index("ix_payment_link_status_expires", table_name="payment_link")
    op.drop_index("ix_payment_created_link", table_name="payment")
    op.drop_index("ix_dashboard_day_wait_minute_minutes", table_name="dashboard_day_wait_minute")
    for table in (
        "dashboard_day_wait_minute",
        "dashboard_day_wait",
        "dashboard_day_decline",
        "dashboard_day",
        "dashboard_dirty",
    ):
        op.drop_table(table)
