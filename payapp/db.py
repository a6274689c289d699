"""Database engine and sessions: one engine per app, one session per request (or CLI command)."""

from __future__ import annotations

from pathlib import Path

import click
from alembic import command
from alembic.config import Config as AlembicConfig
from flask import current_app, g
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.routing import IntegerConverter

from .paths import MIGRATIONS_DIR

# Ids are INTEGER columns: PostgreSQL refuses a bigger number with an error (a 500) where SQLite
# would just find nothing. One limit for every id that comes from a URL or a form, on both.
MAX_ID = 2**31 - 1


def is_valid_id(value: object) -> bool:
    """Whether ``value`` could be a row id: an int in 1..MAX_ID (bools are not ids)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


class IdConverter(IntegerConverter):
    """``<id:link_id>``: a row id in URLs; anything outside 1..MAX_ID does not match (404)."""

    def __init__(self, map, **kwargs):  # noqa: A002 - werkzeug's signature
        super().__init__(map, min=1, max=MAX_ID, **kwargs)


def make_engine(url: str) -> Engine:
    """Create the engine; SQLite gets WAL, foreign keys and a busy timeout on every connection."""
    if url.startswith("sqlite"):
        # SQLite connections are cheap; a roomy pool keeps every gunicorn thread (and a burst of
        # concurrent payment submits) from queueing for one.
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=10,
            max_overflow=40,
            hide_parameters=True,  # SQL logging or errors never show values (hashes, secrets)
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


def init_app(app) -> None:
    app.url_map.converters["id"] = IdConverter  # before any blueprint adds its routes
    url = app.config["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    app.extensions["payapp.engine"] = engine
    app.extensions["payapp.sessionmaker"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(close_session)
    app.cli.add_command(init_db_command)


def get_session() -> Session:
    """The session for this request or command, opened on first use."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["payapp.sessionmaker"]()
    return g.db_session


def close_session(_exc=None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def upgrade_schema(engine: Engine) -> None:
    """Bring the schema to the newest migration (creates it on an empty database)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@click.command("init-db")
def init_db_command():
    """Create or upgrade the database schema (runs migrations; keeps data)."""
    upgrade_schema(current_app.extensions["payapp.engine"])
    click.echo("Database is up to date.")
