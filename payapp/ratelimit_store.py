"""Rate-limit counters in a SQLite file, shared by every gunicorn process on one machine.

flask-limiter keeps its counters in a `limits` storage. ``memory://`` is per process, so with
two gunicorn processes each would let its own full budget through; Redis shares them but is one
more service for a clinic's single VM. This storage registers the ``sqlite://`` scheme with
`limits` (``sqlite:////abs/path/ratelimits.db``, the default in the instance folder) and keeps
one row per counter. A hit is one SQL statement (an UPSERT that restarts an expired window and
returns the new count), so processes and threads counting at once never lose a hit. Counters
are not money and a lost window only forgets recent hits, so the file runs in WAL mode with
``synchronous=NORMAL`` (no fsync per hit). Only the fixed-window strategy (flask-limiter's
default, the one payapp uses) is supported.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time

from limits.errors import ConfigurationError
from limits.storage import Storage

SCHEME = "sqlite"
BUSY_TIMEOUT_S = 5.0  # another process's hit holds the write lock for microseconds
PURGE_EVERY = 1000  # hits per connection between deletions of expired counters

SCHEMA = """
CREATE TABLE IF NOT EXISTS ratelimit_counter (
    key TEXT PRIMARY KEY,
    hits INTEGER NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID
"""
# One statement: a new key starts at `amount`; an expired one restarts its window; a live one
# adds `amount`. In an UPSERT's SET, every column name reads the row as it was before.
INCR = """
INSERT INTO ratelimit_counter (key, hits, expires_at) VALUES (:key, :amount, :now + :expiry)
ON CONFLICT (key) DO UPDATE SET
    hits = CASE WHEN expires_at <= :now THEN excluded.hits ELSE hits + excluded.hits END,
    expires_at = CASE WHEN expires_at <= :now THEN excluded.expires_at ELSE expires_at END
RETURNING hits
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


class SQLiteStorage(Storage):
    """A `limits` storage (fixed window) in one SQLite file."""

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
            conn.execute(SCHEMA)
            local.conn, local.pid, local.hits = conn, os.getpid(), 0
        return local.conn

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        conn = self._connection()
        now = time.time()
        (hits,) = conn.execute(
            INCR, {"key": key, "amount": amount, "now": now, "expiry": expiry}
        ).fetchone()
        self._local.hits += 1
        if self._local.hits % PURGE_EVERY == 0:
            conn.execute("DELETE FROM ratelimit_counter WHERE expires_at <= ?", (now,))
        return hits

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
        return self._connection().execute("DELETE FROM ratelimit_counter").rowcount

    def clear(self, key: str) -> None:
        self._connection().execute("DELETE FROM ratelimit_counter WHERE key = ?", (key,))
