"""One id guard for every id in a URL or form: 1..2**31-1, PostgreSQL's INTEGER (issue 7 §4).

SQLite would just find nothing for a bigger id, but PostgreSQL refuses it with an error (a 500),
so the proof on SQLite is that such an id is a 404 and never reaches the database at all."""

import re

import pytest
from sqlalchemy import event

from payapp.db import MAX_ID

from .conftest import csrf_from

TOO_BIG = [2**31, 2**31 + 1, 2**32, 2**63 - 1, 2**63, 2**64, 10**30]


@pytest.fixture
def sql_parameters(app):
    """Every integer bound into any SQL statement while the test runs."""
    seen: list[int] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        rows = parameters if executemany else [parameters]
        for row in rows:
            values = row.values() if isinstance(row, dict) else row
            seen.extend(v for v in values if isinstance(v, int) and not isinstance(v, bool))

    engine = app.extensions["payapp.engine"]
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def id_routes(app):
    """(method, rule) of every route that takes an id in its URL."""
    return sorted(
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if any(arg.endswith("_id") for arg in rule.arguments)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    )


def test_ids_beyond_the_integer_range_are_404_on_every_route_and_never_reach_the_database(
    app, admin, link_factory, sql_parameters
):
    link_factory()
    routes = id_routes(app)
    assert len(routes) >= 12, routes  # the link pages and the user pages
    token = csrf_from(admin.get("/links/1").text)
    answers = {}
    for method, rule in routes:
        for number in TOO_BIG:
            path = re.sub(r"<id:\w+_id>", str(number), rule)
            assert "<" not in path, f"{rule}: an id route without the id converter"
            if method == "GET":
                response = admin.get(path)
            else:
                response = admin.post(path, data={"csrf_token": token})
            answers[f"{method} {path}"] = response.status_code
    assert set(answers.values()) == {404}, {k: v for k, v in answers.items() if v != 404}
    assert max(sql_parameters) <= MAX_ID


def test_the_largest_valid_id_is_a_plain_404_when_nothing_has_it(admin):
    assert admin.get(f"/links/{MAX_ID}").status_code == 404
    assert admin.get(f"/users/{MAX_ID}").status_code == 404
    assert admin.get("/links/0").status_code == 404


def test_a_refund_for_a_payment_id_beyond_the_integer_range_is_404(
    app, admin, client, link_factory, sql_parameters
):
    from .conftest import submit_card

    link = link_factory()
    submit_card(client, link.path)
    token = csrf_from(admin.get(f"/links/{link.id}").text)
    for number in TOO_BIG:
        response = admin.post(
            f"/links/{link.id}/refund",
            data={"csrf_token": token, "payment_id": str(number), "amount": "1", "reason": "x"},
        )
        assert response.status_code == 404, number
    assert max(sql_parameters) <= MAX_ID


# --- db.PreparedRead (issue 10, fourth round) -----------------------------------------------------


def test_a_prepared_read_gives_exactly_the_row_sqlalchemy_gives(app, link_factory):
    from datetime import UTC, datetime

    from payapp.db import get_session
    from payapp.links import LINK_ROW_BY_PUBLIC_ID
    from payapp.models import PaymentLink

    made = link_factory(phone="+14155550123")
    engine = app.extensions["payapp.engine"]
    with app.app_context():
        link = get_session().get(PaymentLink, made.id)
        # Set columns of every type, and leave others NULL, so each result processor is used.
        link.first_viewed_at = datetime(2026, 11, 3, 7, 8, 9, 123456, tzinfo=UTC)
        link.decline_count, link.description = 2, "Crown, upper left – ñ"
        get_session().commit()
    row = LINK_ROW_BY_PUBLIC_ID.first(engine, public_id=made.public_id)
    with engine.connect() as connection:
        stock = connection.execute(
            LINK_ROW_BY_PUBLIC_ID.statement, {"public_id": made.public_id}
        ).first()
    assert tuple(row) == tuple(stock)
    assert row._mapping == dict(stock._mapping)
    assert [type(v) for v in row] == [type(v) for v in stock]
    assert row.first_viewed_at.tzinfo is not None and row.paid_at is None
    assert LINK_ROW_BY_PUBLIC_ID.first(engine, public_id="no-such-link") is None


