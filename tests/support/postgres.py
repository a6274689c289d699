"""A throwaway PostgreSQL server for the tests: Debian's PostgreSQL 15 in a private data
directory, listening on 127.0.0.1 and a free port only (no Unix socket), trusting local
connections, durability off (fsync, synchronous_commit) because the data dies with the run.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user (which
Debian's ``postgresql`` package creates) and the data directory is handed to it.

    python -m tests.support.postgres start     # prints PAYAPP_TEST_DATABASE_URL=... and DIR=...
    python -m tests.support.postgres stop DIR  # stops it and deletes DIR

``scripts/postgres-test-server`` wraps these; ``scripts/test`` uses it for the PostgreSQL leg.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tests.support.servers import ServerError, free_port

PG_BIN = Path(os.environ.get("PAYAPP_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "payapp"
START_TIMEOUT_S = 60
# Fast and disposable: nothing here has to survive a crash of the machine.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "64MB",
}


def _as_server_user() -> list[str]:
    """The argv prefix that runs a PostgreSQL binary as a user it accepts."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServerError(
            "running as root, PostgreSQL needs the 'postgres' user: apt-get install postgresql"
        ) from None
    return ["runuser", "-u", "postgres", "--"]


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [*_as_server_user(), *argv], capture_output=True, text=True, check=False, **kwargs
    )
    if result.returncode != 0:
        raise ServerError(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@dataclass(frozen=True)
class PostgresServer:
    """A running test server: its folder (data and log) and port."""

    folder: Path
    port: int

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` on this server (psycopg 3)."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended) and delete its folder."""
        if (self.data / "postmaster.pid").exists():
            _run([str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"])
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres(folder: Path | None = None) -> PostgresServer:
    """initdb a new cluster in ``folder`` (a new temporary one by default) and start it on a
    free port; returns once it accepts connections."""
    if not (PG_BIN / "initdb").exists():
        raise ServerError(f"no PostgreSQL in {PG_BIN}: apt-get install postgresql")
    folder = Path(folder or tempfile.mkdtemp(prefix="payapp-pg-"))
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(folder, free_port())
    _run(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(server.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ]
    )
    options = " ".join(f"-c {key}={value!r}" for key, value in SERVER_SETTINGS.items())
    options += f" -c port={server.port}"
    _run(
        [
            str(PG_BIN / "pg_ctl"),
            "start",
            "-D",
            str(server.data),
            "-l",
            str(folder / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            str(START_TIMEOUT_S),
        ]
    )
    _wait_until_ready(server)
    return server


def _wait_until_ready(server: PostgresServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(server.port)],
            capture_output=True,
            check=False,
        )
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            log = (server.folder / "server.log").read_text(errors="replace")[-4000:]
            raise ServerError(f"PostgreSQL did not accept connections:\n{log}")
        time.sleep(0.1)  # polling for readiness, not timing a behaviour


# --- databases for the tests ---------------------------------------------------------------------

# Set by scripts/test for the PostgreSQL leg: the URL of the server's maintenance database.
TEST_DATABASE_URL_ENV = "PAYAPP_TEST_DATABASE_URL"


def test_server_url() -> str | None:
    """The PostgreSQL server the suite runs against, or None for SQLite (the default)."""
    url = os.environ.get(TEST_DATABASE_URL_ENV, "")
    return url if url.startswith("postgresql") else None


def create_database(server_url: str, *, template: str | None = None, prefix: str = "t") -> str:
    """A new database on the server of ``server_url`` (a copy of ``template`` if given);
    returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    clause = f" TEMPLATE {template}" if template else ""
    _maintenance(server_url, f"CREATE DATABASE {name}{clause}")
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Drop the database of ``url``, ending any session still connected to it."""
    name = make_url(url).database
    _maintenance(url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _maintenance(url: str, statement: str) -> None:
    admin = make_url(url).set(database="postgres")
    engine = create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def empty_database_url(sqlite_file: Path) -> str:
    """Where a test's payapp process keeps its data: a new empty PostgreSQL database on the
    PostgreSQL leg (dropped with the server at the end of the run), else ``sqlite_file``."""
    server_url = test_server_url()
    if server_url is None:
        return f"sqlite:///{sqlite_file}"  # an absolute path: 4 slashes
    return create_database(server_url, prefix="srv")


def main(argv: list[str]) -> int:
    if argv[:1] == ["start"]:
        server = start_postgres(Path(argv[1]) if len(argv) > 1 else None)
        print(f"PAYAPP_TEST_DATABASE_URL={server.url()}")
        print(f"DIR={server.folder}")
        print(f"PORT={server.port}")
        return 0
    if argv[:1] == ["stop"] and len(argv) == 2:
        folder = Path(argv[1])
        PostgresServer(folder, 0).stop()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
