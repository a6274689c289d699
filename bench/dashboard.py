"""How long the dashboard takes for 90 days over a large history (docs/developer.md,
"Benchmarks and screenshots"): seeds N links (default 1,000,000) into a temporary SQLite file
unless --db names one already seeded, times the rollup refresh of the seeded days, then times
GET /dashboard?period=90 through the Flask test client against GET /healthz in the same run
(median of --runs): once as is, once right after a write to one of today's links (so today is
recomputed first, what a busy clinic's views cost).

    .venv/bin/python bench/dashboard.py [--links 1000000] [--db /tmp/dash.db] [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import click
import sqlalchemy

from payapp import create_app, metrics
from payapp.cli import DEMO_FRONT_DESK, DEMO_PASSWORD, seed_demo
from payapp.db import get_session, upgrade_schema
from tests.conftest import log_in


def median_ms(client, url: str, runs: int, before=None) -> float:
    timings = []
    for _ in range(runs):
        if before is not None:
            before()
        start = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=1_000_000)
    parser.add_argument("--db", help="an SQLite file (seeded first if it has no links)")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="payapp-bench-"))
    db_file = Path(args.db) if args.db else folder / "dashboard.db"
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "bench-" + "x" * 40,
            "DATABASE_URL": f"sqlite:///{db_file}",
            "OUTBOX_DIR": str(folder / "outbox"),
            "PUBLIC_BASE_URL": "http://localhost",
            "RATELIMIT_ENABLED": False,
        }
    )
    with app.app_context():
        upgrade_schema(app.extensions["payapp.engine"])
        app.test_cli_runner().invoke(args=["demo-setup"])
        session = get_session()
        has = session.execute(sqlalchemy.text("SELECT count(*) FROM payment_link")).scalar()
        if not has:
            start = time.perf_counter()
            with click.progressbar(length=args.links, label="Seeding") as bar:
                seed_demo(session, args.links, datetime.now(UTC), progress=bar.update)
            session.execute(sqlalchemy.text("ANALYZE"))
            session.commit()
            print(f"seeded {args.links} links in {time.perf_counter() - start:.0f} s")
            has = args.links
        # The rollup of every seeded day (what run-jobs does after seed-demo, or the first view).
        start = time.perf_counter()
        days = metrics.refresh(session, app.config["CLINIC_TIMEZONE"])
        print(f"rollup refresh: {days} day(s) recomputed in {time.perf_counter() - start:.1f} s")
    client = app.test_client()
    assert log_in(client, email=DEMO_FRONT_DESK, password=DEMO_PASSWORD).status_code == 303
    median_ms(client, "/dashboard?period=90", 2)  # warm caches and templates
    health = median_ms(client, "/healthz", args.runs)
    dash = median_ms(client, "/dashboard?period=90", args.runs)

    def touch_a_link_of_today() -> None:
        # A patient opens today's newest link: its day is marked, the next view recomputes it.
        with app.app_context():
            session = get_session()
            session.execute(
                sqlalchemy.text(
                    "UPDATE payment_link SET first_viewed_at = :now"
                    " WHERE id = (SELECT max(id) FROM payment_link)"
                ),
                {"now": datetime.now(UTC).replace(tzinfo=None)},
            )
            session.commit()

    fresh = median_ms(client, "/dashboard?period=90", args.runs, before=touch_a_link_of_today)
    print(f"links: {has:,}  db: {db_file}")
    print(f"/healthz              median {health:8.1f} ms")
    print(f"/dashboard?period=90  median {dash:8.1f} ms  ({dash / health:.0f}x /healthz)")
    print(
        f"  after a write today median {fresh:8.1f} ms  ({fresh / health:.0f}x /healthz;"
        " today recomputed first)"
    )


if __name__ == "__main__":
    main()