def test_a_prepared_read_sees_every_change_and_returns_its_connection(app, link_factory):
    from payapp.db import get_session
    from payapp.links import LINK_ROW_BY_PUBLIC_ID
    from payapp.models import PaymentLink

    made = link_factory()
    engine = app.extensions["payapp.engine"]
    before = engine.pool.checkedout()
    assert LINK_ROW_BY_PUBLIC_ID.first(engine, public_id=made.public_id).status == "open"
    with app.app_context():
        get_session().get(PaymentLink, made.id).status = "cancelled"
        get_session().commit()
    assert LINK_ROW_BY_PUBLIC_ID.first(engine, public_id=made.public_id).status == "cancelled"
    with pytest.raises(KeyError):
        LINK_ROW_BY_PUBLIC_ID.first(engine)  # a missing parameter: nothing is run
    assert engine.pool.checkedout() == before


def test_a_prepared_read_runs_every_time_and_converts_only_values_it_has_not_seen(
    app, link_factory
):
    from datetime import UTC, datetime

    from payapp.db import get_session
    from payapp.links import LINK_ROW_BY_PUBLIC_ID
    from payapp.models import PaymentLink

    made = link_factory()
    engine = app.extensions["payapp.engine"]
    seen = []
    event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    first = LINK_ROW_BY_PUBLIC_ID.first(engine, public_id=made.public_id)
    assert LINK_ROW_BY_PUBLIC_ID.first(engine, public_id=made.public_id) is first  # converted once
    with app.app_context():
        get_session().get(PaymentLink, made.id).first_viewed_at = datetime(2026, 1, 2, tzinfo=UTC)
        get_session().commit()
    changed = LINK_ROW_BY_PUBLIC_ID.first(engine, public_id=made.public_id)
    assert changed.first_viewed_at == datetime(2026, 1, 2, tzinfo=UTC)
    assert first.first_viewed_at is None
    assert len([sql for sql in seen if "WHERE payment_link.public_id" in sql]) == 3  # every time


def test_equal_raw_values_of_other_types_are_converted_each_their_own_way(tmp_path):
    # SQLite's columns can hold an int in one row and a float in the next (PostgreSQL's cannot).
    from sqlalchemy import Numeric, column, text

    from payapp.db import PreparedRead, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'types.db'}")
    read = PreparedRead(
        text("SELECT :v AS v, :v AS d").columns(column("v"), column("d", Numeric(scale=2)))
    )
    with engine.connect() as connection:
        for value in (1, 1.0, True, 1, 1.5):
            ours = read.first(engine, v=value)
            stock = connection.execute(read.statement, {"v": value}).first()
            assert [(repr(v), type(v)) for v in ours] == [(repr(v), type(v)) for v in stock]
    engine.dispose()


def test_sql_listeners_still_see_a_prepared_read(app, link_factory):
    from payapp.links import LINK_ROW_BY_PUBLIC_ID

    seen = []
    public_id = link_factory().public_id
    engine = app.extensions["payapp.engine"]
    listener = lambda *args: seen.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
    event.listen(engine, "before_cursor_execute", listener)
    try:
        LINK_ROW_BY_PUBLIC_ID.first(engine, public_id=public_id)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert len(seen) == 1 and "FROM payment_link" in seen[0]


def test_a_prepared_read_keeps_no_engine_alive(tmp_path):
    import gc
    import weakref

    from sqlalchemy import text

    from payapp.db import PreparedRead, make_engine

    read = PreparedRead(text("SELECT 1"))
    engine = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    assert read.first(engine) == (1,)
    gone = weakref.ref(engine)
    engine.dispose()
    del engine
    gc.collect()
    assert gone() is None


# --- db.KeptConnections: a PreparedRead's own SQLite connections (issue 10, sixth round) -------


@pytest.fixture
def sqlite_read(tmp_path):
    """A PreparedRead on a SQLite file of its own (whichever database the suite runs on), with
    its engine and the connections it keeps."""
    from sqlalchemy import column, text

    from payapp.db import PreparedRead, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'kept.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
        connection.execute(text("INSERT INTO t (id, v) VALUES (1, 'one')"))
    read = PreparedRead(text("SELECT v FROM t WHERE id = :id").columns(column("v")))
    assert read.first(engine, id=1) == ("one",)
    yield read, engine, read._prepare(engine)[-1]
    engine.dispose()


