"""Rate-limit counters in a SQLite file, shared by every gunicorn process on one machine.

flask-limiter keeps its counters in a `limits` storage. ``memory://`` is per process, so with
two gunicorn processes each would let its own full budget through; Redis shares them but is one
more service for a clinic's single VM. This storage registers the ``sqlite://`` scheme with
`limits` (``sqlite:////abs/path/ratelimits.db``, the default in the instance folder) and keeps
one row per counter. A hit is one SQL statement (an UPSERT that restarts an expired window and
returns the new count), so processes and threads counting at once never lose a hit. Counters
are not money and a lost window only forgets recent hits, so the file runs in WAL mode with
``synchronous=NORMAL`` (no fsync per hit). It serves flask-limiter's fixed-window strategy
(the default) and moving-window (one row per hit, taken by one conditional INSERT); the
sliding-window-counter strategy needs Redis (config.check_config says so).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time

from limits.errors import ConfigurationError
from limits.storage import MovingWindowSupport, Storage

SCHEME = "sqlite"
BUSY_TIMEOUT_S = 5.0  # another process's hit holds the write lock for microseconds
PURGE_EVERY = 1000  # hits per connection between deletions of expired counters

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS ratelimit_counter (
        key TEXT PRIMARY KEY,
        hits INTEGER NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
    # moving-window: one row per hit.
    """CREATE TABLE IF NOT EXISTS ratelimit_entry (
        key TEXT NOT NULL,
        at REAL NOT NULL,
        expires_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS ratelimit_entry_key_at ON ratelimit_entry (key, at)",
)
# One statement: a new key starts at `amount`; an expired one restarts its window; a live one
# adds `amount`. In an UPSERT's SET, every column name reads the row as it was before.
INCR = """
INSERT INTO ratelimit_counter (key, hits, expires_at) VALUES (:key, :amount, :now + :expiry)
ON CONFLICT (key) DO UPDATE SET
    hits = CASE WHEN expires_at <= :now THEN excluded.hits ELSE hits + excluded.hits END,
    expires_at = CASE WHEN expires_at <= :now THEN excluded.expires_at ELSE expires_at END
RETURNING hits
"""
# One statement: `amount` entries at `now`, only if the window (the last `expiry` seconds) has
# room for them. SQLite runs the whole statement under its write lock, so two processes taking
# the last place at once cannot both get it.
# (INSERT first: Python's sqlite3 counts the rows of a statement that starts with INSERT.)
ACQUIRE = """
INSERT INTO ratelimit_entry (key, at, expires_at)
WITH RECURSIVE entries(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM entries WHERE n < :amount)
SELECT :key, :now, :now + :expiry FROM entries
WHERE (SELECT count(*) FROM ratelimit_entry WHERE key = :key AND at >= :now - :expiry)
      + :amount <= :limit
"""


def sqlite_uri(path: str) -> str:
    """The storage URI of a counter file at `path` (made absolute)."""
    return f"{SCHEME}:///{os.path.abspath(path)}"


def path_of(uri: str) -> str:
    """``sqlite:///relative.db`` or ``sqlite:////absolute.db``, as SQLAlchemy spells them."""
    prefix = f"{SCHEME}:///"
    path = uri[len(prefix) :] if uri.startswith(prefix) else ""
    if not path or path == ":memory:":
        raise ConfigurationError(f"a {SCHEME}:// rate-limit store needs a file: {uri!r}")
    return path


class SQLiteStorage(Storage, MovingWindowSupport):
    """A `limits` storage (fixed and moving window) in one SQLite file."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options) -> None:
        self.path = path_of(uri)
        self._local = threading.local()
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception]:
        return sqlite3.Error

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the table made) on first use; a new one after
        a fork, since a SQLite connection must not cross into a child process."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            for statement in SCHEMA:
                conn.execute(statement)
            local.conn, local.pid, local.hits = conn, os.getpid(), 0
        return local.conn

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        conn = self._connection()
        now = time.time()
        (hits,) = conn.execute(
            INCR, {"key": key, "amount": amount, "now": now, "expiry": expiry}
        ).fetchone()
        self._purge_now_and_then(conn, now)
        return hits

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        conn = self._connection()
        now = time.time()
        params = {"key": key, "limit": limit, "expiry": expiry, "amount": amount, "now": now}
        taken = conn.execute(ACQUIRE, params).rowcount
        self._purge_now_and_then(conn, now)
        return taken == amount

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(the oldest hit in the window, the hits in it); (now, 0) for an empty window."""
        now = time.time()
        oldest, count = (
            self._connection()
            .execute(
                "SELECT min(at), count(*) FROM ratelimit_entry WHERE key = ? AND at > ?",
                (key, now - expiry),
            )
            .fetchone()
        )
        return (oldest, count) if count else (now, 0)

    def _purge_now_and_then(self, conn: sqlite3.Connection, now: float) -> None:
        self._local.hits += 1
        if self._local.hits % PURGE_EVERY == 0:
            conn.execute("DELETE FROM ratelimit_counter WHERE expires_at <= ?", (now,))
            conn.execute("DELETE FROM ratelimit_entry WHERE expires_at <= ?", (now,))

    def get(self, key: str) -> int:
        row = (
            self._connection()
            .execute(
                "SELECT hits FROM ratelimit_counter WHERE key = ? AND expires_at > ?",
                (key, time.time()),
            )
            .fetchone()
        )
        return row[0] if row else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        row = (
            self._connection()
            .execute(
                "SELECT expires_at FROM ratelimit_counter WHERE key = ? AND expires_at > ?",
                (key, now),
            )
            .fetchone()
        )
        return row[0] if row else now

    def check(self) -> bool:
        try:
            self._connection().execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        conn = self._connection()
        counters = conn.execute("DELETE FROM ratelimit_counter").rowcount
        return counters + conn.execute("DELETE FROM ratelimit_entry").rowcount

    def clear(self, key: str) -> None:
        conn = self._connection()
        conn.execute("DELETE FROM ratelimit_counter WHERE key = ?", (key,))
        conn.execute("DELETE FROM ratelimit_entry WHERE key = ?", (key,))
