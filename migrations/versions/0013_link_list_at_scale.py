"""the staff list at 1 M links: indexes in its sort order, and a full-text index for the search
(SQLite FTS5 kept in sync by triggers; PostgreSQL pg_trgm), built from the links already there

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30

A later batch_alter_table("payment_link") on SQLite copies the table and so drops the three
triggers below: such a migration must create them again (docs/developer.md, Migrations).
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

INDEXES = (
    # Each status filter and the keyset cursor read this index in order: no sort, no OFFSET.
    # expires_at rides along so "open" and "overdue" are checked without reading the rows.
    ("ix_payment_link_status_created", ["status", "created_at", "id", "expires_at"]),
    ("ix_payment_link_created_id", ["created_at", "id"]),
)

SQLITE_UP = (
    # External content: the words live once, in payment_link; the index holds only tokens.
    "CREATE VIRTUAL TABLE payment_link_search USING fts5(patient_name, reference,"
    " content='payment_link', content_rowid='id',"
    " tokenize='unicode61 remove_diacritics 2', prefix='2 3')",
    "CREATE TRIGGER payment_link_search_insert AFTER INSERT ON payment_link BEGIN"
    " INSERT INTO payment_link_search (rowid, patient_name, reference)"
    " VALUES (new.id, new.patient_name, new.reference); END",
    "CREATE TRIGGER payment_link_search_delete AFTER DELETE ON payment_link BEGIN"
    " INSERT INTO payment_link_search (payment_link_search, rowid, patient_name, reference)"
    " VALUES ('delete', old.id, old.patient_name, old.reference); END",
    "CREATE TRIGGER payment_link_search_update AFTER UPDATE OF patient_name, reference"
    " ON payment_link BEGIN"
    " INSERT INTO payment_link_search (payment_link_search, rowid, patient_name, reference)"
    " VALUES ('delete', old.id, old.patient_name, old.reference);"
    " INSERT INTO payment_link_search (rowid, patient_name, reference)"
    " VALUES (new.id, new.patient_name, new.reference); END",
    "INSERT INTO payment_link_search (payment_link_search) VALUES ('rebuild')",
)
SQLITE_DOWN = (
    "DROP TRIGGER payment_link_search_update",
    "DROP TRIGGER payment_link_search_delete",
    "DROP TRIGGER payment_link_search_insert",
    "DROP TABLE payment_link_search",
)
POSTGRESQL_UP = (
    # Trusted since PostgreSQL 13: the database's owner may create it.
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    # links.py searches this very expression with ~* '\mword' (a word's start), which the
    # trigram index answers; it must stay the same expression.
    "CREATE INDEX ix_payment_link_search_trgm ON payment_link"
    " USING gin ((patient_name || ' ' || reference) gin_trgm_ops)",
    # Statistics on the indexed expression let the planner choose between this index and the
    # list's order by how common a word is; autovacuum would gather them only later.
    "ANALYZE payment_link",
)
POSTGRESQL_DOWN = ("DROP INDEX ix_payment_link_search_trgm",)


def upgrade() -> None:
    for name, columns in INDEXES:
        op.create_index(name, "payment_link", columns)
    for statement in SQLITE_UP if _sqlite() else POSTGRESQL_UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in SQLITE_DOWN if _sqlite() else POSTGRESQL_DOWN:
        op.execute(statement)
    for name, _ in reversed(INDEXES):
        op.drop_index(name, table_name="payment_link")


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"