def test_a_sqlite_read_reuses_its_connection_outside_the_pool_and_sees_each_commit(sqlite_read):
    from sqlalchemy import text

    read, engine, kept = sqlite_read
    (connection,) = kept.idle
    checked_out = engine.pool.checkedout()
    for value in ("two", "three"):
        with engine.begin() as writer:
            writer.execute(text("UPDATE t SET v = :v WHERE id = 1"), {"v": value})
        assert read.first(engine, id=1) == (value,)
        assert list(kept.idle) == [connection]  # the same one, given back
    assert engine.pool.checkedout() == checked_out
    # Made by the pool, so with the pragmas every connection gets.
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert connection.execute("PRAGMA busy_timeout").fetchone() == (30000,)
    assert connection.execute("PRAGMA foreign_keys").fetchone() == (1,)


def test_a_kept_connection_holds_no_transaction_so_a_checkpoint_empties_the_wal(sqlite_read):
    from sqlalchemy import text

    read, engine, kept = sqlite_read
    for i in range(2, 50):
        with engine.begin() as writer:
            writer.execute(text("INSERT INTO t (id, v) VALUES (:i, 'x')"), {"i": i})
        assert read.first(engine, id=i) == ("x",)
    assert not any(connection.in_transaction for connection in kept.idle)
    with engine.connect() as connection:
        busy, _log, _done = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
    assert busy == 0  # a reader holding a snapshot would make the checkpoint busy


def test_a_connection_given_back_inside_a_transaction_is_rolled_back(sqlite_read):
    read, engine, kept = sqlite_read
    connection = kept.take(engine)
    connection.execute("BEGIN")
    connection.execute("UPDATE t SET v = 'uncommitted' WHERE id = 1")
    assert connection.in_transaction
    kept.give_back(connection)
    assert not connection.in_transaction
    assert read.first(engine, id=1) == ("one",)


def test_a_failed_read_closes_its_connection_and_keeps_none(sqlite_read):
    import sqlite3

    from sqlalchemy import column, text

    from payapp.db import PreparedRead

    _read, engine, _kept = sqlite_read
    broken = PreparedRead(text("SELECT v FROM no_such_table WHERE id = :id").columns(column("v")))
    with pytest.raises(sqlite3.OperationalError):
        broken.first(engine, id=1)
    assert list(broken._prepare(engine)[-1].idle) == []


def test_after_a_fork_the_parents_connections_are_never_used(sqlite_read, monkeypatch):
    import os

    from payapp.db import _INHERITED

    read, engine, kept = sqlite_read
    (parents,) = kept.idle
    child = kept.pid + 1
    monkeypatch.setattr(os, "getpid", lambda: child)  # as in a child process
    assert read.first(engine, id=1) == ("one",)
    assert parents not in kept.idle and len(kept.idle) == 1
    assert parents in _INHERITED  # never closed in the child either
    assert parents.execute("SELECT 1").fetchone() == (1,)  # (the parent's, still open)


def test_threads_reading_at_once_each_get_a_connection_and_at_most_16_are_kept(sqlite_read):
    from concurrent.futures import ThreadPoolExecutor

    from payapp.db import KEPT_SQLITE_CONNECTIONS

    read, engine, kept = sqlite_read
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda _i: read.first(engine, id=1), range(3000)))
    assert results == [("one",)] * 3000
    assert 1 <= len(kept.idle) <= KEPT_SQLITE_CONNECTIONS
    assert len({id(c) for c in kept.idle}) == len(kept.idle)  # never one connection twice


def test_a_postgresql_read_still_uses_the_engines_pool(tmp_path):
    from sqlalchemy import create_engine, text

    from payapp.db import PreparedRead

    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert PreparedRead(text("SELECT 1"))._prepare(engine)[-1] is None  # no kept connections
    engine.dispose()


def test_disposing_of_the_engine_closes_the_kept_connections(sqlite_read):
    import sqlite3

    read, engine, kept = sqlite_read
    (connection,) = kept.idle
    engine.dispose()
    assert list(kept.idle) == []
    with pytest.raises(sqlite3.ProgrammingError):  # closed
        connection.execute("SELECT 1")
    assert read.first(engine, id=1) == ("one",)  # a new one
