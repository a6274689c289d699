"""Database engine and sessions: one engine per app, one session per request (or CLI command),
and the two things every view needs from it: get-or-404 and pagination.

Why our own ~100 lines and not Flask-SQLAlchemy (decided once, issue 8): domain functions take a
plain SQLAlchemy ``Session`` and run the same in tests, CLI commands and requests; the engine is
tuned here per database (SQLite's pragmas and pool size for concurrent payment submits) and the
pay path opens one session lazily, only when it touches the database. Flask-SQLAlchemy would add
a scoped session, its own engine-option layering and model base for no feature we use beyond
``get_or_404`` and ``paginate``, which are the few lines below.
"""

from __future__ import annotations

import os
import weakref
from collections import deque, namedtuple
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from alembic import command
from alembic.config import Config as AlembicConfig
from flask import current_app, g
from sqlalchemy import Select, create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ClauseElement
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from .lru import LruCache
from .paths import MIGRATIONS_DIR

# Ids are INTEGER columns: PostgreSQL refuses a bigger number with an error (a 500) where SQLite
# would just find nothing. One limit for every id that comes from a URL or a form, on both.
MAX_ID = 2**31 - 1
# Rows a PreparedRead keeps converted, per engine: as many as the open pay pages kept.
CONVERTED_ROWS = 512
# SQLite connections a PreparedRead keeps between reads, per engine: more than a process runs
# threads (gunicorn's 4), so a burst never opens one per read; any beyond are closed after use.
KEPT_SQLITE_CONNECTIONS = 16


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
    # The same roomy pool: a process never holds more connections than it runs requests (plus
    # threads of its own), and a burst must not queue for one of SQLAlchemy's default 5 + 10.
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=40, hide_parameters=True
    )


