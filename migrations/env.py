"""Alembic environment: payapp passes its own connection (see payapp/db.py upgrade_schema)."""

from alembic import context

from payapp.models import Base, described_by_models

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        # Command-line use (alembic -x url=...) for developers writing a new revision.
        from sqlalchemy import create_engine

        url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///instance/payapp.db")
        with create_engine(url).connect() as conn:
            _configure_and_run(conn)
            conn.commit()
        return
    _configure_and_run(connection)


def _configure_and_run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
        compare_type=True,
        include_name=described_by_models,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
