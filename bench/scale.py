"""The staff pages at scale (issue 10, docs/developer.md "Benchmarks and screenshots"): seeds N
links (default 1,000,000) with their payments, refunds, messages and audit events into a
temporary SQLite file (or --db, reused when already seeded), then times each staff page through
the Flask test client (median of --runs) against GET /healthz measured in the same run. Then the
same on a throwaway PostgreSQL 15 cluster (initdb into a temp dir, 127.0.0.1 on a free port,
stopped at the end) unless --no-postgres.

    PYTHONPATH=. .venv/bin/python bench/scale.py [--links 1000000] [--db /tmp/scale.db]
                                                 [--runs 9] [--no-postgres] [--no-sqlite]
                                                 [--pg-dir /tmp/scale-pg]
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click
from sqlalchemy import text

from payapp import create_app
from payapp.cli import DEMO_FRONT_DESK, DEMO_PASSWORD, seed_demo
from payapp.db import get_session, upgrade_schema
from payapp.states import LinkStatus
from tests.conftest import log_in

GOAL_MS = 150.0
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def median_ms(client, url: str, runs: int, expect: str | None = None) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    if expect is not None:
        assert expect in response.text, (url, expect)
    return statistics.median(timings)


def make_app(url: str, folder: Path):
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "bench-" + "x" * 40,
            "DATABASE_URL": url,
            "OUTBOX_DIR": str(folder / "outbox"),
            "PUBLIC_BASE_URL": "http://localhost",
            "RATELIMIT_ENABLED": False,
        }
    )


def seed(app, n: int) -> int:
    with app.app_context():
        upgrade_schema(app.extensions["payapp.engine"])
        app.test_cli_runner().invoke(args=["demo-setup"])
        session = get_session()
        has = session.execute(text("SELECT count(*) FROM payment_link")).scalar()
        if has:
            return has
        start = time.perf_counter()
        with click.progressbar(length=n, label="Seeding") as bar:
            seed_demo(session, n, datetime.now(UTC), progress=bar.update)
        session.execute(text("ANALYZE"))
        session.commit()
        print(f"seeded {n:,} links in {time.perf_counter() - start:.0f} s")
        return n


def sample(app) -> dict[str, str]:
    """Search words and a deep-page cursor from the data itself, so every search finds rows."""
    with app.app_context():
        s = get_session()
        mid = s.execute(text("SELECT max(id) / 2 FROM payment_link")).scalar()
        name, ref = s.execute(
            text("SELECT patient_name, reference FROM payment_link WHERE id = :i"), {"i": mid}
        ).one()
        newest_first = "SELECT id FROM payment_link ORDER BY created_at DESC, id DESC"
        deep = s.execute(text(newest_first + " LIMIT 1 OFFSET 49975")).scalar()  # page 2000's
        paid = "SELECT id FROM payment_link WHERE status = 'paid' LIMIT 1"
        any_link = s.execute(text(paid)).scalar()
    return {"name": name, "ref": ref, "deep": str(deep), "link": str(any_link)}


def pages(words: dict[str, str]) -> list[tuple[str, str, str | None]]:
    """(label, URL, text the answer must contain)."""
    first, _, last = words["name"].partition(" ")
    rows = [("list, newest first", "/links", "Payment links")]
    for status in LinkStatus:
        rows.append((f"status={status}", f"/links?status={status}", None))
    rows += [
        ("name: common surname", "/links?q=Smith", "Smith"),
        ("name: full name", f"/links?q={first}+{last}", last),
        ("name: prefix", "/links?q=Rodr", "Rodriguez"),
        ("statement: exact", f"/links?q={words['ref']}", words["ref"]),
        ("statement: prefix", f"/links?q={words['ref'][:7]}", words["ref"][:7]),
        ("deep: ?page=2000 (OFFSET; ignored since 0013)", "/links?page=2000", None),
        ("deep: ?after=cursor (keyset)", f"/links?after={words['deep']}", None),
        ("link detail", f"/links/{words['link']}", None),
        ("dashboard?period=90", "/dashboard?period=90", None),
    ]
    return rows


def measure(app, label: str, n: int, runs: int) -> None:
    words = sample(app)
    client = app.test_client()
    assert log_in(client, email=DEMO_FRONT_DESK, password=DEMO_PASSWORD).status_code == 303
    rows = pages(words)
    for _, url, _ in rows:  # warm caches and templates
        client.get(url)
    health = median_ms(client, "/healthz", runs)
    print(f"\n{label}: {n:,} links, median of {runs}, goal <= {GOAL_MS:.0f} ms")
    print(f"  {'/healthz (baseline)':46} {health:8.1f} ms")
    for name, url, expect in rows:
        ms = median_ms(client, url, runs, expect)
        mark = "ok " if ms <= GOAL_MS else "SLOW"
        print(f"  {name:46} {ms:8.1f} ms  {ms / health:6.1f}x /healthz  {mark}  {url}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_cluster(keep: Path | None = None):
    """A throwaway PostgreSQL 15 on 127.0.0.1 (initdb as the postgres user), stopped at the end
    and removed, unless ``keep`` names a folder to make it in (or start it again from)."""
    folder = keep or Path(tempfile.mkdtemp(prefix="payapp-pg-"))
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data"
    port = free_port()
    as_postgres = []
    if os.geteuid() == 0:  # initdb refuses root
        pw = pwd.getpwnam("postgres")
        os.chown(folder, pw.pw_uid, pw.pw_gid)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    run = lambda *cmd: subprocess.run([*as_postgres, *cmd], check=True, capture_output=True)  # noqa: E731
    fresh = not data.exists()
    if fresh:
        run(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c shared_buffers=256MB"
    pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-w"]
    run(*pg_ctl, "-o", options, "-l", str(folder / "log"), "start")
    try:
        if fresh:
            createdb = [str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port)]
            run(*createdb, "-U", "postgres", "pay")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/pay"
    finally:
        run(*pg_ctl, "-m", "fast", "stop")
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=1_000_000)
    parser.add_argument("--db", help="an SQLite file (seeded first if it has no links)")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--pg-dir", type=Path, help="keep the PostgreSQL cluster here, reuse it")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="payapp-scale-"))
    if not args.no_sqlite:
        db_file = Path(args.db) if args.db else folder / "scale.db"
        app = make_app(f"sqlite:///{db_file}", folder)
        n = seed(app, args.links)
        measure(app, f"SQLite ({db_file})", n, args.runs)
        app.extensions["payapp.engine"].dispose()
    if not args.no_postgres:
        with postgres_cluster(args.pg_dir) as url:
            app = make_app(url, folder)
            n = seed(app, args.links)
            measure(app, "PostgreSQL 15", n, args.runs)
            app.extensions["payapp.engine"].dispose()
    shutil.rmtree(folder, ignore_errors=True)  # --db files live elsewhere and stay


if __name__ == "__main__":
    main()