class PreparedRead:
    """A read-only statement compiled once per engine and run on a pooled DBAPI connection, for
    the few reads every patient request makes (the open pay page's row, /healthz's SELECT 1).
    SQLAlchemy's per-execution work (a Connection, its autobegin and rollback, the result's
    metadata) was a fifth of the page's time (issue 10, fourth round); this pays it once. Each
    column still goes through its type's own result processing (aware UTC datetimes), so a row
    holds exactly what ``connection.execute(statement).first()`` gives; rows are named tuples
    with ``_mapping``. Listeners of ``before_cursor_execute`` still see the SQL (with no
    Connection).

    Connections: on PostgreSQL each read checks one out of the engine's pool (its pre-ping and
    its rollback on return unchanged). On SQLite the read keeps its own few (KeptConnections):
    the pool's checkout and return were a third of the read (issue 10, sixth round), and a
    SQLite connection never goes stale the way a server's does."""

    def __init__(self, statement: ClauseElement):
        self.statement = statement
        # Per engine, never keeping one alive (tests make an engine per app).
        self._prepared: weakref.WeakKeyDictionary[Engine, tuple] = weakref.WeakKeyDictionary()

    def _prepare(self, engine: Engine) -> tuple:
        prepared = self._prepared.get(engine)
        if prepared is None:
            dialect = engine.dialect
            compiled = self.statement.compile(dialect=dialect)
            binds = [
                (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
                for name in (compiled.positiontup or compiled.binds)
            ]
            columns = getattr(self.statement, "selected_columns", ())
            processors = [
                c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
            ]
            row_type = _row_type(tuple(c.key for c in columns)) if columns else None
            # Converted rows by the raw values the database returned (see first()).
            converted = LruCache(CONVERTED_ROWS)
            kept = None
            if dialect.name == "sqlite":
                kept = KeptConnections()
                # engine.dispose() closes every connection of the engine: these too.
                event.listen(engine, "engine_disposed", kept.close_all)
            prepared = (
                compiled.string,
                compiled.positional,
                binds,
                processors,
                row_type,
                converted,
                kept,
            )
            self._prepared[engine] = prepared
        return prepared

    def first(self, engine: Engine, **params):
        """The first row (a named tuple), or None. The statement runs every time; converting the
        raw values (the datetimes are parsed and made aware) is a pure function of them, so the
        converted row is kept by the raw row's exact values and their types: a row that changed
        in any column is converted anew (issue 10, fifth round)."""
        sql, positional, binds, processors, row_type, converted, kept = self._prepare(engine)
        values = [(name, p(params[name]) if p else params[name]) for name, p in binds]
        args = tuple(v for _n, v in values) if positional else dict(values)
        connection = engine.raw_connection() if kept is None else kept.take(engine)
        try:
            cursor = connection.cursor()
            try:
                if engine.dispatch.before_cursor_execute:
                    for listener in engine.dispatch.before_cursor_execute:
                        listener(None, cursor, sql, args, None, False)
                cursor.execute(sql, args)
                raw = cursor.fetchone()
            finally:
                cursor.close()
        except BaseException:
            connection.close()  # never reused after a failure: the pool's, or a kept one closed
            raise
        if kept is None:
            connection.close()  # back to the pool, rolled back
        else:
            kept.give_back(connection)
        if raw is None or row_type is None:
            return raw
        # Types too: 1, 1.0 and True are equal keys but need not convert alike.
        key = (raw, tuple(map(type, raw)))
        try:
            row = converted.get(key)
        except TypeError:  # an unhashable value (a PostgreSQL array...): converted every time
            key = row = None
        if row is None:
            row = row_type._make(p(v) if p else v for p, v in zip(processors, raw, strict=True))
            if key is not None:
                converted.put(key, row)
        return row


# Connections a forked process found kept by its parent (KeptConnections.take).
_INHERITED: list = []


class KeptConnections:
    """A PreparedRead's own SQLite connections for one engine: each read takes one and gives it
    back (a deque's pop and append, atomic between threads). Each is made by the engine's pool,
    so it has the same pragmas (WAL, busy timeout, foreign keys), then detached from it and kept
    as the bare DBAPI connection.
    A read only SELECTs, so a connection goes back outside any transaction (WAL checkpoints are
    never held up by it); one found inside one is rolled back first. A process made by fork
    starts with none (a SQLite connection must not cross a fork), and the engine's dispose()
    closes them (a restored database file is then read anew)."""

    def __init__(self):
        self.idle: deque = deque()
        self.pid = os.getpid()

    def take(self, engine: Engine):
        if self.pid != os.getpid():
            # The parent's stay the parent's: never used here, and never closed here either
            # (closing is using; SQLite's "How To Corrupt" 2.6), so kept referenced.
            _INHERITED.extend(self.idle)
            self.idle, self.pid = deque(), os.getpid()
        try:
            return self.idle.pop()
        except IndexError:
            pooled = engine.raw_connection()
            pooled.detach()  # ours now: the pool neither counts it nor resets it
            # The DBAPI connection alone: the pool's wrapper would keep the engine alive.
            return pooled.dbapi_connection

    def close_all(self, _engine=None) -> None:
        idle, self.idle = self.idle, deque()
        for connection in idle:
            connection.close()

    def give_back(self, connection) -> None:
        if connection.in_transaction:
            connection.rollback()
        if len(self.idle) < KEPT_SQLITE_CONNECTIONS and self.pid == os.getpid():
            self.idle.append(connection)
        else:
            connection.close()


_ROW_TYPES: dict[tuple[str, ...], type] = {}


def _row_type(fields: tuple[str, ...]) -> type:
    row_type = _ROW_TYPES.get(fields)
    if row_type is None:
        base = namedtuple("PreparedRow", fields)  # noqa: PYI024 - plus _mapping below
        row_type = _ROW_TYPES[fields] = type(
            "PreparedRow", (base,), {"__slots__": (), "_mapping": property(base._asdict)}
        )
    return row_type


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


def get_or_404(model: type, row_id: object, session: Session | None = None) -> Any:
    """The ``model`` row with this id, or 404 (an id outside 1..MAX_ID never reaches SQL)."""
    row = (session or get_session()).get(model, row_id) if is_valid_id(row_id) else None
    if row is None:
        raise NotFound()
    return row


# Deeper pages than this are a typo or a crawler, not a person paging through links.
MAX_PAGE = 10_000


def page_number(text: str | None) -> int:
    """A ``?page=`` value as a page number in 1..MAX_PAGE (anything unreadable is page 1)."""
    try:
        return max(1, min(int(text or "1"), MAX_PAGE))
    except ValueError:
        return 1


@dataclass(frozen=True)
class Page:
    """One page of rows and what a pager needs to link to the others."""

    items: Sequence[Any]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def paginate(session: Session, stmt: Select, *, page: int = 1, per_page: int = 25) -> Page:
    """Run ``stmt`` (already ordered) for one page; ``total`` counts every row it selects."""
    page = max(1, page)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = session.scalars(stmt.limit(per_page).offset((page - 1) * per_page)).all()
    return Page(items=list(rows), page=page, per_page=per_page, total=int(total or 0))


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
