"""The SQLite rate-limit store (payapp/ratelimit_store.py): the counters flask-limiter keeps
for every gunicorn process on one machine."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest
import time_machine
from limits import parse
from limits.errors import ConfigurationError
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from payapp.ratelimit_store import SQLiteStorage, path_of, sqlite_uri

# Files of their own, never the database under test: the same on the PostgreSQL leg.
pytestmark = pytest.mark.sqlite_only

PROCESSES, THREADS, HITS = 3, 4, 50
PLACES = 100  # of the moving window's 3 x 4 x 50 attempts


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStorage:
    return storage_from_string(sqlite_uri(str(tmp_path / "ratelimits.db")))


def test_the_sqlite_scheme_is_registered_with_limits(tmp_path: Path) -> None:
    store = storage_from_string(f"sqlite:///{tmp_path}/limits.db")
    assert isinstance(store, SQLiteStorage)
    assert store.path == f"{tmp_path}/limits.db"


@pytest.mark.parametrize("uri", ["sqlite://", "sqlite:///", "sqlite:///:memory:", "memory://x"])
def test_a_store_without_a_file_is_refused(uri: str) -> None:
    # A private in-memory database would count in each process alone: say so instead.
    with pytest.raises(ConfigurationError):
        path_of(uri)


def test_hits_add_up_within_the_window_and_restart_after_it(store: SQLiteStorage) -> None:
    with time_machine.travel(1_800_000_000, tick=False) as clock:
        assert store.incr("k", 60) == 1
        assert store.incr("k", 60, amount=2) == 3
        assert store.get("k") == 3
        assert store.get_expiry("k") == 1_800_000_060
        clock.shift(59)
        assert store.incr("k", 60) == 4  # the window is the first hit's, not the last's
        clock.shift(1)
        assert store.get("k") == 0
        assert store.incr("k", 60) == 1  # a new window
        assert store.get_expiry("k") == 1_800_000_120


def test_keys_count_apart_and_clear_and_reset_forget_them(store: SQLiteStorage) -> None:
    store.incr("a", 60)
    store.incr("b", 60)
    store.incr("b", 60)
    assert (store.get("a"), store.get("b"), store.get("never")) == (1, 2, 0)
    store.clear("a")
    assert (store.get("a"), store.get("b")) == (0, 2)
    assert store.reset() == 1
    assert store.get("b") == 0


def test_expired_counters_are_deleted_as_hits_go_on(
    store: SQLiteStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("payapp.ratelimit_store.PURGE_EVERY", 3)
    with time_machine.travel(1_800_000_000, tick=False) as clock:
        store.incr("old-1", 10)
        store.incr("old-2", 10)
        clock.shift(11)
        store.incr("new", 10)  # the third hit on this connection purges
    rows = sqlite3.connect(store.path).execute("SELECT key FROM ratelimit_counter").fetchall()
    assert rows == [("new",)]


def test_a_fixed_window_limiter_on_it_refuses_the_hit_past_the_limit(store) -> None:
    limiter = FixedWindowRateLimiter(store)
    item = parse("3 per minute")
    assert [limiter.hit(item, "203.0.113.7") for _ in range(4)] == [True, True, True, False]
    assert limiter.hit(item, "198.51.100.2")  # another address has its own count


def test_a_moving_window_frees_each_place_a_window_after_its_hit(store: SQLiteStorage) -> None:
    limiter, item = MovingWindowRateLimiter(store), parse("3 per minute")
    with time_machine.travel(1_800_000_000, tick=False) as clock:
        for _ in range(3):
            assert limiter.hit(item, "203.0.113.7")
            clock.shift(19)
        assert not limiter.hit(item, "203.0.113.7")  # 57 s after the first: still in the window
        assert limiter.get_window_stats(item, "203.0.113.7").reset_time == 1_800_000_060
        clock.shift(3.5)  # the first hit has left the window
        assert limiter.hit(item, "203.0.113.7")
        assert not limiter.hit(item, "203.0.113.7")
        assert limiter.hit(item, "198.51.100.2")  # another address has its own window
        assert not limiter.hit(item, "192.0.2.9", cost=4)  # more than the limit at once
        assert limiter.hit(item, "192.0.2.9", cost=3)
        assert not limiter.test(item, "192.0.2.9")


def test_clear_and_reset_forget_moving_windows_too(store: SQLiteStorage) -> None:
    limiter, item = MovingWindowRateLimiter(store), parse("1 per hour")
    assert limiter.hit(item, "a") and limiter.hit(item, "b")
    store.clear(item.key_for("a"))
    assert limiter.hit(item, "a") and not limiter.hit(item, "b")
    store.reset()
    assert limiter.hit(item, "b")


def _from_threads(uri: str, results, operation: str) -> None:
    """In a spawned process: THREADS threads each do ``operation`` HITS times on one shared
    key of the store at ``uri``; every outcome goes to ``results``."""
    store = storage_from_string(uri)
    act = {
        "hit": lambda: store.incr("shared", 3600),
        "take a place": lambda: store.acquire_entry("shared", PLACES, 3600),
    }[operation]
    outcomes: list = []

    def run() -> None:
        for _ in range(HITS):
            outcomes.append(act())

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put(outcomes)


def test_processes_and_threads_racing_for_a_moving_windows_last_places_get_exactly_them(
    tmp_path,
) -> None:
    uri = sqlite_uri(str(tmp_path / "ratelimits.db"))
    storage_from_string(uri).acquire_entry("warm", 1, 1)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    procs = [
        context.Process(target=_from_threads, args=(uri, results, "take a place"))
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    taken = [t for _ in procs for t in results.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    # 600 attempts at 100 places: a check-then-insert in two statements would give out more.
    assert taken.count(True) == PLACES
    assert storage_from_string(uri).get_moving_window("shared", PLACES, 3600)[1] == PLACES


def test_processes_and_threads_hitting_one_counter_at_once_never_lose_a_hit(tmp_path) -> None:
    uri = sqlite_uri(str(tmp_path / "ratelimits.db"))
    storage_from_string(uri).incr("warm", 1)  # the file and table exist before the race
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    procs = [
        context.Process(target=_from_threads, args=(uri, results, "hit")) for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    counts = sorted(c for _ in procs for c in results.get(timeout=120))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    total = PROCESSES * THREADS * HITS
    # Every hit saw its own count: none was lost or counted twice (a read-then-write would).
    assert counts == list(range(1, total + 1))
    assert storage_from_string(uri).get("shared") == total


def test_a_forked_child_opens_its_own_connection(store: SQLiteStorage) -> None:
    store.incr("k", 3600)  # the parent's connection is open
    parent = store._local.conn
    context = multiprocessing.get_context("fork")
    results = context.Queue()

    def child() -> None:
        results.put((store.incr("k", 3600), store._local.conn is parent))

    process = context.Process(target=child)
    process.start()
    process.join(timeout=60)
    assert results.get(timeout=10) == (2, False)
    assert store.get("k") == 2


def test_an_unusable_file_fails_its_check(tmp_path: Path) -> None:
    store = storage_from_string(sqlite_uri(str(tmp_path)))  # a directory, not a database
    assert store.check() is False
    with pytest.raises(sqlite3.Error):
        store.incr("k", 60)


def test_the_app_counts_in_the_instance_folder_by_default(app) -> None:
    assert app.config["RATELIMIT_STORAGE_URI"] == sqlite_uri(
        str(Path(app.instance_path) / "ratelimits.db")
    )


@pytest.mark.parametrize(
    ("strategy", "storage", "starts"),
    [
        ("fixed-window", None, True),
        ("moving-window", None, True),
        ("sliding-window-counter", None, False),
        ("sliding-window-counter", "memory://", True),
    ],
)
def test_a_strategy_the_default_store_cannot_serve_is_refused_at_start(
    tmp_path: Path, strategy: str, storage: str | None, starts: bool
) -> None:
    # The settings as create_app loads and checks them, without making an app: the limiter is
    # one object per process and keeps the first app's strategy.
    import flask

    from payapp.config import ConfigError, load_config

    settings = {"DATABASE_URL": f"sqlite:///{tmp_path}/payapp.db", "RATELIMIT_STRATEGY": strategy}
    if storage:
        settings["RATELIMIT_STORAGE_URI"] = storage
    app = flask.Flask("check", instance_path=str(tmp_path), instance_relative_config=True)
    if starts:
        load_config(app, settings)
    else:
        with pytest.raises(ConfigError, match="needs Redis"):
            load_config(app, settings)
